//! Where a reconcile leaves a workload whose copies are still running, instead of waiting for
//! them inside the reconcile.
//!
//! kube-runtime's controller polls every reconcile in flight each time any of them wakes, so a
//! reconcile that waits minutes on a copy costs the controller work at every wake-up of every
//! other one, and holds one of its slots: in a cold start of 2,000 workloads, 1,024 reconciles
//! waiting on copies made 4 million such polls, and a cap on the slots low enough to stop that
//! would have let the workloads listed first, if they shared an image, hold every slot while
//! the other images' copies waited to be started. Parked, a workload holds nothing: its copies
//! run in the mirror's own tasks, and when they end it is reconciled again. The copies that
//! failed are handed to that reconcile: the mirror forgets a failure after seconds (so that a
//! retry after backoff asks again), and a wake-up queued behind thousands of others would
//! otherwise start the failed copy again at once. A success is the mirror's own to answer: it
//! remembers one for minutes, and forgets it as soon as the audit finds the copy gone, so no
//! workload is patched on the strength of a hand-over older than that.
//!
//! The daemon's controllers park (`crate::cluster::parking`); `run --once` waits inline.

use std::collections::HashMap;

use crate::audit::WorkloadKey;
use crate::registry::mirror::{CopyWait, MirrorError};

/// How each copy a parked workload waited on failed, by source (`ImageRef::canonical`).
pub type Handed = HashMap<String, MirrorError>;

pub trait Parking: Send + Sync {
    /// Leaves `workload` until every copy in `waits` has ended; it is then reconciled again,
    /// and [`handed`](Self::handed) gives that reconcile the failures among them.
    fn park(&self, workload: WorkloadKey, waits: Vec<CopyWait>);

    /// How the copies `workload` was parked on failed, once (taken, not copied); empty when
    /// none failed, when it was not parked, or so long ago that the mirror is to be asked again.
    fn handed(&self, workload: &WorkloadKey) -> Handed;
}
