//! What "converged" means for the suite: every container of every workload runs the backup
//! copy of the image it should run, and the annotation records that image as the original.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::recorder::{History, Key};
use crate::report::Report;
use crate::scenarios::editor::Edit;
use crate::world::{World, containers};

/// Workload → `(container, source image)` in pod-spec order.
pub type Expected = BTreeMap<Key, Vec<(String, String)>>;

pub struct Converged {
    pub converged: usize,
    /// The first problems of the workloads that did not converge.
    pub problems: Vec<String>,
}

/// The expected images after the edits: each edited workload's first container runs the
/// image of its last edit.
pub fn apply_edits(mut expected: Expected, edits: &[Edit]) -> Expected {
    for e in edits {
        if let Some(first) = expected.get_mut(&e.key).and_then(|c| c.first_mut()) {
            first.1 = e.image.clone();
        }
    }
    expected
}

/// Why one workload has not converged, if it has not.
fn problem(world: &World, key: &Key, want: &[(String, String)]) -> Option<String> {
    let (plural, ns, name) = key;
    let who = format!("{plural} {ns}/{name}");
    let Some(obj) = world.get(plural, ns, name) else {
        return Some(format!("{who} is gone"));
    };
    let now = containers(plural, &obj);
    let prefix = format!("{}/", world.backup_registry());
    let recorded: BTreeMap<String, Value> =
        obj["metadata"]["annotations"]["image-cloner.io/original-images"]
            .as_str()
            .and_then(|s| serde_json::from_str(s).ok())
            .unwrap_or_default();
    if now.len() != want.len() {
        return Some(format!("{who} has containers {now:?}, expected {want:?}"));
    }
    for ((name, image), (want_name, source)) in now.iter().zip(want) {
        let original = recorded.get(name).and_then(|r| r["original"].as_str());
        let backup = recorded.get(name).and_then(|r| r["backup"].as_str());
        if name != want_name
            || !image.starts_with(&prefix)
            || original != Some(source.as_str())
            || backup != Some(image.as_str())
        {
            return Some(format!(
                "{who}: container {name} runs {image} (recorded original {original:?}), expected the copy of {source}"
            ));
        }
    }
    None
}

fn check(world: &World, expected: &Expected) -> Converged {
    let mut converged = 0;
    let mut problems = Vec::new();
    for (key, want) in expected {
        match problem(world, key, want) {
            None => converged += 1,
            Some(p) => problems.push(p),
        }
    }
    Converged {
        converged,
        problems,
    }
}

/// Polls until every workload converged or `deadline`; the last check.
pub fn wait(world: &World, expected: &Expected, deadline: Instant) -> Converged {
    loop {
        let c = check(world, expected);
        if c.problems.is_empty() || Instant::now() > deadline {
            return c;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// How many edits survived: each one later overwritten by the editor itself, or still there
/// (its label, and its image as the recorded original). Reports the others.
pub fn edits_kept(world: &World, edits: &[Edit], report: &mut Report) -> usize {
    let mut last: BTreeMap<&Key, usize> = BTreeMap::new();
    for (i, e) in edits.iter().enumerate() {
        last.insert(&e.key, i);
    }
    let mut kept = 0;
    for (i, e) in edits.iter().enumerate() {
        if last.get(&e.key) != Some(&i) {
            kept += 1;
            continue;
        }
        let (plural, ns, name) = &e.key;
        let obj = world.get(plural, ns, name).unwrap_or_default();
        let label = obj["metadata"]["labels"]["edited"].as_str();
        let ok = report.check(
            label == Some(e.label.as_str()),
            format!(
                "the edit {} of {plural} {ns}/{name} was lost (label now {label:?})",
                e.label
            ),
        );
        kept += usize::from(ok);
    }
    kept
}

/// Every backup reference any workload ever held.
pub fn backup_references(history: &History, world: &World) -> BTreeSet<String> {
    let prefix = format!("{}/", world.backup_registry());
    history
        .images()
        .filter(|i| i.starts_with(&prefix))
        .map(str::to_owned)
        .collect()
}
