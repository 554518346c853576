//! Where a reconcile leaves a workload whose copies are still running, instead of waiting for
//! them inside the reconcile.
//!
//! kube-runtime's controller polls every reconcile in flight each time any of them wakes, so a
//! reconcile that waits minutes on a copy costs the controller work at every wake-up of every
//! other one, and holds one of its slots: in a cold start of 2,000 workloads, 1,024 reconciles
//! waiting on copies made 4 million such polls, and a cap on the slots low enough to stop that
//! would have let the workloads listed first, if they shared an image, hold every slot while
//! the other images' copies waited to be started. Parked, a workload holds nothing: its copies
//! run in the mirror's own tasks, and when they end it is reconciled again, handed their
//! outcomes — a copy that failed is not started again by the reconcile it failed for.
//!
//! The daemon's controllers park (`crate::cluster::parking`); `run --once` waits inline.

use std::collections::HashMap;

use crate::audit::WorkloadKey;
use crate::registry::mirror::{CopyWait, MirrorError, MirroredImage};

/// The outcome of each copy a parked workload waited on, by source (`ImageRef::canonical`).
pub type Handed = HashMap<String, Result<MirroredImage, MirrorError>>;

pub trait Parking: Send + Sync {
    /// Leaves `workload` until every copy in `waits` has ended; it is then reconciled again,
    /// and [`handed`](Self::handed) gives that reconcile their outcomes.
    fn park(&self, workload: WorkloadKey, waits: Vec<CopyWait>);

    /// The outcomes of the copies `workload` was parked on, once (taken, not copied); empty
    /// when it was not parked, or so long ago that the mirror is to be asked again.
    fn handed(&self, workload: &WorkloadKey) -> Handed;
}
