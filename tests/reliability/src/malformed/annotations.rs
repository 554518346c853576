//! Hostile `image-cloner.io/original-images` annotations for `restore`: not JSON, the wrong
//! shape, originals that are not image references (flags, shell, newlines, 100 KB), empty
//! originals, and originals the recorded backup is not a copy of. `restore` must report every
//! one naming the workload, exit 1, and write none of them; the honest ones are restored.

use std::time::Duration;

use anyhow::Result;
use serde_json::json;

use crate::daemon::{self, text};
use crate::malformed::{Tally, images, no_panic};
use crate::report::Report;
use crate::source::Source;
use crate::world::World;

const ANNOTATION: &str = "image-cloner.io/original-images";

/// The flat backup name image-cloner gives `source` under `backup` (`host:port/a/b` →
/// `host--port_a_b`), for the simple names the suite's sources have.
fn flat(backup: &str, source: &str, digest: &str) -> String {
    let (repo, tag) = source.rsplit_once(':').unwrap_or((source, "latest"));
    let folded = repo.replace(':', "--").replace('/', "_");
    format!("{backup}/{folded}:{tag}@{digest}")
}

/// `(case, annotation value, restorable)`.
fn cases(
    original: &str,
    other: &str,
    backup: &str,
    hostile: &[String],
) -> Vec<(String, String, bool)> {
    let entry = |o: &serde_json::Value, b: &serde_json::Value| {
        json!({"app": {"original": o, "backup": b}}).to_string()
    };
    let mut out: Vec<(String, String, bool)> = [
        "",
        "{",
        "null",
        "[]",
        "1",
        "\"s\"",
        "true",
        "{\"app\": \"x\"}",
        "{\"app\": {}}",
        "{\"app\": []}",
        "{\"app\": null}",
        "{\"\": {\"original\": \"a\", \"backup\": \"b\"}}",
    ]
    .iter()
    .map(|s| (format!("annotation {s:?}"), (*s).to_owned(), false))
    .collect();
    out.push((
        "original of the wrong type".into(),
        entry(&json!(1), &json!(backup)),
        false,
    ));
    out.push((
        "original null".into(),
        entry(&json!(null), &json!(backup)),
        false,
    ));
    out.push((
        "no backup recorded".into(),
        json!({"app": {"original": original}}).to_string(),
        false,
    ));
    out.push((
        "an empty original".into(),
        entry(&json!(""), &json!(backup)),
        false,
    ));
    out.push((
        "a blank original".into(),
        entry(&json!("  "), &json!(backup)),
        false,
    ));
    out.push((
        "an original its backup is not a copy of".into(),
        entry(&json!(other), &json!(backup)),
        false,
    ));
    out.push((
        "a backup that is not a reference".into(),
        entry(&json!(original), &json!("--help")),
        false,
    ));
    out.push((
        "deeply nested".into(),
        format!("{}{}", "[".repeat(50_000), "]".repeat(50_000)),
        false,
    ));
    out.push((
        "a 1 MB record".into(),
        json!({"app": {"original": original, "backup": backup, "pad": "x".repeat(1 << 20)}})
            .to_string(),
        true,
    ));
    for h in hostile {
        out.push((
            format!("original {h:?}"),
            entry(&json!(h), &json!(backup)),
            false,
        ));
    }
    for i in 0..3 {
        out.push((
            format!("an honest record {i}"),
            entry(&json!(original), &json!(backup)),
            true,
        ));
    }
    out
}

pub fn run(world: &World, source: &Source, report: &mut Report, tally: &mut Tally) -> Result<()> {
    let host = source.registry.host();
    let original = source.reference(&host, 0);
    let other = source.reference(&host, 1);
    let backup = flat(
        &world.backup_registry(),
        &original,
        &source.images[0].digest,
    );
    let mut hostile = images::hostile(&original, &host);
    hostile.retain(|h| !h.contains('\0'));
    let cases = cases(&original, &other, &backup, &hostile);
    world.namespace("restore", json!({}))?;
    for (i, (_, value, _)) in cases.iter().enumerate() {
        let obj = kube_sim::fixtures::workload(
            "Deployment",
            "restore",
            &format!("a-{i}"),
            &[("app", &backup)],
            &[],
            json!({"annotations": {ANNOTATION: value}}),
        );
        world.create(obj)?;
    }
    let mut outputs = Vec::new();
    for args in [
        &["restore", "--dry-run"][..],
        &["restore"],
        &["restore", "--allow-repatch"],
    ] {
        let mut cmd = world.command(&[]);
        cmd.args(args).args(["--namespace", "restore"]);
        let o = daemon::run(cmd, Duration::from_secs(120))?;
        no_panic(report, tally, &args.join(" "), &o);
        report.check(
            o.status.code() == Some(1),
            format!(
                "{} with refused entries exited {:?}",
                args.join(" "),
                o.status.code()
            ),
        );
        outputs.push(text(&o));
    }
    let first = &outputs[1];
    for (i, (case, _, restorable)) in cases.iter().enumerate() {
        let who = format!("restore/a-{i}:");
        let now = world
            .get("deployments", "restore", &format!("a-{i}"))
            .map(|o| {
                o["spec"]["template"]["spec"]["containers"][0]["image"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned()
            })
            .unwrap_or_default();
        if *restorable {
            report.check(
                now == original,
                format!("{case}: not restored, runs {now:?}"),
            );
            tally.count("hostile restore annotations", false);
            continue;
        }
        let reported = first
            .lines()
            .any(|l| l.contains(&who) && (l.contains("refused") || l.contains("error")));
        let kept = now == backup;
        report.check(
            reported && kept,
            format!("{case}: reported {reported}, image now {now:?} (expected it untouched)"),
        );
        tally.count("hostile restore annotations", reported);
    }
    Ok(())
}
