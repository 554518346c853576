//! The daemon's controllers.
//!
//! One kube-runtime `Controller` per served workload kind, all sharing one [`Context`] (and so
//! one mirror: a copy started for a Deployment is joined by the StatefulSet that needs the same
//! image). Objects arrive from the watch as the partial types read them, without what planning
//! never reads (`workload::partial`). A namespace that stops opting out has its workloads
//! reconciled at once.
//!
//! Error policy: transient failures (network, 5xx, 429, timeouts, a copy that failed on the
//! way) are retried with exponential backoff and jitter, capped; permanent ones (source image
//! missing, unauthorized, invalid reference) got a Warning Event in the reconcile and are
//! retried slowly. Nothing retries in a hot loop.

use std::collections::{BTreeSet, HashMap};
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::{Future, StreamExt, TryStreamExt};
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::controller::{self, Action, Controller};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{PredicateConfig, WatchStreamExt, watcher};
use tokio::sync::broadcast;
use tokio::task::JoinSet;

use crate::audit::{Cached, LastWord, WorkloadKey};
use crate::cluster::list::PAGE_SIZE;
use crate::cluster::own_writes::OwnWrites;
use crate::cluster::parking::{Finish, ParkingLot};
use crate::reconcile::writer::MAX_CONNECTIONS;
use crate::reconcile::{Context, ReconcileError, reconcile};
use crate::workload::{self, Kind, KindVisitor, Workload, WorkloadKind, dispatch};

/// First retry after a transient failure; doubled each time up to [`BACKOFF_CAP`].
const BACKOFF_BASE: Duration = Duration::from_secs(5);
const BACKOFF_CAP: Duration = Duration::from_secs(300);
/// Retry after a permanent failure: slow, in case someone fixed it without touching the
/// workload (pushed the missing image, fixed the credentials).
const PERMANENT_RETRY: Duration = Duration::from_secs(900);
/// Retry of a workload whose namespace's opt-out is not known yet: soon, and without counting
/// as a failure (the namespace cache comes back on its own).
const NAMESPACE_RETRY: Duration = Duration::from_secs(2);
/// Reconciles in flight per kind: twice the connections the writes go on (each takes a few
/// outstanding, `reconcile::writer::PIPELINE_DEPTH`). A workload waiting on copies is parked,
/// holding no slot ([`crate::reconcile::parking`]), so what fills the
/// slots is API calls and registry checks; kube-runtime polls every reconcile in flight at
/// each wake-up of any, so slots beyond what that work can use only cost CPU (callgrind, the
/// bench's daemon cold round: 1.14 billion instructions with 64, 1.00 billion with 16).
const RECONCILES_IN_FLIGHT: u16 = 2 * MAX_CONNECTIONS as u16;
/// A parked workload is reconciled again after this long even without its wake-up (the daemon
/// stopped and started its controllers meanwhile; a copy still running then parks it again).
const PARKED_RECHECK: Duration = Duration::from_secs(300);

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

/// Walks one kind's cache, giving planning's view of each workload to the callback.
type CacheWalk = Arc<dyn Fn(&mut dyn FnMut(Workload)) + Send + Sync>;

/// What every controller shares: the reconcile context, per-object failure counts, the
/// announcements of namespaces that stopped opting out, and the call to reconcile every cached
/// workload (this replica became the leader); and, for the audit and the coverage report
/// ([`Cached`]), each kind's cache and why each workload's last reconcile failed.
pub struct Daemon {
    pub ctx: Arc<Context>,
    failures: Mutex<HashMap<String, u32>>,
    opted_in: broadcast::Sender<String>,
    everything: broadcast::Sender<()>,
    caches: Mutex<Vec<CacheWalk>>,
    last_words: Mutex<HashMap<String, LastWord>>,
    /// Reconciles ended so far ([`Cached::changes`]).
    outcomes: AtomicU64,
    /// Where workloads wait for their copies: the one `ctx` parks them in.
    parking: ParkingLot,
    /// The patches written and not yet seen back through the watch.
    own_writes: OwnWrites,
}

fn key<K: WorkloadKind>(obj: &K) -> String {
    key_of(
        K::KIND,
        &obj.namespace().unwrap_or_default(),
        &obj.name_any(),
    )
}

fn key_of(kind: Kind, namespace: &str, name: &str) -> String {
    format!("{kind}/{namespace}/{name}")
}

impl Daemon {
    /// `opted_in` announces namespaces whose workloads must be reconciled again; `parking` is
    /// where `ctx` parks workloads waiting on copies.
    pub fn new(
        ctx: Arc<Context>,
        opted_in: broadcast::Sender<String>,
        parking: ParkingLot,
    ) -> Arc<Self> {
        Arc::new(Daemon {
            parking,
            ctx,
            failures: Mutex::default(),
            opted_in,
            everything: broadcast::channel(4).0,
            caches: Mutex::default(),
            last_words: Mutex::default(),
            outcomes: AtomicU64::new(0),
            own_writes: OwnWrites::default(),
        })
    }

    /// A message on it reconciles every cached workload of every kind again.
    pub fn reconcile_everything(&self) -> broadcast::Sender<()> {
        self.everything.clone()
    }

    fn failures(&self) -> std::sync::MutexGuard<'_, HashMap<String, u32>> {
        self.failures.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn last_words(&self) -> std::sync::MutexGuard<'_, HashMap<String, LastWord>> {
        self.last_words
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Makes one kind's cache readable by [`Cached::for_each_workload`].
    fn expose<K: WorkloadKind>(&self, store: Store<K>) {
        let walk: CacheWalk = Arc::new(move |f: &mut dyn FnMut(Workload)| {
            for obj in store.state() {
                if !obj.left_to_owner() {
                    f(workload::view(obj.as_ref(), false));
                }
            }
        });
        self.caches
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(walk);
    }

    /// Remembers how a workload's reconcile ended, for the coverage report: its error, or what
    /// held it back from its copies, or nothing.
    /// `workload` is its [`key`].
    fn record_outcome(&self, workload: &str, word: Option<LastWord>) {
        self.outcomes.fetch_add(1, Ordering::Relaxed);
        let mut words = self.last_words();
        match word {
            None => words.remove(workload),
            Some(w) => words.insert(workload.to_owned(), w),
        };
    }
}

impl Cached for Daemon {
    fn for_each_workload(&self, f: &mut dyn FnMut(Workload)) {
        let caches: Vec<CacheWalk> = self
            .caches
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        for walk in caches {
            walk(f);
        }
    }

    fn last_word(&self, w: &WorkloadKey) -> Option<LastWord> {
        self.last_words()
            .get(&key_of(w.kind, &w.namespace, &w.name))
            .cloned()
    }

    fn changes(&self) -> u64 {
        self.outcomes.load(Ordering::Relaxed)
    }
}

async fn reconcile_action<K: WorkloadKind>(
    obj: Arc<K>,
    daemon: Arc<Daemon>,
) -> Result<Action, ReconcileError> {
    // A standby keeps its caches warm and reconciles nothing: when it leads, it reconciles
    // everything cached (`reconcile_everything`), so nothing needs a requeue here.
    if !daemon.ctx.api.guard().allows() {
        return Ok(Action::await_change());
    }
    let workload = key(obj.as_ref());
    let version = obj.resource_version();
    if let Some(echo) = daemon.own_writes.take_echo(&workload, version.as_deref()) {
        // Its own patch, back: the reconcile that wrote it ended with nothing left to do
        // but its requeue, and the workload has not changed since.
        tracing::debug!(
            workload,
            version,
            "the echo of our own patch; not reconciled again"
        );
        return Ok(next_look(echo.requeue));
    }
    // Boxed: kube-runtime's runner creates the futures of every scheduled object before it
    // polls any (10,000 at a warm start), and the pipeline's state machine is ~12 KiB; boxed,
    // it is allocated at the first poll and — for a converged workload, which finishes at
    // once — freed right after.
    let result = Box::pin(reconcile(obj.as_ref(), &daemon.ctx)).await;
    if let Ok(done) = &result {
        if done.parked {
            // Not an outcome: its copies' end wakes it.
            return Ok(Action::requeue(PARKED_RECHECK));
        }
        daemon.failures().remove(&workload);
        let held = done.held_back.as_ref();
        let word = held.map(|(reason, note)| LastWord::new(reason, note.as_str()));
        daemon.record_outcome(&workload, word);
        if let Some(written) = &done.written_version {
            daemon
                .own_writes
                .record(workload, written.clone(), done.requeue);
        }
        daemon.ctx.observer.reconciled();
    }
    result.map(|r| next_look(r.requeue))
}

/// When a reconciled workload is looked at again: at its next change, or after `requeue` (a
/// workload held back because its pods could not pull the copies).
fn next_look(requeue: Option<Duration>) -> Action {
    requeue.map_or_else(Action::await_change, Action::requeue)
}

fn error_policy<K: WorkloadKind>(
    obj: Arc<K>,
    error: &ReconcileError,
    daemon: Arc<Daemon>,
) -> Action {
    // Its lines name the workload as the reconcile's own do (kube-runtime's span is off).
    let _workload = crate::reconcile::span(obj.as_ref()).entered();
    if let ReconcileError::NamespaceUnknown { .. } = error {
        tracing::debug!(error = %error, retry_in = ?NAMESPACE_RETRY, "waiting");
        return Action::requeue(NAMESPACE_RETRY);
    }
    if error.is_not_leading() {
        tracing::info!(error = %error, "left to the leader");
        return Action::await_change();
    }
    daemon.ctx.observer.reconcile_failed(error.reason());
    let workload = key(obj.as_ref());
    let word = LastWord::new(error.reason(), error.to_string());
    daemon.record_outcome(&workload, Some(word));
    if !error.is_transient() {
        tracing::warn!(error = %error, retry_in = ?PERMANENT_RETRY, "needs attention; retrying slowly");
        return Action::requeue(PERMANENT_RETRY);
    }
    let attempt = {
        let mut failures = daemon.failures();
        let n = failures.entry(workload).or_insert(0);
        *n += 1;
        *n
    };
    let delay = backoff(attempt, jitter());
    tracing::warn!(error = %error, attempt, retry_in = ?delay, "transient failure; retrying");
    Action::requeue(delay)
}

/// The cached workloads of a namespace that stopped opting out, as reconcile requests.
fn opted_in_workloads<K: WorkloadKind>(
    announcements: broadcast::Receiver<String>,
    store: Store<K>,
) -> impl futures::Stream<Item = ObjectRef<K>> + Send + 'static {
    let names = futures::stream::unfold(announcements, |mut rx| async move {
        loop {
            match rx.recv().await {
                Ok(namespace) => return Some((namespace, rx)),
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::warn!(
                        missed,
                        "namespace announcements missed; those workloads are reconciled at their next change"
                    );
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    });
    names.flat_map(move |namespace| {
        let refs: Vec<ObjectRef<K>> = store
            .state()
            .iter()
            .filter(|o| o.namespace().as_deref() == Some(namespace.as_str()))
            .map(|o| ObjectRef::from_obj(o.as_ref()))
            .collect();
        futures::stream::iter(refs)
    })
}

/// Parked workloads of kind `K` whose copies ended, as reconcile requests; once the daemon is
/// stopping, its parking lot reconciles them directly (the controller takes no new work).
fn unparked<K: WorkloadKind>(
    daemon: &Arc<Daemon>,
    store: Store<K>,
) -> impl futures::Stream<Item = ObjectRef<K>> + Send + 'static {
    // Weak: the lot is the daemon's own.
    let weak = Arc::downgrade(daemon);
    let finish: Finish = Arc::new(move |w: WorkloadKey| {
        let found = store.get(&ObjectRef::new(&w.name).within(&w.namespace));
        let daemon = weak.upgrade();
        Box::pin(async move {
            let (Some(obj), Some(daemon)) = (found, daemon) else {
                return;
            };
            if let Err(e) = reconcile_action(Arc::clone(&obj), Arc::clone(&daemon)).await {
                error_policy(obj, &e, daemon);
            }
        })
    });
    let wakeups = daemon.parking.register(K::KIND, finish);
    futures::stream::unfold(wakeups, |mut rx| async move {
        let w = rx.recv().await?;
        Some((ObjectRef::new(&w.name).within(&w.namespace), rx))
    })
}

/// One item per call to reconcile everything (a missed call still gives one).
fn everything_calls(
    calls: broadcast::Receiver<()>,
) -> impl futures::Stream<Item = ()> + Send + 'static {
    futures::stream::unfold(calls, |mut rx| async move {
        match rx.recv().await {
            Ok(()) | Err(broadcast::error::RecvError::Lagged(_)) => Some(((), rx)),
            Err(broadcast::error::RecvError::Closed) => None,
        }
    })
}

/// Runs the controller of one kind until `shutdown` resolves and its running reconciles end.
/// `synced` is called once the kind's initial list is in the cache.
async fn control<K: WorkloadKind>(
    daemon: Arc<Daemon>,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
    synced: impl FnOnce(Kind) + Send + 'static,
) {
    let api = Api::<K>::all(daemon.ctx.api.client().clone());
    let (reader, writer) = reflector::store();
    daemon.expose(reader.clone());
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
        .reflect(writer)
        .touched_objects()
        .predicate_filter(workload::relevant_state::<K>, PredicateConfig::default());
    let opted_in = opted_in_workloads(daemon.opted_in.subscribe(), reader.clone());
    let unparked = unparked::<K>(&daemon, reader.clone());
    Controller::for_stream(stream, reader)
        .reconcile_on(opted_in)
        .reconcile_on(unparked)
        .reconcile_all_on(everything_calls(daemon.everything.subscribe()))
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

/// Spawns the controller of one kind.
struct Spawn<'a, S> {
    daemon: &'a Arc<Daemon>,
    shutdown: &'a S,
    synced: &'a Arc<dyn Fn(Kind) + Send + Sync>,
    tasks: &'a mut JoinSet<()>,
}

impl<S> KindVisitor for Spawn<'_, S>
where
    S: Future<Output = ()> + Send + Sync + Clone + 'static,
{
    type Output = ();
    fn visit<K: WorkloadKind>(self) {
        let synced = Arc::clone(self.synced);
        self.tasks.spawn(control::<K>(
            Arc::clone(self.daemon),
            self.shutdown.clone(),
            move |k| synced(k),
        ));
    }
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
        let spawn = Spawn {
            daemon: &daemon,
            shutdown: &shutdown,
            synced: &synced,
            tasks: &mut tasks,
        };
        dispatch(*kind, spawn);
    }
    while tasks.join_next().await.is_some() {}
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
}
