//! Pure planning, step 2: given the verified copies, one RFC 6902 patch per workload — a `test`
//! op on every image it replaces (a concurrent edit makes the whole patch fail instead of being
//! overwritten), the `replace` ops, and the annotation recording the originals for `restore`;
//! with a provisioned pull secret, also the ops adding it to `imagePullSecrets` ([`pull`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::image::reference::ImageRef;
use crate::reconcile::json_text::{self, push_json_string};
use crate::reconcile::plan::{ContainerPlan, Decision};
use crate::reconcile::pull;
use crate::workload::{Container, Kind, Workload};

/// Where the original images are recorded, on the workload's own metadata (not the pod
/// template, so recording them does not roll the pods a second time).
pub const ORIGINAL_IMAGES_ANNOTATION: &str = "image-cloner.io/original-images";

/// One container image replaced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImageChange {
    pub container: String,
    pub init: bool,
    pub from: String,
    pub to: String,
}

/// One RFC 6902 operation, serialized as the API server reads it: `{"op": "test", "path":
/// …, "value": …}`. Typed rather than a `serde_json::Value` map per operation (three keys
/// allocated and ordered for each): 6.7 million fewer instructions (1.1 %) in the cold bench's
/// `run --once` of 2,000 patches (callgrind).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "op", rename_all = "lowercase")]
pub enum Op {
    Test { path: String, value: Value },
    Add { path: String, value: Value },
    Replace { path: String, value: Value },
    Remove { path: String },
}

/// `operations` as the JSON serde writes of them (`[{"op":…,"path":…,"value":…}]`, in that
/// order), each value by `json_text::push_json_value`, each key and the text between the
/// values written as one constant: through serde's derive and writer, a patch of three
/// operations was ~7,500 instructions (callgrind, cold `run --once`).
pub fn operations_json(operations: &[Op]) -> Vec<u8> {
    // A patch of one image with its annotation is ~700 bytes.
    let mut out = String::with_capacity(1024);
    out.push('[');
    for (i, op) in operations.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let (opening, path, value) = match op {
            Op::Test { path, value } => (r#"{"op":"test","path":"#, path, Some(value)),
            Op::Add { path, value } => (r#"{"op":"add","path":"#, path, Some(value)),
            Op::Replace { path, value } => (r#"{"op":"replace","path":"#, path, Some(value)),
            Op::Remove { path } => (r#"{"op":"remove","path":"#, path, None),
        };
        out.push_str(opening);
        push_json_string(&mut out, path);
        if let Some(value) = value {
            out.push_str(r#","value":"#);
            json_text::push_json_value(&mut out, value);
        }
        out.push('}');
    }
    out.push(']');
    out.into_bytes()
}

/// A workload's patch, ready for `Patch::Json`.
#[derive(Debug, Clone, PartialEq)]
pub struct PatchPlan {
    pub changes: Vec<ImageChange>,
    /// The `imagePullSecrets` entries the patch adds (`restore`: removes).
    pub pull_secrets: Vec<String>,
    /// RFC 6902 operations, sent as one JSON array (`WorkloadApi::patch`; the plan tests apply
    /// every patch they build).
    pub patch: Vec<Op>,
}

/// What the annotation records per container: the image before and after, so that `restore`
/// puts back the original only where the image is still the one image-cloner wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recorded {
    pub original: String,
    pub backup: String,
}

/// The annotation's content: container name → images. Container names are unique across
/// `containers` and `initContainers` in a pod, so the name alone identifies one.
pub type OriginalImages = BTreeMap<String, Recorded>;

/// Parses the annotation; `None` when absent or not ours (then it is never used to restore).
pub fn original_images(annotations: &BTreeMap<String, String>) -> Option<OriginalImages> {
    serde_json::from_str(annotations.get(ORIGINAL_IMAGES_ANNOTATION)?).ok()
}

/// JSON pointer escaping (RFC 6901) of one reference token.
pub(crate) fn escape(token: &str) -> String {
    let mut escaped = String::with_capacity(token.len() + 2);
    for c in token.chars() {
        match c {
            '~' => escaped.push_str("~0"),
            '/' => escaped.push_str("~1"),
            c => escaped.push(c),
        }
    }
    escaped
}

pub(crate) fn image_pointer(kind: Kind, c: &Container) -> String {
    let (spec, list) = (kind.pod_spec_pointer(), c.list());
    let mut pointer = String::with_capacity(spec.len() + list.len() + 12);
    pointer.push_str(spec);
    pointer.push('/');
    pointer.push_str(list);
    pointer.push('/');
    json_text::push_decimal(&mut pointer, c.index as u64);
    pointer.push_str("/image");
    pointer
}

/// Ops that set the original-images annotation to `value`, guarded by a `test` of the current
/// value.
pub(crate) fn annotation_ops(
    annotations: &BTreeMap<String, String>,
    value: Option<String>,
) -> Vec<Op> {
    set_annotation_ops(annotations, ORIGINAL_IMAGES_ANNOTATION, value)
}

/// Ops that set annotation `name` to `value` (`None`: remove it), guarded by a `test` of its
/// current value; `annotations` is the map as it is when these ops run.
pub(crate) fn set_annotation_ops(
    annotations: &BTreeMap<String, String>,
    name: &str,
    value: Option<String>,
) -> Vec<Op> {
    let path = || format!("/metadata/annotations/{}", escape(name));
    let current = annotations.get(name);
    match (current, value) {
        (None, None) => vec![],
        (Some(old), None) => vec![
            Op::Test {
                path: path(),
                value: Value::String(old.clone()),
            },
            Op::Remove { path: path() },
        ],
        (Some(old), Some(new)) => vec![
            Op::Test {
                path: path(),
                value: Value::String(old.clone()),
            },
            Op::Replace {
                path: path(),
                value: Value::String(new),
            },
        ],
        (None, Some(new)) if annotations.is_empty() => vec![Op::Add {
            path: "/metadata/annotations".to_owned(),
            value: json!({ name: new }),
        }],
        (None, Some(new)) => vec![Op::Add {
            path: path(),
            value: Value::String(new),
        }],
    }
}

/// The annotation's JSON text, as `serde_json` writes the map (keys in order, no spaces),
/// written directly: building it as a `Value` and formatting that through `Display` cost 7
/// million instructions more in a cold `run --once` of 2,000 workloads (1.2 %, callgrind);
/// `serde_json`'s own writers return a `Result` for an error a map of strings cannot have.
fn record_value(recorded: &OriginalImages) -> String {
    record_entries(
        recorded
            .iter()
            .map(|(name, r)| (name.as_str(), r.original.as_str(), r.backup.as_str())),
    )
}

/// The annotation's JSON text for `changes` alone (a workload without the annotation): the
/// map `record_value` writes of them, without building it — a tree node and three strings
/// copied a workload, 2,000 times in a cold run. Container names are unique in a pod; were one
/// repeated, its last change would be recorded, as the map's insert keeps it.
fn record_changes(changes: &[ImageChange]) -> String {
    fn entry(c: &ImageChange) -> (&str, &str, &str) {
        (&c.container, &c.from, &c.to)
    }
    if let [one] = changes {
        return record_entries([entry(one)].into_iter());
    }
    let mut entries: Vec<_> = changes.iter().rev().map(entry).collect();
    // Stable: of the same name, the last change stays first, and is the one `dedup` keeps.
    entries.sort_by(|a, b| a.0.cmp(b.0));
    entries.dedup_by(|later, first| later.0 == first.0);
    record_entries(entries.into_iter())
}

/// `{"<container>":{"backup":…,"original":…},…}` of `(container, original, backup)` entries,
/// given in the map's order.
fn record_entries<'a>(
    entries: impl Iterator<Item = (&'a str, &'a str, &'a str)> + Clone,
) -> String {
    let size: usize = entries
        .clone()
        .map(|(name, original, backup)| name.len() + original.len() + backup.len() + 32)
        .sum();
    let mut out = String::with_capacity(size + 2);
    out.push('{');
    for (i, (name, original, backup)) in entries.enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_json_string(&mut out, name);
        out.push_str(r#":{"backup":"#);
        push_json_string(&mut out, backup);
        out.push_str(r#","original":"#);
        push_json_string(&mut out, original);
        out.push('}');
    }
    out.push('}');
    out
}

/// The patch pointing every `Clone` container at its verified copy. Containers whose image has
/// no verified copy (`verified` gives the pinned backup reference of one) are left as they
/// are; `None` when nothing changes.
pub fn patch(
    workload: &Workload,
    plans: &[ContainerPlan],
    verified: &dyn Fn(&ImageRef) -> Option<String>,
) -> Option<PatchPlan> {
    patch_pulling(workload, plans, verified, None)
}

/// [`patch`], which also adds `{name: pull_secret}` to the pod template's `imagePullSecrets`
/// when given (and not already there), in the same patch, guarded by `test` ops, and records
/// that it did ([`pull::add_ops`]).
pub fn patch_pulling(
    workload: &Workload,
    plans: &[ContainerPlan],
    verified: &dyn Fn(&ImageRef) -> Option<String>,
    pull_secret: Option<&str>,
) -> Option<PatchPlan> {
    // The patch's operations: the tests, then the replaces, the annotation's and the pull
    // secret's (two at most each), in one allocation.
    let mut tests = Vec::with_capacity(2 * plans.len() + 4);
    let mut replaces = Vec::with_capacity(plans.len());
    let mut changes = Vec::with_capacity(plans.len());
    for plan in plans {
        if plan.decision != Decision::Clone {
            continue;
        }
        let Some(backup_ref) = plan.source.as_ref().and_then(verified) else {
            continue;
        };
        let c = &plan.container;
        let path = image_pointer(workload.kind, c);
        tests.push(Op::Test {
            path: path.clone(),
            value: Value::String(c.image.clone()),
        });
        replaces.push(Op::Replace {
            path,
            value: Value::String(backup_ref.clone()),
        });
        changes.push(ImageChange {
            container: c.name.clone(),
            init: c.init,
            from: c.image.clone(),
            to: backup_ref,
        });
    }
    if changes.is_empty() {
        return None;
    }
    let value = match original_images(&workload.annotations) {
        Some(mut recorded) => {
            for c in &changes {
                recorded.insert(
                    c.container.clone(),
                    Recorded {
                        original: c.from.clone(),
                        backup: c.to.clone(),
                    },
                );
            }
            record_value(&recorded)
        }
        None => record_changes(&changes),
    };
    let mut ops = tests;
    ops.extend(replaces);
    ops.extend(annotation_ops(&workload.annotations, Some(value)));
    let mut pull_secrets = Vec::new();
    if let Some(name) = pull_secret
        && let Some(pull_ops) = pull::add_ops(workload, name)
    {
        ops.extend(pull_ops);
        pull_secrets.push(name.to_owned());
    }
    Some(PatchPlan {
        changes,
        pull_secrets,
        patch: ops,
    })
}

#[cfg(test)]
#[path = "patch_tests.rs"]
mod tests;
