//! The three questions the mirror asks registries, behind one trait, so that the mirror's own
//! logic (single-flight, failure memory, verification) is tested without processes or sockets.
//!
//! [`Registries`] is the real one: a manifest HEAD where it can answer (no process, and a HEAD
//! is not a pull against Docker Hub's rate limit), `skopeo inspect --raw` where the manifest
//! itself is needed (schema 1) or the HEAD cannot answer, and `skopeo copy` for the bytes.
//! Registry checks run under their own limit, never in a copy slot.
//!
//! Two questions serve the source-registry policy: whether a source is public (an anonymous
//! manifest HEAD, `skopeo inspect --no-creds` where the HEAD cannot answer) and whether a pull
//! would eat into the reserve of Docker Hub's pull budget.

use std::sync::atomic::{AtomicU64, Ordering};

use futures::future::BoxFuture;
use thiserror::Error;
use tokio::sync::Semaphore;

use crate::image::manifest::{ManifestError, ManifestKind, RawManifest};
use crate::image::reference::{Digest, ImageRef};
pub use crate::registry::manifest_head::Visibility;
use crate::registry::manifest_head::{HeadError, ManifestHead};
use crate::registry::skopeo::{CopyFormat, Skopeo, SkopeoError};

/// A registry question that could not be answered.
#[derive(Debug, Clone, Error)]
pub enum LookupError {
    #[error(transparent)]
    Skopeo(#[from] SkopeoError),
    #[error(transparent)]
    InvalidManifest(#[from] ManifestError),
    /// A 429 to a manifest HEAD: not retried through skopeo, which would only be throttled
    /// too (a burst against a rate limit is what makes it last).
    #[error("rate-limited by the registry (429) at {url}{}", .retry_after.map(|d| format!("; it asks to retry after {}", humantime::format_duration(d))).unwrap_or_default())]
    RateLimited {
        url: String,
        retry_after: Option<std::time::Duration>,
    },
    /// Neither an anonymous HEAD nor `skopeo inspect --no-creds` could tell whether the
    /// registry serves the image to anyone.
    #[error("cannot tell whether {image} is public: {detail}")]
    Visibility { image: String, detail: String },
}

impl LookupError {
    pub fn is_transient(&self) -> bool {
        match self {
            LookupError::Skopeo(e) => e.is_transient(),
            LookupError::InvalidManifest(_) => false,
            LookupError::RateLimited { .. } | LookupError::Visibility { .. } => true,
        }
    }

    /// `Some(Retry-After)` when the registry answered 429.
    pub fn rate_limited(&self) -> Option<Option<std::time::Duration>> {
        match self {
            LookupError::RateLimited { retry_after, .. } => Some(*retry_after),
            LookupError::Skopeo(SkopeoError::RateLimited { .. }) => Some(None),
            _ => None,
        }
    }

    pub fn skopeo(&self) -> Option<&SkopeoError> {
        match self {
            LookupError::Skopeo(e) => Some(e),
            LookupError::InvalidManifest(_)
            | LookupError::RateLimited { .. }
            | LookupError::Visibility { .. } => None,
        }
    }
}

/// Requests made, for `run --once`'s summary, the bench and the tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClientCounters {
    /// `skopeo inspect` processes started.
    pub inspects: u64,
    /// Manifest HEADs sent.
    pub heads: u64,
}

/// What the mirror needs of registries. Futures are boxed so the trait can sit behind `dyn`.
pub trait RegistryClient: Send + Sync {
    /// The digest `image` resolves to; `None` when the registry has no such manifest. An
    /// unreadable manifest also counts as absent: a copy replaces it, and verification reads
    /// the result.
    fn digest<'a>(
        &'a self,
        image: &'a ImageRef,
    ) -> BoxFuture<'a, Result<Option<Digest>, LookupError>>;

    /// What the source is: its digest and kind. For a modern manifest the layers may be left
    /// empty (they are not needed to copy it byte for byte); a schema-1 manifest is read whole.
    fn resolve<'a>(
        &'a self,
        image: &'a ImageRef,
    ) -> BoxFuture<'a, Result<Option<RawManifest>, LookupError>>;

    /// The whole manifest, layers included.
    fn manifest<'a>(
        &'a self,
        image: &'a ImageRef,
    ) -> BoxFuture<'a, Result<Option<RawManifest>, LookupError>>;

    /// Copies `source` to `dest` as `format`; the digest of what was pushed.
    fn copy<'a>(
        &'a self,
        source: &'a ImageRef,
        dest: &'a ImageRef,
        format: CopyFormat,
    ) -> BoxFuture<'a, Result<Digest, SkopeoError>>;

    /// Whether `image`'s registry serves it without credentials. The default cannot tell,
    /// which keeps a source of unknown privacy from being copied.
    fn visibility<'a>(
        &'a self,
        image: &'a ImageRef,
    ) -> BoxFuture<'a, Result<Visibility, LookupError>> {
        Box::pin(async move {
            Err(LookupError::Visibility {
                image: image.to_string(),
                detail: "this registry client cannot ask anonymously".into(),
            })
        })
    }

    /// Takes one pull from `registry`'s budget (Docker Hub's `ratelimit-remaining`), unless
    /// that would leave no more than `reserve`: then `Err` with what is left. Unknown budgets
    /// hold nothing back.
    fn take_pull(&self, _registry: &str, _reserve: u64) -> Result<(), u64> {
        Ok(())
    }

    fn counters(&self) -> ClientCounters {
        ClientCounters::default()
    }
}

/// skopeo, with manifest HEADs in front where they can answer.
pub struct Registries {
    skopeo: Skopeo,
    head: Option<ManifestHead>,
    /// Simultaneous `skopeo inspect` processes.
    inspect_slots: Semaphore,
    inspects: AtomicU64,
    heads: AtomicU64,
}

impl Registries {
    pub fn new(skopeo: Skopeo, head: Option<ManifestHead>, max_inspects: usize) -> Self {
        Registries {
            skopeo,
            head,
            inspect_slots: Semaphore::new(max_inspects.max(1)),
            inspects: AtomicU64::new(0),
            heads: AtomicU64::new(0),
        }
    }

    pub fn skopeo(&self) -> &Skopeo {
        &self.skopeo
    }

    async fn inspect(&self, image: &ImageRef) -> Result<Option<RawManifest>, LookupError> {
        let _slot = self.inspect_slots.acquire().await;
        self.inspects.fetch_add(1, Ordering::Relaxed);
        match self.skopeo.inspect_raw(image).await {
            Ok(bytes) => Ok(Some(RawManifest::parse(&bytes)?)),
            Err(SkopeoError::ManifestUnknown { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    async fn head_digest(&self, image: &ImageRef) -> Result<Option<Digest>, LookupError> {
        if let Some(head) = &self.head {
            self.heads.fetch_add(1, Ordering::Relaxed);
            match head.digest(image).await {
                Ok(found) => return Ok(found),
                Err(e) => fall_back(image, e)?,
            }
        }
        match self.inspect(image).await {
            Ok(found) => Ok(found.map(|m| m.digest)),
            Err(LookupError::InvalidManifest(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// An anonymous HEAD; where it cannot answer, `skopeo inspect --no-creds`.
    async fn anonymous(&self, image: &ImageRef) -> Result<Visibility, LookupError> {
        if let Some(head) = &self.head {
            self.heads.fetch_add(1, Ordering::Relaxed);
            match head.visibility(image).await {
                Ok(v) => return Ok(v),
                Err(e) => fall_back(image, e)?,
            }
        }
        let _slot = self.inspect_slots.acquire().await;
        self.inspects.fetch_add(1, Ordering::Relaxed);
        match self.skopeo.inspect_anonymous(image).await {
            // Read without credentials; or absent for anyone, which no private registry says.
            Ok(_) | Err(SkopeoError::ManifestUnknown { .. }) => Ok(Visibility::Public),
            Err(SkopeoError::Unauthorized { .. }) => Ok(Visibility::Private),
            Err(e @ SkopeoError::RateLimited { .. }) => Err(e.into()),
            Err(e) => Err(LookupError::Visibility {
                image: image.to_string(),
                detail: e.to_string(),
            }),
        }
    }

    async fn head_resolve(&self, image: &ImageRef) -> Result<Option<RawManifest>, LookupError> {
        if let Some(head) = &self.head {
            let answer = match head.answered_anonymously(image) {
                Some(kept) => Ok(Some(kept)),
                None => {
                    self.heads.fetch_add(1, Ordering::Relaxed);
                    head.resolve(image).await
                }
            };
            match answer {
                Ok(Some(r)) if r.is_modern() => {
                    return Ok(Some(RawManifest {
                        digest: r.digest,
                        kind: ManifestKind::Modern,
                        layers: Vec::new(),
                        media_type: r.media_type,
                    }));
                }
                // Absent, schema 1 or an unknown type: skopeo reads the manifest itself.
                Ok(_) => {}
                Err(e) => fall_back(image, e)?,
            }
        }
        self.inspect(image).await
    }
}

/// Whether a failed HEAD may be asked again through skopeo: yes, but for a 429.
fn fall_back(image: &ImageRef, e: HeadError) -> Result<(), LookupError> {
    match e {
        HeadError::RateLimited { url, retry_after } => {
            Err(LookupError::RateLimited { url, retry_after })
        }
        e => {
            tracing::debug!(image = %image, error = %e, "asking skopeo instead");
            Ok(())
        }
    }
}

impl RegistryClient for Registries {
    fn digest<'a>(
        &'a self,
        image: &'a ImageRef,
    ) -> BoxFuture<'a, Result<Option<Digest>, LookupError>> {
        Box::pin(self.head_digest(image))
    }

    fn resolve<'a>(
        &'a self,
        image: &'a ImageRef,
    ) -> BoxFuture<'a, Result<Option<RawManifest>, LookupError>> {
        Box::pin(self.head_resolve(image))
    }

    fn manifest<'a>(
        &'a self,
        image: &'a ImageRef,
    ) -> BoxFuture<'a, Result<Option<RawManifest>, LookupError>> {
        Box::pin(self.inspect(image))
    }

    fn copy<'a>(
        &'a self,
        source: &'a ImageRef,
        dest: &'a ImageRef,
        format: CopyFormat,
    ) -> BoxFuture<'a, Result<Digest, SkopeoError>> {
        Box::pin(self.skopeo.copy(source, dest, format))
    }

    fn visibility<'a>(
        &'a self,
        image: &'a ImageRef,
    ) -> BoxFuture<'a, Result<Visibility, LookupError>> {
        Box::pin(self.anonymous(image))
    }

    fn take_pull(&self, registry: &str, reserve: u64) -> Result<(), u64> {
        match &self.head {
            Some(head) => head.take_pull(registry, reserve),
            None => Ok(()),
        }
    }

    fn counters(&self) -> ClientCounters {
        ClientCounters {
            inspects: self.inspects.load(Ordering::Relaxed),
            heads: self.heads.load(Ordering::Relaxed),
        }
    }
}
