//! A backup copy gone or moved, copied again: from the original recorded in the annotation,
//! pinned to the digest the workloads pin (content-addressed: exactly what they ran, or
//! nothing), through the mirror (single-flight, copy slots, verification), then the backup
//! reference the workloads hold is asked again.

use std::collections::BTreeSet;

use crate::audit::check::{Liveness, liveness};
use crate::image::reference::ImageRef;
use crate::registry::mirror::{Mirror, MirrorError};

/// What became of a broken reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Repair {
    /// Copied again and verified: the reference resolves.
    Repaired,
    /// Not repaired; `source_gone` when the original's registry no longer serves that digest
    /// (rather than a failure that may pass).
    Failed { why: String, source_gone: bool },
}

/// The original to copy `backup` again from: the recorded original at the digest `backup`
/// pins, keeping the tag (the backup tag is the original's), or `None` when the original does
/// not lead back to `backup`'s repository and tag (an annotation edited by hand, or a copy
/// made under other naming settings) — then it is not used.
pub fn pinned_original(mirror: &Mirror, original: &str, backup: &ImageRef) -> Option<ImageRef> {
    let original = ImageRef::parse(original).ok()?;
    let pinned = match (backup.digest(), original.tag()) {
        (Some(d), Some(tag)) => {
            ImageRef::parse(&format!("{}:{tag}@{d}", original.repository())).ok()?
        }
        (Some(d), None) => original.by_digest(d),
        (None, _) => original,
    };
    let options = mirror.options();
    let target = options.backup.target(&pinned, options.naming).ok()?;
    let same = target.tagged().repository() == backup.repository()
        && Some(target.tag.as_str()) == backup.tag();
    same.then_some(pinned)
}

/// Copies `backup` again from one of `originals`, and checks it resolves.
pub async fn repair(mirror: &Mirror, backup: &ImageRef, originals: &BTreeSet<String>) -> Repair {
    let candidates: Vec<ImageRef> = originals
        .iter()
        .filter_map(|o| pinned_original(mirror, o, backup))
        .collect();
    if candidates.is_empty() {
        let why = if originals.is_empty() {
            "no original image is recorded for it (image-cloner.io/original-images)".to_owned()
        } else {
            "the recorded original does not lead back to this copy".to_owned()
        };
        return Repair::Failed {
            why,
            source_gone: false,
        };
    }
    // A verification remembered from before the copy vanished must not answer for it.
    mirror.forget_backup(backup);
    let mut failures = Vec::new();
    let mut source_gone = true;
    for source in candidates {
        mirror.forget(&source);
        match mirror.ensure(&source).await {
            Ok(_) => match liveness(mirror, backup).await {
                Liveness::Alive => return Repair::Repaired,
                other => {
                    source_gone = false;
                    failures.push(format!("copied {source}, but {backup} {other}"));
                }
            },
            Err(e) => {
                source_gone &= matches!(e, MirrorError::SourceNotFound { .. });
                failures.push(e.to_string());
            }
        }
    }
    Repair::Failed {
        why: failures.join("; "),
        source_gone,
    }
}
