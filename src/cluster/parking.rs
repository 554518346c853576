//! The daemon's [`Parking`]: one small task per parked workload waits for its copies, keeps
//! the failures among them for the reconcile that follows, and wakes that reconcile through its kind's
//! controller (`reconcile_on`).
//!
//! Once the daemon is stopping, its controllers take no new work, so a parked workload whose
//! copies end within `shutdown_grace` is reconciled by its waiting task itself (as a reconcile
//! waiting inline on its copies would have finished): [`ParkingLot::stopping`], then
//! [`ParkingLot::idle`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use futures::future::{BoxFuture, join_all};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::audit::WorkloadKey;
use crate::reconcile::parking::{Handed, Parking};
use crate::registry::mirror::CopyWait;
use crate::workload::Kind;

/// How long failures handed to a parked workload are used by its next reconcile. The wake-up
/// comes at once, behind whatever the controller has queued; a reconcile later than this (the
/// safety requeue after a lost wake-up) asks the mirror again rather than trust an old answer.
pub const HANDED_TTL: Duration = Duration::from_secs(60);

/// Runs one workload's reconcile directly (the daemon is stopping).
pub type Finish = Arc<dyn Fn(WorkloadKey) -> BoxFuture<'static, ()> + Send + Sync>;

/// How a kind's parked workloads are woken.
struct Waker {
    controller: mpsc::UnboundedSender<WorkloadKey>,
    finish: Finish,
}

/// Told how many workloads are parked (metrics).
pub trait ParkingObserver: Send + Sync {
    fn waiting(&self, _workloads: usize) {}
}

struct Unobserved;
impl ParkingObserver for Unobserved {}

/// Parked workloads and what their copies ended with. Cheap to clone; clones share all.
#[derive(Clone)]
pub struct ParkingLot {
    inner: Arc<Lot>,
}

struct Lot {
    handed: Mutex<Handoffs>,
    wakers: Mutex<HashMap<Kind, Waker>>,
    stopping: AtomicBool,
    /// Waiting tasks alive.
    waiting: watch::Sender<usize>,
    observer: Arc<dyn ParkingObserver>,
}

/// Failures not yet taken, by workload, with when they were handed.
struct Handoffs {
    by_workload: HashMap<WorkloadKey, (Instant, Handed)>,
    /// The last sweep of the old ones: one per [`HANDED_TTL`], not one per hand-over (a cold
    /// start hands over to thousands of workloads within seconds).
    swept: Instant,
}

impl Default for ParkingLot {
    fn default() -> Self {
        Self::observed(Arc::new(Unobserved))
    }
}

impl ParkingLot {
    /// A lot that tells `observer` how many workloads it holds.
    pub fn observed(observer: Arc<dyn ParkingObserver>) -> Self {
        ParkingLot {
            inner: Arc::new(Lot {
                handed: Mutex::new(Handoffs {
                    by_workload: HashMap::new(),
                    swept: Instant::now(),
                }),
                wakers: Mutex::default(),
                stopping: AtomicBool::new(false),
                waiting: watch::channel(0).0,
                observer,
            }),
        }
    }

    /// The wake-ups of `kind`'s parked workloads, for its controller's `reconcile_on`; `finish`
    /// reconciles one of them directly once the daemon is stopping.
    pub fn register(&self, kind: Kind, finish: Finish) -> mpsc::UnboundedReceiver<WorkloadKey> {
        let (controller, wakeups) = mpsc::unbounded_channel();
        lock(&self.inner.wakers).insert(kind, Waker { controller, finish });
        wakeups
    }

    /// From now on, a workload whose copies end is reconciled by its waiting task.
    pub fn stopping(&self) {
        self.inner.stopping.store(true, Ordering::SeqCst);
    }

    /// Resolves when no parked workload is left waiting.
    pub async fn idle(&self) {
        let mut waiting = self.inner.waiting.subscribe();
        let _ = waiting.wait_for(|n| *n == 0).await;
    }

    /// Parked workloads still waiting on their copies (or being finished).
    pub fn waiting(&self) -> usize {
        *self.inner.waiting.borrow()
    }
}

impl Lot {
    fn count(&self, change: impl FnOnce(usize) -> usize) {
        let mut now = 0;
        self.waiting.send_modify(|n| {
            *n = change(*n);
            now = *n;
        });
        self.observer.waiting(now);
    }

    fn hand(&self, workload: &WorkloadKey, failed: Handed) {
        let mut handed = lock(&self.handed);
        // Failures of a workload that is never reconciled again (deleted meanwhile) go here.
        if handed.swept.elapsed() >= HANDED_TTL {
            handed
                .by_workload
                .retain(|_, (at, _)| at.elapsed() < HANDED_TTL);
            handed.swept = Instant::now();
        }
        handed
            .by_workload
            .entry(workload.clone())
            .or_insert_with(|| (Instant::now(), Handed::new()))
            .1
            .extend(failed);
    }

    /// Its kind's controller reconciles `workload` (or, stopping, its waiting task does).
    async fn wake(&self, workload: WorkloadKey) {
        let finish = {
            let wakers = lock(&self.wakers);
            let Some(waker) = wakers.get(&workload.kind) else {
                return;
            };
            if !self.stopping.load(Ordering::SeqCst) {
                // A controller that has ended takes no wake-up: nothing is left to do then.
                let _ = waker.controller.send(workload);
                return;
            }
            Arc::clone(&waker.finish)
        };
        finish(workload).await;
    }
}

/// Counts a waiting task until it ends, however it ends.
struct Waiting(Arc<Lot>);

impl Waiting {
    fn new(lot: &Arc<Lot>) -> Self {
        lot.count(|n| n + 1);
        Waiting(Arc::clone(lot))
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        self.0.count(|n| n.saturating_sub(1));
    }
}

impl Parking for ParkingLot {
    fn park(&self, workload: WorkloadKey, waits: Vec<CopyWait>) {
        let waiting = Waiting::new(&self.inner);
        tokio::spawn(async move {
            let sources: Vec<String> = waits
                .iter()
                .map(|w| w.source().canonical().into_owned())
                .collect();
            let outcomes = join_all(waits.into_iter().map(CopyWait::outcome)).await;
            let failed: Handed = sources
                .into_iter()
                .zip(outcomes)
                .filter_map(|(source, outcome)| Some((source, outcome.err()?)))
                .collect();
            let lot = &waiting.0;
            if !failed.is_empty() {
                lot.hand(&workload, failed);
            }
            lot.wake(workload).await;
        });
    }

    fn handed(&self, workload: &WorkloadKey) -> Handed {
        match lock(&self.inner.handed).by_workload.remove(workload) {
            Some((at, failed)) if at.elapsed() < HANDED_TTL => failed,
            _ => Handed::new(),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Plain maps updated in single statements: still consistent after a panic elsewhere.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
