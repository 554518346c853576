//! The mirror service: makes sure a source image is in the backup registry, verified by digest.
//!
//! It is shared by every reconcile, so three things matter more than the copy itself:
//! - **single-flight**: concurrent asks for one source (500 workloads on `nginx:1.27`) share one
//!   piece of work, run in its own task so that a cancelled caller never kills a copy mid-way;
//! - **a global copy limit** (`max_concurrent_reconciles` skopeo copies at once), with registry
//!   checks on a separate, wider limit so that they never hold a copy slot;
//! - **no needless copy**: the destination is checked first, and an image already there with
//!   the source's digest (or, for a converted schema-1 source, the same layers) is not copied.
//!
//! Success means verified: after a copy the backup tag is read back and must resolve to the
//! digest the caller will pin. Results are remembered (successes for `success_ttl`, or forever
//! for a source named by digest; failures for `failure_ttl`) so that a burst of workloads does
//! not ask a registry the same question again.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use thiserror::Error;
use tokio::sync::{Semaphore, watch};

use crate::image::manifest::{ManifestError, ManifestKind, RawManifest};
use crate::image::naming::{BackupRegistry, BackupTarget, Naming, NamingError, Pin};
use crate::image::reference::{Digest, ImageRef};
use crate::registry::manifest_head::ManifestHead;
use crate::registry::skopeo::{CopyFormat, Skopeo, SkopeoError};

/// Told about every copy, for metrics. Does nothing by default.
pub trait CopyObserver: Send + Sync {
    fn copy_started(&self) {}
    fn copy_finished(&self, _succeeded: bool, _duration: Duration) {}
    /// A copy verified in the backup registry.
    fn image_mirrored(&self) {}
}

/// How the mirror names, pins, limits and remembers.
#[derive(Debug, Clone)]
pub struct MirrorOptions {
    pub backup: BackupRegistry,
    pub naming: Naming,
    pub pin: Pin,
    /// Simultaneous skopeo copies.
    pub max_concurrent_copies: usize,
    /// Simultaneous registry checks (`skopeo inspect`), outside the copy slots.
    pub max_concurrent_inspects: usize,
    /// How long a verified copy of a source named by tag is trusted without asking again.
    pub success_ttl: Duration,
    /// How long a failure is returned as-is before the registry is asked again. Short: it only
    /// spares the registry a burst (500 workloads on one missing image fail together), and it
    /// must end before a workload's first retry (the controller's 5 s backoff, −25 % jitter),
    /// or a retry just after an outage meets the remembered failure and the backoff doubles for
    /// nothing — recovery then took over a minute.
    pub failure_ttl: Duration,
}

impl MirrorOptions {
    pub fn new(backup: BackupRegistry, naming: Naming, pin: Pin, max_copies: usize) -> Self {
        MirrorOptions {
            backup,
            naming,
            pin,
            max_concurrent_copies: max_copies.max(1),
            max_concurrent_inspects: (max_copies * 2).max(4),
            success_ttl: Duration::from_secs(600),
            failure_ttl: Duration::from_secs(3),
        }
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

/// A failed `ensure`, by the step that failed.
#[derive(Debug, Clone, Error)]
pub enum MirrorError {
    #[error("{image}: no backup name: {source}")]
    Naming {
        image: String,
        #[source]
        source: NamingError,
    },
    #[error("{image}: reading the source manifest: {source}")]
    InspectSource {
        image: String,
        #[source]
        source: Box<SkopeoError>,
    },
    #[error("{image}: {source}")]
    SourceManifest {
        image: String,
        #[source]
        source: ManifestError,
    },
    #[error("{image}: checking the backup registry for {backup}: {source}")]
    InspectBackup {
        image: String,
        backup: String,
        #[source]
        source: Box<SkopeoError>,
    },
    #[error("{image}: copying to {backup}: {source}")]
    Copy {
        image: String,
        backup: String,
        #[source]
        source: Box<SkopeoError>,
    },
    #[error("{image}: verifying {backup} after the copy: {source}")]
    VerifyInspect {
        image: String,
        backup: String,
        #[source]
        source: Box<SkopeoError>,
    },
    #[error(
        "{image}: verification failed: {backup} resolves to {found}, expected {expected}; not using it"
    )]
    Verify {
        image: String,
        backup: String,
        expected: String,
        found: String,
    },
    #[error("{image}: the mirror task ended without a result (shutting down?)")]
    Aborted { image: String },
}

impl MirrorError {
    fn skopeo(&self) -> Option<&SkopeoError> {
        match self {
            MirrorError::InspectSource { source, .. }
            | MirrorError::InspectBackup { source, .. }
            | MirrorError::Copy { source, .. }
            | MirrorError::VerifyInspect { source, .. } => Some(source.as_ref()),
            _ => None,
        }
    }

    /// Whether retrying later can succeed without a person: network, 5xx, 429, timeouts, and a
    /// copy that verified wrong (the backup tag moved under us).
    pub fn is_transient(&self) -> bool {
        match self {
            MirrorError::Verify { .. } | MirrorError::Aborted { .. } => true,
            _ => self.skopeo().is_some_and(SkopeoError::is_transient),
        }
    }

    /// A short CamelCase reason, for Kubernetes Events and metrics labels.
    pub fn reason(&self) -> &'static str {
        match self {
            MirrorError::Naming { .. } => "InvalidBackupName",
            MirrorError::SourceManifest { .. } => "InvalidSourceManifest",
            MirrorError::Verify { .. } => "VerificationFailed",
            MirrorError::Aborted { .. } => "Aborted",
            MirrorError::InspectSource { source, .. } => match source.as_ref() {
                SkopeoError::ManifestUnknown { .. } => "SourceNotFound",
                SkopeoError::Unauthorized { .. } => "Unauthorized",
                SkopeoError::RateLimited { .. } => "RateLimited",
                SkopeoError::NotFound { .. } | SkopeoError::NotExecutable { .. } => "SkopeoMissing",
                SkopeoError::Tls { .. } => "SourceTLS",
                _ => "SourceUnavailable",
            },
            MirrorError::InspectBackup { source, .. }
            | MirrorError::Copy { source, .. }
            | MirrorError::VerifyInspect { source, .. } => match source.as_ref() {
                SkopeoError::Unauthorized { .. } => "Unauthorized",
                SkopeoError::RateLimited { .. } => "RateLimited",
                SkopeoError::NotFound { .. } | SkopeoError::NotExecutable { .. } => "SkopeoMissing",
                SkopeoError::ManifestUnknown { .. } => "SourceNotFound",
                _ => "BackupUnavailable",
            },
        }
    }
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
    pub inspects: u64,
    /// Manifest HEADs sent to the backup registry.
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
    inspects: AtomicU64,
    heads: AtomicU64,
    copies_in_flight: AtomicUsize,
    peak_copies_in_flight: AtomicUsize,
}

type Flight = watch::Receiver<Option<Result<MirroredImage, MirrorError>>>;

struct Record {
    at: Instant,
    result: Result<MirroredImage, MirrorError>,
}

#[derive(Default)]
struct State {
    flights: HashMap<String, Flight>,
    records: HashMap<String, Record>,
}

struct Inner {
    skopeo: Skopeo,
    options: MirrorOptions,
    copy_slots: Semaphore,
    inspect_slots: Semaphore,
    state: Mutex<State>,
    counters: Counters,
    observer: Option<Arc<dyn CopyObserver>>,
    head: Option<ManifestHead>,
}

/// The mirror service. Cheap to clone; clones share everything.
#[derive(Clone)]
pub struct Mirror {
    inner: Arc<Inner>,
}

impl Mirror {
    pub fn new(skopeo: Skopeo, options: MirrorOptions) -> Self {
        Mirror {
            inner: Arc::new(Inner {
                copy_slots: Semaphore::new(options.max_concurrent_copies.max(1)),
                inspect_slots: Semaphore::new(options.max_concurrent_inspects.max(1)),
                skopeo,
                options,
                state: Mutex::default(),
                counters: Counters::default(),
                observer: None,
                head: None,
            }),
        }
    }

    /// The same mirror, asking the backup registry with manifest HEADs (falling back to
    /// `skopeo inspect` whenever a HEAD cannot answer). Call before sharing it.
    pub fn with_manifest_head(self, head: ManifestHead) -> Self {
        match Arc::try_unwrap(self.inner) {
            Ok(mut inner) => {
                inner.head = Some(head);
                Mirror {
                    inner: Arc::new(inner),
                }
            }
            Err(inner) => Mirror { inner },
        }
    }

    /// The same mirror, reporting its copies to `observer`. Call before sharing it.
    pub fn with_observer(self, observer: Arc<dyn CopyObserver>) -> Self {
        match Arc::try_unwrap(self.inner) {
            Ok(mut inner) => {
                inner.observer = Some(observer);
                Mirror {
                    inner: Arc::new(inner),
                }
            }
            Err(inner) => Mirror { inner },
        }
    }

    pub fn options(&self) -> &MirrorOptions {
        &self.inner.options
    }

    pub fn stats(&self) -> MirrorStats {
        let c = &self.inner.counters;
        MirrorStats {
            copies_started: c.copies_started.load(Ordering::Relaxed),
            copies_succeeded: c.copies_succeeded.load(Ordering::Relaxed),
            copies_failed: c.copies_failed.load(Ordering::Relaxed),
            already_in_backup: c.already_in_backup.load(Ordering::Relaxed),
            shared: c.shared.load(Ordering::Relaxed),
            inspects: c.inspects.load(Ordering::Relaxed),
            heads: c.heads.load(Ordering::Relaxed),
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
        let record = state.records.get(&source.canonical())?;
        self.inner
            .fresh(source, record)
            .then(|| record.result.clone())
    }

    /// The pinned backup reference if the backup registry already holds a copy at the backup
    /// tag, without copying anything or asking the source registry.
    pub async fn lookup(&self, source: &ImageRef) -> Result<Option<String>, MirrorError> {
        let target = self
            .inner
            .options
            .backup
            .target(source, self.inner.options.naming)
            .map_err(|e| MirrorError::Naming {
                image: source.to_string(),
                source: e,
            })?;
        match self.inner.backup_digest(target.tagged()).await {
            Ok(Some(d)) => Ok(Some(target.pinned(&d, self.inner.options.pin))),
            Ok(None) => Ok(None),
            Err(e) => Err(MirrorError::InspectBackup {
                image: source.to_string(),
                backup: target.tagged().to_string(),
                source: Box::new(e),
            }),
        }
    }

    /// Makes sure `source` is in the backup registry, verified, and returns where.
    pub async fn ensure(&self, source: &ImageRef) -> Result<MirroredImage, MirrorError> {
        let key = source.canonical();
        let mut flight = {
            let mut state = self.inner.lock();
            if let Some(record) = state.records.get(&key)
                && self.inner.fresh(source, record)
            {
                self.inner.counters.shared.fetch_add(1, Ordering::Relaxed);
                return record.result.clone();
            }
            if let Some(flight) = state.flights.get(&key) {
                self.inner.counters.shared.fetch_add(1, Ordering::Relaxed);
                flight.clone()
            } else {
                let (tx, rx) = watch::channel(None);
                state.flights.insert(key.clone(), rx.clone());
                let inner = Arc::clone(&self.inner);
                let source = source.clone();
                tokio::spawn(async move {
                    let result = inner.work(&source).await;
                    {
                        let mut state = inner.lock();
                        state.flights.remove(&key);
                        state.records.insert(
                            key,
                            Record {
                                at: Instant::now(),
                                result: result.clone(),
                            },
                        );
                    }
                    // Nobody listening is fine: the record holds the result.
                    let _ = tx.send(Some(result));
                });
                rx
            }
        };
        let done = flight.wait_for(Option::is_some).await;
        match done.as_deref() {
            Ok(Some(result)) => result.clone(),
            _ => Err(MirrorError::Aborted {
                image: source.to_string(),
            }),
        }
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

    async fn inspect(&self, image: &ImageRef) -> Result<Option<RawManifest>, InspectError> {
        let _slot = self.inspect_slots.acquire().await;
        self.counters.inspects.fetch_add(1, Ordering::Relaxed);
        match self.skopeo.inspect_raw(image).await {
            Ok(bytes) => RawManifest::parse(&bytes)
                .map(Some)
                .map_err(InspectError::Manifest),
            Err(SkopeoError::ManifestUnknown { .. }) => Ok(None),
            Err(e) => Err(InspectError::Skopeo(e)),
        }
    }

    /// The digest at `image` in the backup registry, `None` when absent: by manifest HEAD when
    /// the client can answer, else by `skopeo inspect`. An unreadable manifest counts as
    /// absent (the copy replaces it, and verification reads the result).
    async fn backup_digest(&self, image: &ImageRef) -> Result<Option<Digest>, SkopeoError> {
        if let Some(head) = &self.head {
            self.counters.heads.fetch_add(1, Ordering::Relaxed);
            match head.digest(image).await {
                Ok(found) => return Ok(found),
                Err(e) => tracing::debug!(image = %image, error = %e, "asking skopeo instead"),
            }
        }
        match self.inspect(image).await {
            Ok(found) => Ok(found.map(|m| m.digest)),
            Err(InspectError::Manifest(_)) => Ok(None),
            Err(InspectError::Skopeo(e)) => Err(e),
        }
    }

    async fn work(&self, source: &ImageRef) -> Result<MirroredImage, MirrorError> {
        let image = source.to_string();
        if self.options.backup.contains(source) {
            return self.already_in_backup_registry(source).await;
        }
        let target = self
            .options
            .backup
            .target(source, self.options.naming)
            .map_err(|e| MirrorError::Naming {
                image: image.clone(),
                source: e,
            })?;
        let backup = target.tagged().clone();
        let backup_name = backup.to_string();
        // The backup side is asked for a digest only (a manifest HEAD when possible).
        let backup_digest = || async {
            self.backup_digest(&backup)
                .await
                .map_err(|e| MirrorError::InspectBackup {
                    image: image.clone(),
                    backup: backup_name.clone(),
                    source: Box::new(e),
                })
        };
        // The source by manifest HEAD when it answers with a modern manifest type (no skopeo
        // process, and a HEAD is not a pull against Docker Hub's rate limit); by skopeo when
        // the manifest itself is needed (schema 1) or the HEAD cannot answer.
        let inspect_source = || async {
            if let Some(head) = &self.head {
                self.counters.heads.fetch_add(1, Ordering::Relaxed);
                match head.resolve(source).await {
                    Ok(Some(r)) if r.is_modern() => {
                        return Ok(RawManifest {
                            digest: r.digest,
                            kind: ManifestKind::Modern,
                            layers: Vec::new(),
                            media_type: r.media_type,
                        });
                    }
                    Ok(_) => {}
                    Err(e) => tracing::debug!(image = %source, error = %e, "asking skopeo instead"),
                }
            }
            self.inspect(source).await.and_then(|m| {
                m.ok_or_else(|| {
                    InspectError::Skopeo(SkopeoError::ManifestUnknown {
                        command: crate::registry::skopeo::CommandLine(format!(
                            "skopeo inspect --raw {}",
                            crate::registry::skopeo::transport(source)
                        )),
                        summary: format!("{source} not found in its registry"),
                        stderr: String::new(),
                    })
                })
            })
        };
        let source_error = |e: InspectError| match e {
            InspectError::Skopeo(e) => MirrorError::InspectSource {
                image: image.clone(),
                source: Box::new(e),
            },
            InspectError::Manifest(e) => MirrorError::SourceManifest {
                image: image.clone(),
                source: e,
            },
        };

        // A source named by digest is checked against the backup first: when the copy is
        // already there the source registry is not asked at all (a GET of a manifest counts
        // as a pull against Docker Hub's rate limit). A source named by tag must be resolved
        // anyway, so both questions go out together.
        let (source_manifest, existing) = match source.digest() {
            Some(digest) => {
                let existing = backup_digest().await?;
                if existing.as_ref() == Some(digest) {
                    return Ok(self.found(source, &target, digest.clone(), false));
                }
                (inspect_source().await.map_err(source_error)?, existing)
            }
            None => {
                let (s, b) = tokio::join!(inspect_source(), backup_digest());
                (s.map_err(source_error)?, b?)
            }
        };
        let converted = source_manifest.kind == ManifestKind::Schema1;
        match (&existing, converted) {
            (Some(d), false) if *d == source_manifest.digest => {
                return Ok(self.found(source, &target, d.clone(), false));
            }
            // A converted copy has its own digest: compare the layers, from the full manifest.
            (Some(_), true) => {
                if let Ok(Some(m)) = self.inspect(&backup).await
                    && m.already_holds(&source_manifest)
                {
                    return Ok(self.found(source, &target, m.digest, true));
                }
            }
            _ => {}
        }

        let format = if converted {
            CopyFormat::ConvertToV2s2
        } else {
            CopyFormat::Preserve
        };
        // Copy exactly what was inspected, even if the tag moves meanwhile.
        let pinned_source = source.by_digest(&source_manifest.digest);
        let pushed = self
            .copy(&pinned_source, &backup, format)
            .await
            .map_err(|e| MirrorError::Copy {
                image: image.clone(),
                backup: backup_name.clone(),
                source: Box::new(e),
            })?;
        let expected = if converted {
            pushed.clone()
        } else {
            source_manifest.digest.clone()
        };
        if pushed != expected {
            return Err(MirrorError::Verify {
                image,
                backup: backup_name,
                expected: expected.to_string(),
                found: format!("{pushed} (skopeo's digest file)"),
            });
        }
        let found = self
            .backup_digest(&backup)
            .await
            .map_err(|e| MirrorError::VerifyInspect {
                image: image.clone(),
                backup: backup_name.clone(),
                source: Box::new(e),
            })?;
        match found {
            Some(d) if d == expected => {}
            other => {
                return Err(MirrorError::Verify {
                    image,
                    backup: backup_name,
                    expected: expected.to_string(),
                    found: other.map_or("nothing (manifest unknown)".into(), |d| d.to_string()),
                });
            }
        }
        if let Some(o) = &self.observer {
            o.image_mirrored();
        }
        Ok(MirroredImage {
            backup_ref: target.pinned(&expected, self.options.pin),
            source: source.clone(),
            backup,
            digest: expected,
            converted,
            outcome: Outcome::Copied,
        })
    }

    fn found(
        &self,
        source: &ImageRef,
        target: &BackupTarget,
        digest: Digest,
        converted: bool,
    ) -> MirroredImage {
        self.counters
            .already_in_backup
            .fetch_add(1, Ordering::Relaxed);
        MirroredImage {
            backup_ref: target.pinned(&digest, self.options.pin),
            source: source.clone(),
            backup: target.tagged().clone(),
            digest,
            converted,
            outcome: Outcome::AlreadyInBackup,
        }
    }

    /// A source already under the backup registry is used as it is; it must exist there.
    async fn already_in_backup_registry(
        &self,
        source: &ImageRef,
    ) -> Result<MirroredImage, MirrorError> {
        let image = source.to_string();
        let manifest = match self.inspect(source).await {
            Ok(Some(m)) => m,
            Ok(None) => {
                return Err(MirrorError::InspectBackup {
                    backup: image.clone(),
                    image,
                    source: Box::new(SkopeoError::ManifestUnknown {
                        command: crate::registry::skopeo::CommandLine(format!(
                            "skopeo inspect --raw {}",
                            crate::registry::skopeo::transport(source)
                        )),
                        summary: "not found in the backup registry".into(),
                        stderr: String::new(),
                    }),
                });
            }
            Err(InspectError::Skopeo(e)) => {
                return Err(MirrorError::InspectBackup {
                    backup: image.clone(),
                    image,
                    source: Box::new(e),
                });
            }
            Err(InspectError::Manifest(e)) => {
                return Err(MirrorError::SourceManifest { image, source: e });
            }
        };
        let tagged = source.by_tag(source.tag_or_latest());
        let backup_ref = match (source.digest(), self.options.pin) {
            (Some(_), _) => source.to_string(),
            (None, Pin::Digest) => format!("{tagged}@{}", manifest.digest),
            (None, Pin::Tag) => tagged.to_string(),
        };
        Ok(MirroredImage {
            source: source.clone(),
            backup: tagged,
            backup_ref,
            digest: manifest.digest,
            converted: false,
            outcome: Outcome::SourceInBackupRegistry,
        })
    }

    async fn copy(
        &self,
        source: &ImageRef,
        dest: &ImageRef,
        format: CopyFormat,
    ) -> Result<Digest, SkopeoError> {
        let _slot = self.copy_slots.acquire().await;
        let c = &self.counters;
        c.copies_started.fetch_add(1, Ordering::Relaxed);
        let now = c.copies_in_flight.fetch_add(1, Ordering::Relaxed) + 1;
        c.peak_copies_in_flight.fetch_max(now, Ordering::Relaxed);
        let started = Instant::now();
        if let Some(o) = &self.observer {
            o.copy_started();
        }
        let result = self.skopeo.copy(source, dest, format).await;
        c.copies_in_flight.fetch_sub(1, Ordering::Relaxed);
        if let Some(o) = &self.observer {
            o.copy_finished(result.is_ok(), started.elapsed());
        }
        match &result {
            Ok(digest) => {
                c.copies_succeeded.fetch_add(1, Ordering::Relaxed);
                tracing::info!(
                    source = %source, backup = %dest, digest = %digest,
                    converted = format == CopyFormat::ConvertToV2s2,
                    seconds = started.elapsed().as_secs_f64(),
                    "copied"
                );
            }
            Err(e) => {
                c.copies_failed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(source = %source, backup = %dest, error = %e, "copy failed");
            }
        }
        result
    }
}

enum InspectError {
    Skopeo(SkopeoError),
    Manifest(ManifestError),
}
