//! What every reconcile shares: the mirror, the planning policy, the API calls, where namespace
//! opt-outs are read from, and whom to tell what happened.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;

use crate::reconcile::api::WorkloadApi;
use crate::reconcile::notices::EpisodeNotices;
use crate::reconcile::parking::Parking;
use crate::reconcile::plan::Policy;
use crate::reconcile::pull::{PullGate, Ungated};
use crate::registry::mirror::Mirror;

/// Where the opt-out annotation of namespaces is read from.
pub trait NamespaceOptOuts: Send + Sync {
    /// Whether `namespace` opted out; `None` while that cannot be known (the daemon's cache has
    /// not completed its initial list, or its watch is broken), in which case nothing in that
    /// namespace may be planned.
    fn opted_out(&self, namespace: &str) -> Option<bool>;

    /// Resolves once [`opted_out`](Self::opted_out) can answer for `namespace`, or after
    /// `limit`.
    fn wait_known<'a>(&'a self, _namespace: &'a str, _limit: Duration) -> BoxFuture<'a, ()> {
        Box::pin(async {})
    }
}

/// A one-off read (`plan`, `run --once`): the names of the opted-out namespaces.
pub struct Snapshot(pub BTreeSet<String>);

impl NamespaceOptOuts for Snapshot {
    fn opted_out(&self, namespace: &str) -> Option<bool> {
        Some(self.0.contains(namespace))
    }
}

/// Told about reconciles (metrics).
pub trait ReconcileObserver: Send + Sync {
    fn workload_patched(&self) {}
    fn reconciled(&self) {}
    fn reconcile_failed(&self, _reason: &'static str) {}
    /// A workload copied but not patched because its pods could not pull the copy.
    fn workload_not_pullable(&self) {}
    /// A pull secret was `created` or `updated`.
    fn pull_secret_written(&self, _result: &'static str) {}
}

/// An observer that ignores everything.
pub struct Unobserved;
impl ReconcileObserver for Unobserved {}

/// Everything a reconcile needs, shared by every controller.
pub struct Context {
    pub mirror: Mirror,
    pub policy: Policy,
    pub api: WorkloadApi,
    pub namespaces: Arc<dyn NamespaceOptOuts>,
    pub observer: Arc<dyn ReconcileObserver>,
    /// How pods will pull the copies, asked before a namespace's patch ([`Ungated`] unless
    /// [`Context::with_pull`] sets one).
    pub pull: Arc<dyn PullGate>,
    /// Workloads created after this are news even when their images were already copied.
    pub started_at: k8s_openapi::jiff::Timestamp,
    /// Events told once per episode (rate limits, private sources), not at every retry.
    pub episodes: EpisodeNotices,
    /// Where a workload waits for copies still running (the daemon's controllers); `None`: the
    /// reconcile waits for them itself (`run --once`).
    pub parking: Option<Arc<dyn Parking>>,
}

impl Context {
    pub fn new(
        mirror: Mirror,
        policy: Policy,
        api: WorkloadApi,
        namespaces: Arc<dyn NamespaceOptOuts>,
        observer: Arc<dyn ReconcileObserver>,
    ) -> Self {
        let now = k8s_openapi::jiff::Timestamp::now();
        Context {
            mirror,
            policy,
            api,
            namespaces,
            observer,
            pull: Arc::new(Ungated),
            // creationTimestamp has whole seconds: compare at that resolution.
            started_at: k8s_openapi::jiff::Timestamp::from_second(now.as_second()).unwrap_or(now),
            episodes: EpisodeNotices::default(),
            parking: None,
        }
    }

    /// The same context, parking workloads whose copies are still running in `parking`.
    pub fn with_parking(mut self, parking: Arc<dyn Parking>) -> Self {
        self.parking = Some(parking);
        self
    }

    /// The same context, each patch's answer read for the `resourceVersion` it wrote
    /// ([`Reconciled::written_version`](super::Reconciled::written_version)): for the daemon,
    /// whose watch brings each of its patches back.
    pub fn reading_versions(self) -> Self {
        Context {
            api: self.api.reading_versions(),
            ..self
        }
    }

    /// The same context, asking `pull` before each namespace's patch.
    pub fn with_pull(mut self, pull: Arc<dyn PullGate>) -> Self {
        self.pull = pull;
        self
    }

    /// Workload writes made so far.
    pub fn writes(&self) -> u64 {
        self.api.writes()
    }
}
