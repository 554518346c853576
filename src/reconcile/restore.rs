//! Pure planning of `restore`: the way back from the annotation, with the same `test`
//! discipline as the patch.
//!
//! The annotation is writable by anyone who can edit the workload, so it is read as untrusted
//! input: an original that is not a valid image reference, or (unless allowed) not the image
//! its recorded backup is a copy of, is rejected and reported, and never written into the pod
//! spec. A restored workload is opted out in the same patch (unless the caller says not to),
//! so that a running daemon does not patch it straight back. The `imagePullSecrets` entry the
//! daemon added (recorded in its own annotation) goes in the same patch; one a user added
//! stays.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use crate::image::naming::is_copy_of;
use crate::image::reference::ImageRef;
use crate::reconcile::patch::{
    ImageChange, ORIGINAL_IMAGES_ANNOTATION, Op, PatchPlan, Recorded, annotation_ops, escape,
    image_pointer,
};
use crate::reconcile::pull;
use crate::workload::{Container, SKIP_ANNOTATION, Workload, opted_out};

/// How `restore` treats the annotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestoreOptions {
    /// Set `image-cloner.io/skip: "true"` on each restored workload, so that the daemon leaves
    /// it alone (the default; `--allow-repatch` turns it off).
    pub opt_out: bool,
    /// Accept an original that its recorded backup is not a copy of (`--allow-unmatched`).
    pub allow_unmatched: bool,
}

impl Default for RestoreOptions {
    fn default() -> Self {
        RestoreOptions {
            opt_out: true,
            allow_unmatched: false,
        }
    }
}

/// A container `restore` leaves alone, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Kept {
    pub container: String,
    pub reason: String,
}

/// A recorded entry refused: never written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rejected {
    pub container: String,
    pub reason: String,
}

/// What `restore` would do to one workload.
#[derive(Debug, Clone, PartialEq)]
pub enum RestorePlan {
    /// The workload carries no annotation of ours.
    NotOurs,
    /// The annotation is there but is not what image-cloner writes.
    Unreadable { error: String },
    Restore {
        /// The patch; `None` when nothing is to change (every entry kept or rejected).
        patch: Option<PatchPlan>,
        kept: Vec<Kept>,
        rejected: Vec<Rejected>,
        /// The workload is opted out by this patch.
        opts_out: bool,
    },
}

/// Checks one recorded entry; the original image to write back, or why not.
fn check_entry(recorded: &Recorded, options: RestoreOptions) -> Result<String, String> {
    if recorded.original.trim().is_empty() {
        return Err("the recorded original image is empty: there is nothing to restore".into());
    }
    let original = ImageRef::parse(&recorded.original)
        .map_err(|e| format!("the recorded original is not an image reference: {e}"))?;
    if !options.allow_unmatched {
        let matched = ImageRef::parse(&recorded.backup).is_ok_and(|b| is_copy_of(&b, &original));
        if !matched {
            return Err(format!(
                "the recorded backup {:?} is not image-cloner's copy of {:?}: the annotation was edited (--allow-unmatched restores it anyway)",
                recorded.backup, recorded.original
            ));
        }
    }
    Ok(recorded.original.clone())
}

/// The way back: every recorded container whose image is still the backup image gets its
/// original back, the annotation goes, and the workload is opted out.
pub fn restore(workload: &Workload, options: RestoreOptions) -> RestorePlan {
    let Some(text) = workload.annotations.get(ORIGINAL_IMAGES_ANNOTATION) else {
        return RestorePlan::NotOurs;
    };
    let recorded: BTreeMap<String, Recorded> = match serde_json::from_str(text) {
        Ok(r) => r,
        Err(e) => {
            return RestorePlan::Unreadable {
                error: format!(
                    "annotation {ORIGINAL_IMAGES_ANNOTATION} is not image-cloner's record (a JSON object of container → {{original, backup}}): {e}"
                ),
            };
        }
    };
    let (mut ops, mut changes, mut kept, mut rejected) = (vec![], vec![], vec![], vec![]);
    for (name, images) in &recorded {
        let container = workload.containers.iter().find(|c| &c.name == name);
        match (container, check_entry(images, options)) {
            (_, Err(reason)) => rejected.push(Rejected {
                container: name.clone(),
                reason,
            }),
            (Some(c), Ok(original)) if c.image == images.backup => {
                let path = image_pointer(workload.kind, c);
                ops.push(Op::Test {
                    path: path.clone(),
                    value: Value::String(c.image.clone()),
                });
                ops.push(Op::Replace {
                    path,
                    value: Value::String(original.clone()),
                });
                changes.push(change(c, original));
            }
            (Some(c), Ok(_)) => kept.push(Kept {
                container: name.clone(),
                reason: format!(
                    "its image was changed since image-cloner set it (now {}), so that change is kept",
                    c.image
                ),
            }),
            (None, Ok(_)) => kept.push(Kept {
                container: name.clone(),
                reason: "the container no longer exists".into(),
            }),
        }
    }
    let opts_out = options.opt_out && !changes.is_empty() && !opted_out(&workload.annotations);
    if opts_out {
        ops.extend(skip_ops(&workload.annotations));
    }
    let (pull_ops, pull_secrets) = pull::remove_ops(workload);
    ops.extend(pull_ops);
    ops.extend(annotation_ops(&workload.annotations, None));
    let patch = (!changes.is_empty() || rejected.is_empty()).then_some(PatchPlan {
        changes,
        pull_secrets,
        patch: ops,
    });
    RestorePlan::Restore {
        patch,
        kept,
        rejected,
        opts_out,
    }
}

fn change(c: &Container, original: String) -> ImageChange {
    ImageChange {
        container: c.name.clone(),
        init: c.init,
        from: c.image.clone(),
        to: original,
    }
}

/// Sets the skip annotation to `"true"`, guarded like every other op: added when absent (the
/// annotations map exists, since it holds our record), replaced after a `test` when present.
fn skip_ops(annotations: &BTreeMap<String, String>) -> Vec<Op> {
    let path = format!("/metadata/annotations/{}", escape(SKIP_ANNOTATION));
    let value = Value::String("true".to_owned());
    match annotations.get(SKIP_ANNOTATION) {
        Some(old) => vec![
            Op::Test {
                path: path.clone(),
                value: Value::String(old.clone()),
            },
            Op::Replace { path, value },
        ],
        None => vec![Op::Add { path, value }],
    }
}
