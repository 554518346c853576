//! The daemon's controllers, and `run --once`.
//!
//! One kube-runtime `Controller` per served workload kind, all sharing one [`Context`] (and so
//! one mirror: a copy started for a Deployment is joined by the StatefulSet that needs the same
//! image). Objects are trimmed as they arrive from the watch, before they enter the caches.
//!
//! Error policy: transient failures (network, 5xx, 429, timeouts, a copy that failed on the
//! way) are retried with exponential backoff and jitter, capped; permanent ones (source image
//! missing, unauthorized, invalid reference) got a Warning Event in the reconcile and are
//! retried slowly. Nothing retries in a hot loop.

use std::collections::{BTreeSet, HashMap};
use std::hash::{BuildHasher, Hasher};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::{Future, StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, ListParams};
use kube::runtime::controller::{self, Action, Controller};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{PredicateConfig, WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use tokio::task::JoinSet;

use crate::reconcile::plan::Kind;
use crate::reconcile::{Context, Namespaces, ReconcileError, Reconciled, reconcile};
use crate::workload::partial::{CronJob, DaemonSet, Deployment, Job, Pod, ReplicaSet, StatefulSet};
use crate::workload::{self, WorkloadKind};

/// First retry after a transient failure; doubled each time up to [`BACKOFF_CAP`].
const BACKOFF_BASE: Duration = Duration::from_secs(5);
const BACKOFF_CAP: Duration = Duration::from_secs(300);
/// Retry after a permanent failure: slow, in case someone fixed it without touching the
/// workload (pushed the missing image, fixed the credentials).
const PERMANENT_RETRY: Duration = Duration::from_secs(900);
/// Objects per list page: bounded memory per request at 10,000 workloads.
const PAGE_SIZE: u32 = 500;

/// The kinds a daemon with these settings reads.
pub fn wanted_kinds(bare_pods: bool) -> Vec<Kind> {
    Kind::ALL
        .into_iter()
        .filter(|k| *k != Kind::Pod || bare_pods)
        .collect()
}

/// The delay before retry `attempt` (1-based) of a transient failure, with ±25% jitter.
pub fn backoff(attempt: u32, jitter: f64) -> Duration {
    let exp = BACKOFF_BASE.saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1).min(16)));
    let capped = exp.min(BACKOFF_CAP);
    capped.mul_f64(0.75 + 0.5 * jitter.clamp(0.0, 1.0))
}

fn jitter() -> f64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64),
    );
    (h.finish() % 10_000) as f64 / 10_000.0
}

/// The daemon's shared state: the reconcile context and per-object failure counts.
pub struct Daemon {
    pub ctx: Arc<Context>,
    failures: Mutex<HashMap<String, u32>>,
}

fn key<K: WorkloadKind>(obj: &K) -> String {
    format!(
        "{}/{}/{}",
        K::KIND,
        obj.namespace().unwrap_or_default(),
        obj.name_any()
    )
}

impl Daemon {
    pub fn new(ctx: Arc<Context>) -> Arc<Self> {
        Arc::new(Daemon {
            ctx,
            failures: Mutex::default(),
        })
    }

    fn failures(&self) -> std::sync::MutexGuard<'_, HashMap<String, u32>> {
        self.failures.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Reconciles in flight per kind. Copies are limited elsewhere (the mirror's slots); this only
/// bounds memory: unbounded, kube-runtime's runner starts the futures of all 10,000 objects of
/// a warm start at once. A reconcile waiting on a copy holds a slot, so the bound is far above
/// what copies can keep busy.
const RECONCILES_IN_FLIGHT: u16 = 1024;

async fn reconcile_action<K: WorkloadKind>(
    obj: Arc<K>,
    daemon: Arc<Daemon>,
) -> Result<Action, ReconcileError> {
    // Boxed: kube-runtime's runner creates the futures of every scheduled object before it
    // polls any (10,000 at a warm start), and the pipeline's state machine is ~12 KiB; boxed,
    // it is allocated at the first poll and — for a converged workload, which finishes at
    // once — freed right after.
    let result = Box::pin(reconcile(obj.as_ref(), &daemon.ctx)).await;
    if result.is_ok() {
        daemon.failures().remove(&key(obj.as_ref()));
        daemon.ctx.metrics.reconciled();
    }
    result.map(|_| Action::await_change())
}

fn error_policy<K: WorkloadKind>(
    obj: Arc<K>,
    error: &ReconcileError,
    daemon: Arc<Daemon>,
) -> Action {
    daemon.ctx.metrics.reconcile_failed(error.reason());
    if !error.is_transient() {
        tracing::warn!(error = %error, retry_in = ?PERMANENT_RETRY, "needs attention; retrying slowly");
        return Action::requeue(PERMANENT_RETRY);
    }
    let attempt = {
        let mut failures = daemon.failures();
        let n = failures.entry(key(obj.as_ref())).or_insert(0);
        *n += 1;
        *n
    };
    let delay = backoff(attempt, jitter());
    tracing::warn!(error = %error, attempt, retry_in = ?delay, "transient failure; retrying");
    Action::requeue(delay)
}

/// Runs the controller of one kind until `shutdown` resolves and its running reconciles end.
/// `synced` is called once the kind's initial list is in the cache.
async fn control<K: WorkloadKind>(
    daemon: Arc<Daemon>,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
    synced: impl FnOnce(Kind) + Send + 'static,
) {
    let api = Api::<K>::all(daemon.ctx.client.clone());
    let (reader, writer) = reflector::store();
    let config = watcher::Config::default().page_size(PAGE_SIZE);
    // The initial list is complete at the first InitDone. (Not `Store::wait_until_ready`:
    // its one-shot channel wakes only the last task that polled it — the controller's own
    // runner — so a second waiter never wakes.)
    let mut synced = Some(synced);
    let stream = watcher(api, config)
        .default_backoff()
        .inspect_ok(move |event| {
            if matches!(event, watcher::Event::InitDone)
                && let Some(f) = synced.take()
            {
                f(K::KIND);
            }
        })
        .modify(workload::trim::<K>)
        .reflect(writer)
        .touched_objects()
        .predicate_filter(workload::relevant_state::<K>, PredicateConfig::default());
    Controller::for_stream(stream, reader)
        .with_config(controller::Config::default().concurrency(RECONCILES_IN_FLIGHT))
        .graceful_shutdown_on(shutdown)
        .run(reconcile_action::<K>, error_policy::<K>, daemon)
        .for_each(|result| async move {
            if let Err(e) = result {
                match e {
                    // Reconcile errors were logged by the error policy.
                    kube::runtime::controller::Error::ReconcilerFailed(..) => {}
                    other => tracing::debug!(error = %other, "controller"),
                }
            }
        })
        .await;
}

/// Watches namespaces for the opt-out annotation; returns the live store.
pub fn watch_namespaces(client: Client) -> (Store<Namespace>, tokio::task::JoinHandle<()>) {
    let (reader, writer) = reflector::store();
    let stream = watcher(Api::<Namespace>::all(client), watcher::Config::default())
        .default_backoff()
        .modify(|ns: &mut Namespace| {
            ns.metadata.managed_fields = None;
            ns.spec = None;
            ns.status = None;
        })
        .reflect(writer)
        .touched_objects();
    let task = tokio::spawn(async move {
        stream
            .for_each(|r| async move {
                if let Err(e) = r {
                    tracing::warn!(error = %e, "namespace watch");
                }
            })
            .await;
    });
    (reader, task)
}

/// Runs one controller per kind in `kinds` until `shutdown` fires.
pub async fn run<S>(
    daemon: Arc<Daemon>,
    kinds: &BTreeSet<Kind>,
    shutdown: S,
    synced: Arc<dyn Fn(Kind) + Send + Sync>,
) where
    S: Future<Output = ()> + Send + Sync + Clone + 'static,
{
    let mut tasks = JoinSet::new();
    for kind in kinds {
        let d = Arc::clone(&daemon);
        let s = shutdown.clone();
        let f = Arc::clone(&synced);
        let done = move |k| f(k);
        match kind {
            Kind::Deployment => tasks.spawn(control::<Deployment>(d, s, done)),
            Kind::StatefulSet => tasks.spawn(control::<StatefulSet>(d, s, done)),
            Kind::DaemonSet => tasks.spawn(control::<DaemonSet>(d, s, done)),
            Kind::ReplicaSet => tasks.spawn(control::<ReplicaSet>(d, s, done)),
            Kind::CronJob => tasks.spawn(control::<CronJob>(d, s, done)),
            Kind::Job => tasks.spawn(control::<Job>(d, s, done)),
            Kind::Pod => tasks.spawn(control::<Pod>(d, s, done)),
        };
    }
    while tasks.join_next().await.is_some() {}
}

/// Lists every object of a kind, page by page, trimmed.
pub async fn list_all<K: WorkloadKind>(client: &Client) -> Result<Vec<K>, kube::Error> {
    let api = Api::<K>::all(client.clone());
    let mut out = Vec::new();
    let mut params = ListParams::default().limit(PAGE_SIZE);
    loop {
        let page = api.list(&params).await?;
        out.extend(page.items.into_iter().map(|mut o| {
            workload::trim(&mut o);
            o
        }));
        match page.metadata.continue_ {
            Some(token) if !token.is_empty() => params = params.continue_token(&token),
            _ => break,
        }
    }
    Ok(out)
}

/// The opted-out namespaces, read once.
pub async fn opted_out_namespaces(client: &Client) -> Result<BTreeSet<String>, kube::Error> {
    let list = Api::<Namespace>::all(client.clone())
        .list(&ListParams::default())
        .await?;
    Ok(list
        .items
        .into_iter()
        .filter(|ns| workload::namespace_opted_out(ns.annotations()))
        .map(|ns| ns.name_any())
        .collect())
}

/// What `run --once` did.
#[derive(Debug, Default)]
pub struct OnceSummary {
    pub workloads: usize,
    pub patched: usize,
    pub images_patched: usize,
    pub cloned_only: usize,
    pub invalid: usize,
    pub failed: Vec<String>,
}

async fn once_kind<K: WorkloadKind>(
    ctx: Arc<Context>,
    tasks: &mut JoinSet<Result<Reconciled, ReconcileError>>,
) -> Result<usize, kube::Error> {
    let objects = list_all::<K>(&ctx.client).await?;
    let n = objects.len();
    for obj in objects {
        let ctx = Arc::clone(&ctx);
        tasks.spawn(async move { reconcile(&obj, &ctx).await });
    }
    Ok(n)
}

/// Reconciles every workload present once, all concurrently (the mirror bounds the copies), and
/// waits for all of them.
pub async fn run_once(
    ctx: Arc<Context>,
    kinds: &BTreeSet<Kind>,
) -> Result<OnceSummary, kube::Error> {
    let mut tasks = JoinSet::new();
    let mut summary = OnceSummary::default();
    for kind in kinds {
        let c = Arc::clone(&ctx);
        summary.workloads += match kind {
            Kind::Deployment => once_kind::<Deployment>(c, &mut tasks).await?,
            Kind::StatefulSet => once_kind::<StatefulSet>(c, &mut tasks).await?,
            Kind::DaemonSet => once_kind::<DaemonSet>(c, &mut tasks).await?,
            Kind::ReplicaSet => once_kind::<ReplicaSet>(c, &mut tasks).await?,
            Kind::CronJob => once_kind::<CronJob>(c, &mut tasks).await?,
            Kind::Job => once_kind::<Job>(c, &mut tasks).await?,
            Kind::Pod => once_kind::<Pod>(c, &mut tasks).await?,
        };
    }
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(Ok(r)) => {
                ctx.metrics.reconciled();
                if !r.patched.is_empty() {
                    summary.patched += 1;
                    summary.images_patched += r.patched.len();
                }
                summary.cloned_only += r.cloned_only.len();
                summary.invalid += r.invalid;
            }
            Ok(Err(e)) => {
                ctx.metrics.reconcile_failed(e.reason());
                tracing::warn!(error = %e, "reconcile failed");
                summary.failed.push(e.to_string());
            }
            Err(e) => summary.failed.push(format!("internal error: {e}")),
        }
    }
    Ok(summary)
}

/// Replaces the context's namespace source (the daemon switches to its live store).
pub fn use_namespaces(ctx: &Context, namespaces: Namespaces) {
    *ctx.namespaces
        .write()
        .unwrap_or_else(PoisonError::into_inner) = namespaces;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_five_seconds_and_is_capped_at_five_minutes() {
        let mid = |n| backoff(n, 0.5);
        assert_eq!(mid(1), Duration::from_secs(5));
        assert_eq!(mid(2), Duration::from_secs(10));
        assert_eq!(mid(4), Duration::from_secs(40));
        assert_eq!(mid(7), Duration::from_secs(300));
        assert_eq!(mid(1000), Duration::from_secs(300));
    }

    #[test]
    fn a_retry_never_meets_a_remembered_failure() {
        // The mirror remembers failures briefly; the earliest retry must come after that, or
        // each retry after an outage counts as one more failure and the backoff doubles.
        let options = crate::registry::mirror::MirrorOptions::new(
            crate::image::naming::BackupRegistry::parse("registry.example.com/backup")
                .expect("valid"),
            crate::image::naming::Naming::Flat,
            Default::default(),
            5,
        );
        assert!(
            options.failure_ttl < backoff(1, 0.0),
            "{:?}",
            options.failure_ttl
        );
    }

    #[test]
    fn jitter_stays_within_a_quarter() {
        assert_eq!(backoff(1, 0.0), Duration::from_millis(3750));
        assert_eq!(backoff(1, 1.0), Duration::from_millis(6250));
        for _ in 0..100 {
            let j = jitter();
            assert!((0.0..1.0).contains(&j));
        }
    }

    #[test]
    fn bare_pods_are_opt_in() {
        assert!(!wanted_kinds(false).contains(&Kind::Pod));
        assert!(wanted_kinds(true).contains(&Kind::Pod));
        assert_eq!(wanted_kinds(true).len(), 7);
    }
}
