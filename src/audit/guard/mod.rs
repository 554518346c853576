//! The rollout guard: a patched workload whose new Pods cannot pull its backup images
//! (`ErrImagePull`/`ImagePullBackOff` on an image under the backup registry) for longer than
//! `rollout_guard_after` gets its original images back, is opted out so that it does not flap,
//! and gets a Warning Event `BackupPullFailed` — once.
//!
//! It watches Pending Pods only (a field selector: the server sends the rest no further), each
//! trimmed to what is read ([`pod`]). How long a Pod has been failing is measured from when the
//! guard first saw it failing: the Pod's status says why it waits, not since when. A restarted
//! daemon starts counting again, so it never acts sooner than asked. Pods are mapped to the
//! workload image-cloner patched through their owners ([`owner`]), and only a workload that
//! still runs the failing image as image-cloner recorded it is touched.

pub mod owner;
pub mod pod;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::StreamExt as _;
use kube::api::Api;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use tokio::time::{Instant, MissedTickBehavior};

use self::owner::Owners;
use self::pod::{FailingPull, PENDING, PendingPod};
use crate::audit::AuditObserver;
use crate::audit::act::{self, Outcome, Request};
use crate::reconcile::{Context, reasons};

/// Pods per list page.
const PAGE_SIZE: u32 = 500;

/// How often the cached Pods are looked at: a quarter of the grace period, within bounds.
pub fn sweep_period(after: Duration) -> Duration {
    (after / 4).clamp(Duration::from_millis(250), Duration::from_secs(15))
}

#[derive(Default)]
struct Seen {
    /// Pod uid → when it was first seen failing to pull a backup image.
    failing_since: HashMap<String, Instant>,
    /// Pods already dealt with (their workload restored, reported, or not ours).
    handled: HashSet<String>,
}

/// The rollout guard of the daemon.
pub struct Guard {
    ctx: Arc<Context>,
    after: Duration,
    observer: Arc<dyn AuditObserver>,
    owners: Owners,
    seen: Mutex<Seen>,
}

impl Guard {
    pub fn new(ctx: Arc<Context>, after: Duration, observer: Arc<dyn AuditObserver>) -> Arc<Self> {
        Arc::new(Guard {
            ctx,
            after,
            observer,
            owners: Owners::default(),
            seen: Mutex::default(),
        })
    }

    fn seen(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.seen.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Watches Pending Pods and acts on the ones stuck on a backup image, until dropped.
    pub async fn run(self: Arc<Self>) {
        let api = Api::<PendingPod>::all(self.ctx.api.client().clone());
        let (reader, writer) = reflector::store();
        let config = watcher::Config::default()
            .fields(PENDING)
            .page_size(PAGE_SIZE);
        let watch = watcher(api, config)
            .default_backoff()
            .modify(pod::trim)
            .reflect(writer)
            .for_each(|event| async move {
                if let Err(e) = event {
                    tracing::warn!(error = %e, "watching Pending Pods for the rollout guard; retrying");
                }
            });
        let sweeps = async {
            let mut ticker = tokio::time::interval(sweep_period(self.after));
            ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
            loop {
                ticker.tick().await;
                self.sweep(&reader).await;
            }
        };
        tokio::join!(watch, sweeps);
    }

    async fn sweep(&self, pods: &Store<PendingPod>) {
        for (pod, pulls) in self.due(&pods.state(), Instant::now()) {
            self.handle(&pod, &pulls).await;
        }
    }

    /// The Pods failing to pull a backup image for `after` or longer and not dealt with yet;
    /// forgets the Pods that are gone or no longer failing.
    fn due(
        &self,
        pods: &[Arc<PendingPod>],
        now: Instant,
    ) -> Vec<(Arc<PendingPod>, Vec<FailingPull>)> {
        let mut seen = self.seen();
        let mut present = HashSet::new();
        let mut due = Vec::new();
        for p in pods {
            let pulls = pod::failing_pulls(p, &self.ctx.policy.backup);
            let Some(uid) = p.metadata.uid.clone().filter(|_| !pulls.is_empty()) else {
                continue;
            };
            let since = *seen.failing_since.entry(uid.clone()).or_insert(now);
            if now.duration_since(since) >= self.after && !seen.handled.contains(&uid) {
                due.push((Arc::clone(p), pulls));
            }
            present.insert(uid);
        }
        seen.failing_since.retain(|uid, _| present.contains(uid));
        seen.handled.retain(|uid| present.contains(uid));
        due
    }

    fn ignored(&self, namespace: &str) -> bool {
        let policy = &self.ctx.policy;
        policy.ignored_namespaces.contains(namespace)
            || (!policy.only_namespaces.is_empty() && !policy.only_namespaces.contains(namespace))
    }

    /// Restores the workload of a Pod stuck on its backup images.
    async fn handle(&self, p: &PendingPod, pulls: &[FailingPull]) {
        let uid = p.metadata.uid.clone().unwrap_or_default();
        let namespace = p.metadata.namespace.clone().unwrap_or_default();
        let pod_name = p.metadata.name.clone().unwrap_or_default();
        if self.ignored(&namespace) {
            self.seen().handled.insert(uid);
            return;
        }
        let key = match self.owners.workload_of(&self.ctx.api, p).await {
            Ok(Some(key)) => key,
            Ok(None) => {
                self.seen().handled.insert(uid);
                return;
            }
            Err(e) => {
                tracing::warn!(pod = pod_name, namespace, error = %e, "finding the workload of a Pod that cannot pull its backup image");
                return;
            }
        };
        let request = Request {
            reason: reasons::BACKUP_PULL_FAILED,
            problem: problem(&pod_name, pulls, self.after),
            restore: true,
            check_originals: false,
            ours: pulls
                .iter()
                .map(|f| f.image.clone())
                .collect::<BTreeSet<_>>(),
        };
        match act::on_workload(&self.ctx, &key, &request).await {
            Outcome::Restored(_) => {
                self.observer.backup_pull_failed();
                self.observer.workload_restored(reasons::BACKUP_PULL_FAILED);
            }
            Outcome::Reported => self.observer.backup_pull_failed(),
            Outcome::NotOurs | Outcome::Gone => {}
            Outcome::Failed(e) => {
                tracing::warn!(workload = %key, error = e, "the rollout guard could not restore the workload; trying again");
                return;
            }
        }
        self.seen().handled.insert(uid);
    }
}

/// The Event's opening: which Pod, which images, for how long, what the kubelet said.
fn problem(pod: &str, pulls: &[FailingPull], after: Duration) -> String {
    let what = pulls
        .iter()
        .map(|f| {
            let message = f
                .message
                .as_deref()
                .map(|m| format!(": {m}"))
                .unwrap_or_default();
            format!("{} ({}{message})", f.image, f.reason)
        })
        .collect::<Vec<_>>()
        .join("; ");
    format!(
        "Pod {pod} could not pull its backup image for over {}: {what}",
        humantime::format_duration(after)
    )
}
