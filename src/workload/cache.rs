//! Which changes to a cached workload wake a reconcile. (What the caches keep of one is what
//! the partial types read: `partial` and `metadata`.)

use crate::workload::kinds::WorkloadKind;

/// A hash of what planning reads (generation, labels, annotations, container images, pull
/// secrets), so that
/// the controllers reconcile on those changes and not on every status update (a running Job
/// changes its status constantly).
pub fn relevant_state<K: WorkloadKind>(obj: &K) -> Option<u64> {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    let meta = obj.meta();
    meta.generation.hash(&mut h);
    meta.labels.hash(&mut h);
    meta.annotations.hash(&mut h);
    meta.owner_references
        .as_ref()
        .map(|o| o.iter().map(|r| r.uid.clone()).collect::<Vec<_>>())
        .hash(&mut h);
    if let Some(spec) = obj.pod_spec() {
        for c in spec
            .containers
            .iter()
            .chain(spec.init_containers.iter().flatten())
        {
            (&c.name, &c.image).hash(&mut h);
        }
        spec.image_pull_secrets.hash(&mut h);
    }
    Some(h.finish())
}
