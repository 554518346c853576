//! Every registry request of the mirror goes through the registry's gate
//! ([`Gates`](crate::registry::ratelimit::Gates)): it waits while that registry is paused, a
//! 429 pauses it (for its `Retry-After`, with backoff) and is asked again once the gate opens,
//! at most [`ATTEMPTS`] times per piece of work — never in a hot loop. The other registries
//! are not affected. Also here: whether a source is public, cached per repository.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::{Inner, Mirror, MirrorError};
use crate::image::reference::ImageRef;
use crate::registry::client::{LookupError, Visibility};
use crate::registry::ratelimit::Paused;
use crate::registry::skopeo::SkopeoError;

/// Tries of one request against a registry that keeps answering 429.
pub(super) const ATTEMPTS: u32 = 3;

/// Why a gated request did not succeed.
pub(super) enum Gated<E> {
    /// Not sent: the registry is paused for longer than a request waits.
    Paused(Paused),
    Failed(E),
}

/// An error that may be a registry's 429, with its `Retry-After` when it gave one.
pub(super) trait Throttling {
    fn throttled(&self) -> Option<Option<Duration>>;
}

impl Throttling for LookupError {
    fn throttled(&self) -> Option<Option<Duration>> {
        self.rate_limited()
    }
}

impl Throttling for SkopeoError {
    fn throttled(&self) -> Option<Option<Duration>> {
        self.is_rate_limited().then_some(None)
    }
}

/// A lookup that was not sent reads like the 429 that paused the registry.
fn paused_lookup(p: Paused) -> LookupError {
    LookupError::RateLimited {
        url: format!("{} (paused after a 429; not asked again yet)", p.registry),
        retry_after: Some(p.remaining),
    }
}

impl Inner {
    /// `request` to `registry` through its gate, asked again after a 429 once the gate opens.
    pub(super) async fn gated<T, E, F, Fut>(
        &self,
        registry: &str,
        mut request: F,
    ) -> Result<T, Gated<E>>
    where
        E: Throttling + std::fmt::Display,
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let mut attempt = 1;
        loop {
            self.gates.wait(registry).await.map_err(Gated::Paused)?;
            let result = request().await;
            let Some(retry_after) = result.as_ref().err().and_then(Throttling::throttled) else {
                self.gates.answered(registry);
                return result.map_err(Gated::Failed);
            };
            let pause = self.gates.throttled(registry, retry_after);
            self.observer.source_throttled(registry);
            tracing::warn!(
                registry, attempt, pause = %humantime::format_duration(pause),
                "rate-limited (429): pausing every request to this registry"
            );
            if attempt >= ATTEMPTS {
                return result.map_err(Gated::Failed);
            }
            attempt += 1;
        }
    }

    /// A registry lookup about `image`, through its registry's gate.
    pub(super) async fn ask<T, F, Fut>(
        &self,
        image: &ImageRef,
        request: F,
    ) -> Result<T, LookupError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, LookupError>>,
    {
        self.gated(image.domain(), request)
            .await
            .map_err(|g| match g {
                Gated::Paused(p) => paused_lookup(p),
                Gated::Failed(e) => e,
            })
    }
}

impl Mirror {
    /// Whether `source`'s registry serves it to anyone (an anonymous manifest HEAD), asked once
    /// per repository while the answer is younger than `success_ttl`; concurrent asks for one
    /// repository share one request. Failures are not remembered. A repository found private,
    /// or public again, is logged then, once: a reconcile asks at every pass, and 500
    /// workloads on one private image would otherwise log 500 lines at each.
    pub async fn visibility(&self, source: &ImageRef) -> Result<Visibility, MirrorError> {
        let inner = &self.inner;
        let cell = {
            let mut cells = inner
                .visibility
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            // Looked up by the borrowed name first: the entry's key is made only once.
            match cells.get(source.repository()) {
                Some(cell) => Arc::clone(cell),
                None => Arc::clone(cells.entry(source.repository().to_owned()).or_default()),
            }
        };
        let mut known = cell.lock().await;
        if let Some((at, v)) = *known
            && at.elapsed() < inner.options.success_ttl
        {
            return Ok(v);
        }
        let v = inner
            .ask(source, || inner.client.visibility(source))
            .await
            .map_err(|e| MirrorError::CheckVisibility {
                image: source.to_string(),
                source: Box::new(e),
            })?;
        let before = known.map(|(_, v)| v);
        *known = Some((Instant::now(), v));
        match (before, v) {
            (Some(Visibility::Private), Visibility::Private) => {}
            (_, Visibility::Private) => tracing::info!(
                repository = %source.repository(),
                "source repository private: its images are not copied (copy_private_sources)"
            ),
            (Some(Visibility::Private), Visibility::Public) => tracing::info!(
                repository = %source.repository(),
                "source repository public again: its images are copied"
            ),
            (_, Visibility::Public) => {}
        }
        Ok(v)
    }
}
