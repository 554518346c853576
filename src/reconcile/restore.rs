//! Pure planning of `restore`: the way back from the annotation, with the same `test`
//! discipline as the patch.

use serde::Serialize;
use serde_json::{Value, json};

use crate::reconcile::patch::{
    ImageChange, PatchPlan, annotation_ops, image_pointer, original_images,
};
use crate::workload::Workload;

/// A container `restore` leaves alone, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Kept {
    pub container: String,
    pub reason: String,
}

/// The way back: every recorded container whose image is still the backup image gets its
/// original back; the annotation goes. `None` when the workload has no annotation of ours.
pub fn restore(workload: &Workload) -> Option<(PatchPlan, Vec<Kept>)> {
    let recorded = original_images(&workload.annotations)?;
    let mut tests = Vec::new();
    let mut replaces = Vec::new();
    let mut changes = Vec::new();
    let mut kept = Vec::new();
    for (name, images) in &recorded {
        match workload.containers.iter().find(|c| &c.name == name) {
            Some(c) if c.image == images.backup => {
                let path = image_pointer(workload.kind, c);
                tests.push(json!({"op": "test", "path": path, "value": c.image}));
                replaces.push(json!({"op": "replace", "path": path, "value": images.original}));
                changes.push(ImageChange {
                    container: name.clone(),
                    init: c.init,
                    from: c.image.clone(),
                    to: images.original.clone(),
                });
            }
            Some(c) => kept.push(Kept {
                container: name.clone(),
                reason: format!(
                    "its image was changed since image-cloner set it (now {}), so that change is kept",
                    c.image
                ),
            }),
            None => kept.push(Kept {
                container: name.clone(),
                reason: "the container no longer exists".into(),
            }),
        }
    }
    let mut ops = tests;
    ops.extend(replaces);
    ops.extend(annotation_ops(&workload.annotations, None));
    Some((
        PatchPlan {
            changes,
            patch: Value::Array(ops),
        },
        kept,
    ))
}
