//! Pure: the backup references workloads run, who runs each, and the originals they were
//! copied from (read from the `image-cloner.io/original-images` annotation). 10,000 workloads
//! over 500 images make 500 entries: the audit asks the registry once per entry.

use std::collections::{BTreeMap, BTreeSet};

use crate::audit::WorkloadKey;
use crate::image::reference::ImageRef;
use crate::reconcile::patch::original_images;
use crate::reconcile::plan::{Decision, Policy, decide};
use crate::workload::Workload;

/// One backup reference in use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InUse {
    /// The reference, parsed.
    pub image: ImageRef,
    /// What the annotations say it is a copy of (usually one; none when the workload was
    /// written with the backup reference itself, e.g. committed to git).
    pub originals: BTreeSet<String>,
    pub workloads: BTreeSet<WorkloadKey>,
}

/// Backup references in use, by the string the pod specs hold.
pub type References = BTreeMap<String, InUse>;

/// Adds the backup references `w` runs. Only containers planning leaves as they are because
/// they already run a backup copy count: an ignored or opted-out workload is not the audit's
/// to act on.
pub fn collect(refs: &mut References, w: &Workload, policy: &Policy) {
    let recorded = original_images(&w.annotations).unwrap_or_default();
    for plan in decide(w, policy) {
        let (Decision::AlreadyInBackup, Some(image)) = (&plan.decision, plan.source) else {
            continue;
        };
        let written = plan.container.image;
        let entry = refs.entry(written.clone()).or_insert_with(|| InUse {
            image,
            originals: BTreeSet::new(),
            workloads: BTreeSet::new(),
        });
        if let Some(r) = recorded.get(&plan.container.name)
            && r.backup == written
        {
            entry.originals.insert(r.original.clone());
        }
        entry.workloads.insert(WorkloadKey::of(w));
    }
}

/// Whether another reference in use shares `image`'s repository and tag but pins `digest`: a
/// tag that moved upstream, copied for a later workload. Both digests are in use and only one
/// can hold the tag; copying ours back would take it from the other, and the next audit would
/// copy that one back — so such a tag is left alone and each digest is checked by itself.
pub fn tag_shared_with(refs: &References, image: &ImageRef, digest: &str) -> bool {
    refs.values().any(|other| {
        other.image.repository() == image.repository()
            && other.image.tag() == image.tag()
            && other.image.digest().map(|d| d.as_str()) == Some(digest)
    })
}
