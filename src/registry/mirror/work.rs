//! One piece of the mirror's work, for one source image, as named steps:
//! resolve the source → find an existing copy → copy (in a slot) → verify.

use std::sync::atomic::Ordering;
use std::time::Instant;

use super::gated::{Gated, Throttling};
use super::{Inner, MirrorError, MirroredImage, Outcome};
use crate::image::manifest::{ManifestKind, RawManifest};
use crate::image::naming::{BackupTarget, Pin};
use crate::image::reference::{Digest, ImageRef};
use crate::registry::skopeo::{CopyFormat, SkopeoError};

impl Inner {
    pub(super) fn target(&self, source: &ImageRef) -> Result<BackupTarget, MirrorError> {
        self.options
            .backup
            .target(source, self.options.naming)
            .map_err(|e| MirrorError::Naming {
                image: source.to_string(),
                source: e,
            })
    }

    /// The whole piece of work for `source`.
    pub(super) async fn work(&self, source: &ImageRef) -> Result<MirroredImage, MirrorError> {
        if self.options.backup.contains(source) {
            return self.already_in_backup_registry(source).await;
        }
        let target = self.target(source)?;
        // A source named by digest is checked against the backup first: when the copy is
        // already there the source registry is not asked at all (a GET of a manifest counts
        // as a pull against Docker Hub's rate limit). A source named by tag must be resolved
        // anyway, so both questions go out together.
        let (manifest, existing) = match source.digest() {
            Some(digest) => {
                let existing = self.backup_digest(source, &target).await?;
                if existing.as_ref() == Some(digest) {
                    return Ok(self.found(source, &target, digest.clone(), false));
                }
                if let Some(legacy) = self.legacy_copy(&target, digest).await {
                    return self.retag(source, &legacy, &target, digest).await;
                }
                (self.resolve_source(source).await?, existing)
            }
            None => {
                let (s, b) = tokio::join!(
                    self.resolve_source(source),
                    self.backup_digest(source, &target)
                );
                (s?, b?)
            }
        };
        if let Some(found) = self
            .find_existing(source, &target, &manifest, existing)
            .await
        {
            return Ok(found);
        }
        let from = source.by_digest(&manifest.digest);
        let mut copied = self
            .copy_and_verify(source, &from, &target, &manifest)
            .await?;
        copied.outcome = Outcome::Copied;
        Ok(copied)
    }

    /// A copy an earlier version made under the legacy digest tag, if it holds `digest`.
    async fn legacy_copy(&self, target: &BackupTarget, digest: &Digest) -> Option<ImageRef> {
        let legacy = target.legacy_tagged()?;
        match self.ask(legacy, || self.client.digest(legacy)).await {
            Ok(Some(d)) if &d == digest => Some(legacy.by_digest(digest)),
            _ => None,
        }
    }

    /// Gives a copy found under the legacy tag the current one: a copy within the backup
    /// repository, which moves no layer (the blobs are there), instead of a second copy from
    /// the source.
    async fn retag(
        &self,
        source: &ImageRef,
        legacy: &ImageRef,
        target: &BackupTarget,
        digest: &Digest,
    ) -> Result<MirroredImage, MirrorError> {
        let manifest = RawManifest::modern(digest.clone());
        let mut retagged = self
            .copy_and_verify(source, legacy, target, &manifest)
            .await?;
        tracing::info!(from = %legacy, to = %target.tagged(), "copy of an earlier version given the current digest tag");
        retagged.outcome = Outcome::Retagged;
        Ok(retagged)
    }

    /// The source's manifest, by digest and kind.
    async fn resolve_source(&self, source: &ImageRef) -> Result<RawManifest, MirrorError> {
        match self.ask(source, || self.client.resolve(source)).await {
            Ok(Some(m)) => Ok(m),
            Ok(None) => Err(MirrorError::SourceNotFound {
                image: source.to_string(),
            }),
            Err(e) => Err(MirrorError::ResolveSource {
                image: source.to_string(),
                source: Box::new(e),
            }),
        }
    }

    /// The digest at the backup tag, `None` when absent.
    async fn backup_digest(
        &self,
        source: &ImageRef,
        target: &BackupTarget,
    ) -> Result<Option<Digest>, MirrorError> {
        let tagged = target.tagged();
        self.ask(tagged, || self.client.digest(tagged))
            .await
            .map_err(|e| MirrorError::CheckBackup {
                image: source.to_string(),
                backup: target.tagged().to_string(),
                source: Box::new(e),
            })
    }

    /// The copy already in the backup: the same digest, or — for a schema-1 source, which a
    /// copy converts and so gives a new digest — the same layers.
    async fn find_existing(
        &self,
        source: &ImageRef,
        target: &BackupTarget,
        manifest: &RawManifest,
        existing: Option<Digest>,
    ) -> Option<MirroredImage> {
        let existing = existing?;
        if manifest.kind == ManifestKind::Modern {
            return (existing == manifest.digest)
                .then(|| self.found(source, target, existing, false));
        }
        let tagged = target.tagged();
        match self.ask(tagged, || self.client.manifest(tagged)).await {
            Ok(Some(m)) if m.already_holds(manifest) => {
                Some(self.found(source, target, m.digest, true))
            }
            // Absent, different, or unreadable: copying replaces it, and verification reads it.
            _ => None,
        }
    }

    /// Copies `from` — exactly the manifest that was resolved, by digest, even if the tag
    /// moves meanwhile, and once no other copy into the same backup repository runs —
    /// then checks that the backup tag resolves to the digest the caller will pin.
    async fn copy_and_verify(
        &self,
        source: &ImageRef,
        from: &ImageRef,
        target: &BackupTarget,
        manifest: &RawManifest,
    ) -> Result<MirroredImage, MirrorError> {
        let converted = manifest.kind == ManifestKind::Schema1;
        let format = if converted {
            CopyFormat::ConvertToV2s2
        } else {
            CopyFormat::Preserve
        };
        let backup = target.tagged();
        let pushed = {
            let _turn = self.same_repository.turn(backup).await;
            self.pull(source, from, backup, format).await?
        };
        let expected = if converted {
            pushed.clone()
        } else {
            manifest.digest.clone()
        };
        let verify_failed = |found: String| MirrorError::Verify {
            image: source.to_string(),
            backup: backup.to_string(),
            expected: expected.to_string(),
            found,
        };
        if pushed != expected {
            return Err(verify_failed(format!("{pushed} (skopeo's digest file)")));
        }
        match self.ask(backup, || self.client.digest(backup)).await {
            Ok(Some(d)) if d == expected => {}
            Ok(other) => {
                return Err(verify_failed(
                    other.map_or("nothing (manifest unknown)".into(), |d| d.to_string()),
                ));
            }
            Err(e) => {
                return Err(MirrorError::VerifyLookup {
                    image: source.to_string(),
                    backup: backup.to_string(),
                    source: Box::new(e),
                });
            }
        }
        self.observer.image_mirrored();
        Ok(MirroredImage {
            backup_ref: target.pinned(&expected, self.options.pin),
            source: source.clone(),
            backup: backup.clone(),
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
        let digest = match self.ask(source, || self.client.digest(source)).await {
            Ok(Some(d)) => d,
            Ok(None) => return Err(MirrorError::NotInBackupRegistry { image }),
            Err(e) => {
                return Err(MirrorError::CheckBackup {
                    backup: image.clone(),
                    image,
                    source: Box::new(e),
                });
            }
        };
        let tagged = source.by_tag(source.tag_or_latest());
        let backup_ref = match (source.digest(), self.options.pin) {
            (Some(_), _) => source.to_string(),
            (None, Pin::Digest) => format!("{tagged}@{digest}"),
            (None, Pin::Tag) => tagged.to_string(),
        };
        Ok(MirroredImage {
            source: source.clone(),
            backup: tagged,
            backup_ref,
            digest,
            converted: false,
            outcome: Outcome::SourceInBackupRegistry,
        })
    }

    /// Copies `from` to `dest` if the pull budget of `from`'s registry allows, through its gate
    /// (paused while it rate-limits, copied again after a 429).
    async fn pull(
        &self,
        source: &ImageRef,
        from: &ImageRef,
        dest: &ImageRef,
        format: CopyFormat,
    ) -> Result<Digest, MirrorError> {
        let registry = from.domain();
        let reserve = self.options.pull_budget_reserve;
        if let Err(remaining) = self.client.take_pull(registry, reserve) {
            return Err(MirrorError::PullBudget {
                image: source.to_string(),
                registry: registry.to_owned(),
                remaining,
                reserve,
            });
        }
        let copied = self.gated(registry, || self.copy(from, dest, format)).await;
        copied.map_err(|g| match g {
            Gated::Paused(p) => MirrorError::Throttled {
                image: source.to_string(),
                registry: p.registry,
                retry_after: p.remaining,
            },
            Gated::Failed(CopyAttempt::NotLeading) => MirrorError::NotLeading {
                image: source.to_string(),
            },
            Gated::Failed(CopyAttempt::Failed(e)) => MirrorError::Copy {
                image: source.to_string(),
                backup: dest.to_string(),
                source: Box::new(e),
            },
        })
    }

    /// A copy slot, taken once `registry` is not paused: a copy that waited for a slot while
    /// its registry began to rate-limit gives the slot back and waits on the gate, so that
    /// neither a request nor a slot is spent on a paused registry.
    async fn copy_slot(&self, registry: &str) -> Option<tokio::sync::SemaphorePermit<'_>> {
        loop {
            let slot = self.copy_slots.acquire().await.ok()?;
            if self.gates.paused(registry).is_none() {
                return Some(slot);
            }
            drop(slot);
            if self.gates.wait(registry).await.is_err() {
                return None;
            }
        }
    }

    /// One skopeo copy in a copy slot; the slot is held for the copy alone. The copy gate is
    /// asked once the slot is ours, right before skopeo starts: the wait for a slot can outlast
    /// this replica's leadership.
    async fn copy(
        &self,
        source: &ImageRef,
        dest: &ImageRef,
        format: CopyFormat,
    ) -> Result<Digest, CopyAttempt> {
        let _slot = self.copy_slot(source.domain()).await;
        if !self.gate.may_copy() {
            tracing::info!(source = %source, "not copying: this replica does not lead");
            return Err(CopyAttempt::NotLeading);
        }
        tracing::info!(source = %source, backup = %dest, "copying");
        let _in_flight = InFlight::start(self);
        let started = Instant::now();
        let result = self.client.copy(source, dest, format).await;
        self.observer
            .copy_finished(result.is_ok(), started.elapsed());
        let c = &self.counters;
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
        result.map_err(CopyAttempt::Failed)
    }
}

/// What became of a copy that was let through its registry's gate.
enum CopyAttempt {
    /// The copy gate refused once the slot was ours: this replica does not lead.
    NotLeading,
    Failed(SkopeoError),
}

impl Throttling for CopyAttempt {
    fn throttled(&self) -> Option<Option<std::time::Duration>> {
        match self {
            CopyAttempt::NotLeading => None,
            CopyAttempt::Failed(e) => e.throttled(),
        }
    }
}

impl std::fmt::Display for CopyAttempt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CopyAttempt::NotLeading => f.write_str("this replica does not hold the leader Lease"),
            CopyAttempt::Failed(e) => e.fmt(f),
        }
    }
}

/// Counts a copy in flight for as long as it lives, also when it is dropped mid-copy.
struct InFlight<'a> {
    inner: &'a Inner,
}

impl<'a> InFlight<'a> {
    fn start(inner: &'a Inner) -> Self {
        let c = &inner.counters;
        c.copies_started.fetch_add(1, Ordering::Relaxed);
        let now = c.copies_in_flight.fetch_add(1, Ordering::Relaxed) + 1;
        c.peak_copies_in_flight.fetch_max(now, Ordering::Relaxed);
        inner.observer.copy_started();
        InFlight { inner }
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.inner
            .counters
            .copies_in_flight
            .fetch_sub(1, Ordering::Relaxed);
    }
}
