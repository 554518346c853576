//! The mirror service: makes sure a source image is in the backup registry, verified by digest.
//!
//! It is shared by every reconcile, so three things matter more than the copy itself:
//! - **single-flight**: concurrent asks for one source (500 workloads on `nginx:1.27`) share one
//!   piece of work, run in its own task so that a cancelled caller never kills a copy mid-way;
//! - **a global copy limit** (`max_concurrent_reconciles` skopeo copies at once); registry
//!   checks and verification run outside the copy slots, so a slot only ever waits on skopeo;
//!   copies into one backup repository (two tags of an image, or one by tag and by digest)
//!   run one after the other ([`same_repository`](self::same_repository));
//! - **no needless copy**: the destination is checked first, and an image already there with
//!   the source's digest (or, for a converted schema-1 source, the same layers) is not copied.
//!
//! Success means verified: after a copy the backup tag is read back and must resolve to the
//! digest the caller will pin. Results are remembered (successes for `success_ttl`, or forever
//! for a source named by digest; failures for `failure_ttl`) so that a burst of workloads does
//! not ask a registry the same question again. The steps of one piece of work are in
//! [`work`](self::work); the registries are reached through [`RegistryClient`], each request
//! through its registry's gate ([`gated`](self::gated)): a registry that answers 429 is paused,
//! alone, for as long as it asks.

mod error;
mod gated;
mod same_repository;
mod work;

#[cfg(test)]
pub(crate) mod fake;
#[cfg(test)]
mod gate_tests;
#[cfg(test)]
mod slot_tests;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::{Semaphore, watch};
use tokio::time::Instant;

pub use self::error::MirrorError;
use self::same_repository::SameRepository;
use crate::image::naming::{BackupRegistry, Naming, Pin};
use crate::image::reference::{Digest, ImageRef};
use crate::registry::client::{RegistryClient, Visibility};
use crate::registry::ratelimit::Gates;

/// Told about every copy, for metrics.
pub trait CopyObserver: Send + Sync {
    fn copy_started(&self) {}
    fn copy_finished(&self, _succeeded: bool, _duration: Duration) {}
    /// A copy verified in the backup registry.
    fn image_mirrored(&self) {}
    /// `registry` answered 429 (it is paused; usually a source registry).
    fn source_throttled(&self, _registry: &str) {}
}

/// An observer that ignores everything (`copy`, `plan`, tests).
pub struct Unobserved;
impl CopyObserver for Unobserved {}

/// Asked right before each copy starts: with leader election, only the leader copies.
pub trait CopyGate: Send + Sync {
    fn may_copy(&self) -> bool;
}

/// The gate of a mirror that always copies (`copy`, `run --once`, no leader election).
pub struct Open;
impl CopyGate for Open {
    fn may_copy(&self) -> bool {
        true
    }
}

/// How the mirror names, pins, limits and remembers.
#[derive(Debug, Clone)]
pub struct MirrorOptions {
    pub backup: BackupRegistry,
    pub naming: Naming,
    pub pin: Pin,
    /// Simultaneous skopeo copies.
    pub max_concurrent_copies: usize,
    /// How long a verified copy of a source named by tag is trusted without asking again.
    pub success_ttl: Duration,
    /// How long a failure is returned as-is before the registry is asked again. Short: it only
    /// spares the registry a burst (500 workloads on one missing image fail together), and it
    /// must end before a workload's first retry (the controller's 5 s backoff, −25 % jitter),
    /// or a retry just after an outage meets the remembered failure and the backoff doubles for
    /// nothing — recovery then took over a minute.
    pub failure_ttl: Duration,
    /// Pulls of Docker Hub's budget (`ratelimit-remaining`) left for the nodes: no copy pulls
    /// from a registry that reports this many or fewer.
    pub pull_budget_reserve: u64,
    /// The longest pause of a rate-limited registry a request waits out inline (15 s: a short
    /// `Retry-After` costs a `copy` or a reconcile no failure); a longer one fails the request
    /// at once, without sending it, and the reconcile is retried by its own backoff.
    pub max_gate_wait: Duration,
}

impl MirrorOptions {
    pub fn new(backup: BackupRegistry, naming: Naming, pin: Pin, max_copies: usize) -> Self {
        MirrorOptions {
            backup,
            naming,
            pin,
            max_concurrent_copies: max_copies.max(1),
            success_ttl: Duration::from_secs(600),
            failure_ttl: Duration::from_secs(3),
            pull_budget_reserve: 5,
            max_gate_wait: Duration::from_secs(15),
        }
    }

    /// Simultaneous registry checks, outside the copy slots: twice the copies, at least 4.
    pub fn max_concurrent_checks(&self) -> usize {
        (self.max_concurrent_copies * 2).max(4)
    }
}

/// What `ensure` found or did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// skopeo copied the image; the copy is verified.
    Copied,
    /// The backup registry already held the image at the backup reference.
    AlreadyInBackup,
    /// The source itself lives in the backup registry: nothing to copy.
    SourceInBackupRegistry,
    /// Found under the tag an earlier version gave a digest-only source, and given the
    /// current tag within the backup registry (no layer copied again).
    Retagged,
}

/// A source image and its verified copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MirroredImage {
    pub source: ImageRef,
    /// The backup repository and tag the copy was written to.
    pub backup: ImageRef,
    /// What a workload is patched to (`pin` applied).
    pub backup_ref: String,
    /// The digest of the backup copy (the source's digest unless `converted`).
    pub digest: Digest,
    /// The source was schema 1 and was converted to schema 2, so its digest changed.
    pub converted: bool,
    pub outcome: Outcome,
}

/// Counters of what the mirror did since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MirrorStats {
    pub copies_started: u64,
    pub copies_succeeded: u64,
    pub copies_failed: u64,
    /// `ensure` calls answered by the backup registry already holding the image.
    pub already_in_backup: u64,
    /// `ensure` calls answered from the in-memory record or by joining a running flight.
    pub shared: u64,
    /// `skopeo inspect` processes started.
    pub inspects: u64,
    /// Manifest HEADs sent.
    pub heads: u64,
    pub copies_in_flight: usize,
    /// The most skopeo copies ever running at once.
    pub peak_copies_in_flight: usize,
}

#[derive(Default)]
struct Counters {
    copies_started: AtomicU64,
    copies_succeeded: AtomicU64,
    copies_failed: AtomicU64,
    already_in_backup: AtomicU64,
    shared: AtomicU64,
    copies_in_flight: AtomicUsize,
    peak_copies_in_flight: AtomicUsize,
}

type Flight = watch::Receiver<Option<Result<MirroredImage, MirrorError>>>;

/// What [`Mirror::start`] found: the answer, or the work still running on the source.
#[derive(Debug)]
pub enum Ensured {
    Done(Result<MirroredImage, MirrorError>),
    Running(CopyWait),
}

/// The work on one source, still running: whoever holds it may wait for its outcome, or drop
/// it (the work goes on in its own task).
#[derive(Debug)]
pub struct CopyWait {
    source: ImageRef,
    flight: Flight,
}

impl CopyWait {
    pub fn source(&self) -> &ImageRef {
        &self.source
    }

    /// What the work ended with (`Aborted` when its task was dropped: a runtime shutting down).
    pub async fn outcome(mut self) -> Result<MirroredImage, MirrorError> {
        let done = self.flight.wait_for(Option::is_some).await;
        match done.as_deref() {
            Ok(Some(result)) => result.clone(),
            _ => Err(MirrorError::Aborted {
                image: self.source.to_string(),
            }),
        }
    }
}

struct Record {
    at: Instant,
    result: Result<MirroredImage, MirrorError>,
}

#[derive(Default)]
struct State {
    flights: HashMap<String, Flight, foldhash::fast::RandomState>,
    records: HashMap<String, Record, foldhash::fast::RandomState>,
}

/// Per repository: when its visibility was learnt, and what it is.
type VisibilityCell = Arc<tokio::sync::Mutex<Option<(Instant, Visibility)>>>;

struct Inner {
    client: Arc<dyn RegistryClient>,
    options: MirrorOptions,
    gates: Gates,
    visibility: Mutex<HashMap<String, VisibilityCell, foldhash::fast::RandomState>>,
    copy_slots: Semaphore,
    same_repository: SameRepository,
    state: Mutex<State>,
    counters: Counters,
    observer: Arc<dyn CopyObserver>,
    gate: Arc<dyn CopyGate>,
}

/// The mirror service. Cheap to clone; clones share everything.
#[derive(Clone)]
pub struct Mirror {
    inner: Arc<Inner>,
}

/// Removes a flight from the map when its task ends, finished or dropped (a runtime shutting
/// down mid-copy): a later ask then starts afresh instead of waiting on a flight nobody runs.
struct FlightGuard {
    inner: Arc<Inner>,
    key: String,
}

impl Drop for FlightGuard {
    fn drop(&mut self) {
        self.inner.lock().flights.remove(&self.key);
    }
}

impl Mirror {
    pub fn new(
        client: Arc<dyn RegistryClient>,
        options: MirrorOptions,
        observer: Arc<dyn CopyObserver>,
    ) -> Self {
        Self::gated(client, options, observer, Arc::new(Open))
    }

    /// A mirror that starts a copy only when `gate` allows it.
    pub fn gated(
        client: Arc<dyn RegistryClient>,
        options: MirrorOptions,
        observer: Arc<dyn CopyObserver>,
        gate: Arc<dyn CopyGate>,
    ) -> Self {
        Mirror {
            inner: Arc::new(Inner {
                copy_slots: Semaphore::new(options.max_concurrent_copies.max(1)),
                same_repository: SameRepository::default(),
                gates: Gates::new(options.max_gate_wait),
                visibility: Mutex::default(),
                client,
                options,
                state: Mutex::default(),
                counters: Counters::default(),
                observer,
                gate,
            }),
        }
    }

    pub fn options(&self) -> &MirrorOptions {
        &self.inner.options
    }

    pub fn stats(&self) -> MirrorStats {
        let c = &self.inner.counters;
        let client = self.inner.client.counters();
        MirrorStats {
            copies_started: c.copies_started.load(Ordering::Relaxed),
            copies_succeeded: c.copies_succeeded.load(Ordering::Relaxed),
            copies_failed: c.copies_failed.load(Ordering::Relaxed),
            already_in_backup: c.already_in_backup.load(Ordering::Relaxed),
            shared: c.shared.load(Ordering::Relaxed),
            inspects: client.inspects,
            heads: client.heads,
            copies_in_flight: c.copies_in_flight.load(Ordering::Relaxed),
            peak_copies_in_flight: c.peak_copies_in_flight.load(Ordering::Relaxed),
        }
    }

    /// The number of sources being worked on right now (for a graceful shutdown).
    pub fn flights_in_progress(&self) -> usize {
        self.inner.lock().flights.len()
    }

    /// The remembered result for `source`, if still fresh. Does no I/O.
    pub fn recorded(&self, source: &ImageRef) -> Option<Result<MirroredImage, MirrorError>> {
        let state = self.inner.lock();
        let record = state.records.get(source.canonical().as_ref())?;
        self.inner
            .fresh(source, record)
            .then(|| record.result.clone())
    }

    /// The pinned backup reference if the backup registry already holds a copy at the backup
    /// tag, without copying anything or asking the source registry.
    pub async fn lookup(&self, source: &ImageRef) -> Result<Option<String>, MirrorError> {
        let target = self.inner.target(source)?;
        let tagged = target.tagged();
        match self
            .inner
            .ask(tagged, || self.inner.client.digest(tagged))
            .await
        {
            Ok(Some(d)) => Ok(Some(target.pinned(&d, self.inner.options.pin))),
            Ok(None) => Ok(None),
            Err(e) => Err(MirrorError::CheckBackup {
                image: source.to_string(),
                backup: target.tagged().to_string(),
                source: Box::new(e),
            }),
        }
    }

    /// The digest `image` resolves to in its registry (`None`: no such manifest), asked outside
    /// the copy slots: the audit's one request per backup reference in use.
    pub async fn registry_digest(
        &self,
        image: &ImageRef,
    ) -> Result<Option<Digest>, crate::registry::client::LookupError> {
        self.inner.client.digest(image).await
    }

    /// Forgets what was remembered about `source`, so that the next `ensure` asks the
    /// registries again (a copy once verified can be deleted since).
    pub fn forget(&self, source: &ImageRef) {
        self.inner
            .lock()
            .records
            .remove(source.canonical().as_ref());
    }

    /// Forgets every remembered copy written to `backup` (repository and tag): the audit found
    /// it gone, and no workload may be patched to it on the strength of an old verification.
    pub fn forget_backup(&self, backup: &ImageRef) {
        let tagged = backup.by_tag(backup.tag_or_latest());
        self.inner
            .lock()
            .records
            .retain(|_, r| !matches!(&r.result, Ok(m) if m.backup == tagged));
    }

    /// Makes sure `source` is in the backup registry, verified, and returns where.
    pub async fn ensure(&self, source: &ImageRef) -> Result<MirroredImage, MirrorError> {
        match self.start(source) {
            Ensured::Done(result) => result,
            Ensured::Running(copy) => copy.outcome().await,
        }
    }

    /// [`ensure`](Self::ensure) without waiting: a fresh record answers at once; else the
    /// running work on `source` is joined, or new work started in its own task, to wait for.
    pub fn start(&self, source: &ImageRef) -> Ensured {
        let key = source.canonical();
        let mut state = self.inner.lock();
        if let Some(record) = state.records.get(key.as_ref())
            && self.inner.fresh(source, record)
        {
            self.inner.counters.shared.fetch_add(1, Ordering::Relaxed);
            return Ensured::Done(record.result.clone());
        }
        if let Some(flight) = state.flights.get(key.as_ref()) {
            self.inner.counters.shared.fetch_add(1, Ordering::Relaxed);
            return Ensured::Running(CopyWait {
                source: source.clone(),
                flight: flight.clone(),
            });
        }
        let (tx, rx) = watch::channel(None);
        let key = key.into_owned();
        state.flights.insert(key.clone(), rx.clone());
        let guard = FlightGuard {
            inner: Arc::clone(&self.inner),
            key,
        };
        let wait = CopyWait {
            source: source.clone(),
            flight: rx,
        };
        let source = source.clone();
        tokio::spawn(async move {
            let result = guard.inner.work(&source).await;
            // A refusal of the gate is not the image's fault: the next ask, as leader, copies.
            if !matches!(result, Err(MirrorError::NotLeading { .. })) {
                guard.inner.lock().records.insert(
                    guard.key.clone(),
                    Record {
                        at: Instant::now(),
                        result: result.clone(),
                    },
                );
            }
            drop(guard);
            // Nobody listening is fine: the record holds the result.
            let _ = tx.send(Some(result));
        });
        Ensured::Running(wait)
    }
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // The state holds plain maps updated in single statements: still consistent after a
        // panic elsewhere, so a poisoned lock is taken over rather than spread.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn fresh(&self, source: &ImageRef, record: &Record) -> bool {
        let ttl = match &record.result {
            Ok(_) if source.digest().is_some() => return true,
            Ok(_) => self.options.success_ttl,
            Err(_) => self.options.failure_ttl,
        };
        record.at.elapsed() < ttl
    }
}

/// A mirror for unit tests: `client` in front of the registries, flat names under `backup`
/// pinned by digest, `slots` copy slots, nothing observed.
#[cfg(test)]
pub(crate) fn test_mirror(client: Arc<dyn RegistryClient>, backup: &str, slots: usize) -> Mirror {
    let options = MirrorOptions::new(
        crate::image::naming::BackupRegistry::parse(backup).expect("a backup registry"),
        crate::image::naming::Naming::Flat,
        crate::image::naming::Pin::Digest,
        slots,
    );
    Mirror::new(client, options, Arc::new(Unobserved))
}
