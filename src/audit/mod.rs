//! The backup keeps protecting after day one.
//!
//! Once a workload runs `backup/…@sha256:…`, the backup registry is its single point of
//! failure: retention policies, clean-ups and garbage collection delete copies that are still
//! in use, and nobody notices until a node is replaced and the pod cannot start. Three parts:
//!
//! - the **liveness audit** ([`Auditor`], at start and every `audit_interval`): every distinct
//!   backup reference that a workload runs is asked for once ([`check`]: one manifest HEAD per
//!   reference, never per workload, outside the copy slots); a copy missing or moved is copied
//!   again from the original recorded in the workload's annotation, by digest, and verified
//!   ([`repair`]); one that cannot be is reported on each workload running it (Warning Event
//!   `BackupMissing`, a metric) and, with `on_backup_missing = restore`, the workload is put back
//!   on its original images when those still exist ([`act`]). Nothing is ever patched to an
//!   unverified image: the audit only writes originals back.
//! - the **rollout guard** ([`guard`]): a patched workload whose new Pods cannot pull a backup
//!   image for longer than `rollout_guard_after` gets its original images back, once.
//! - the **coverage report** ([`coverage`]): if the public registries disappeared now, which
//!   workloads could not start, and why — `image-cloner status` and the daemon's
//!   `image_cloner_workloads{state}` both classify with the same pure function.
//!
//! Imports run downward: this folder uses `workload`, `image`, `registry`, `reconcile` and
//! `settings`; the daemon's caches reach it through [`Cached`] (implemented by
//! `cluster::controller`), metrics through [`AuditObserver`] (implemented by `ops::metrics`).

pub mod act;
pub mod check;
pub mod coverage;
pub mod failures;
pub mod guard;
pub mod refs;
pub mod repair;
mod round;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

pub use self::coverage::State;
pub use self::round::{AuditSummary, Auditor};
use crate::workload::{Kind, Workload};
pub use coverage::LastWord;

/// Which workload: what Events and patches are addressed to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WorkloadKey {
    pub kind: Kind,
    pub namespace: String,
    pub name: String,
}

impl WorkloadKey {
    pub fn of(w: &Workload) -> Self {
        WorkloadKey {
            kind: w.kind,
            namespace: w.namespace.clone(),
            name: w.name.clone(),
        }
    }
}

impl fmt::Display for WorkloadKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}/{}", self.kind, self.namespace, self.name)
    }
}

/// The daemon's caches, as the audit and the coverage report read them.
pub trait Cached: Send + Sync {
    /// Calls `f` with planning's view of every cached workload that is not left to its owner,
    /// one at a time (10,000 views are never held at once). The namespace's opt-out is not
    /// applied (`namespace_opted_out` is false): the caller knows the namespaces.
    fn for_each_workload(&self, f: &mut dyn FnMut(Workload));

    /// Why the workload's last reconcile failed or held it back, when it did.
    fn last_word(&self, key: &WorkloadKey) -> Option<LastWord>;

    /// A number that moves whenever a reconcile ends: the coverage is counted again once it
    /// stops moving, not only every [`COVERAGE_REFRESH`].
    fn changes(&self) -> u64 {
        0
    }
}

/// Told what the audit and the guard did (metrics).
pub trait AuditObserver: Send + Sync {
    fn audit_finished(&self, _summary: &AuditSummary) {}
    /// A workload was put back on its original images; `reason` is the Event reason.
    fn workload_restored(&self, _reason: &'static str) {}
    /// The rollout guard found a patched workload whose Pods cannot pull its backup images.
    fn backup_pull_failed(&self) {}
    /// The number of workloads in each state, every state present.
    fn coverage(&self, _counts: &BTreeMap<State, usize>) {}
}

/// An observer that ignores everything.
pub struct Unobserved;
impl AuditObserver for Unobserved {}

/// How often the daemon's `image_cloner_workloads{state}` is counted again between audits when
/// no reconcile ended meanwhile (the namespaces may have changed): a walk over the caches, no
/// request.
pub const COVERAGE_REFRESH: Duration = Duration::from_secs(15);
/// It is counted again once reconciles that ended have been quiet this long (a warm start's
/// 10,000 reconciles cost one walk, after them, not 10,000 nor one a second during them).
pub const COVERAGE_SETTLE: Duration = Duration::from_secs(1);
