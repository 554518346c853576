//! Whether a registry serves an image to anyone: a manifest HEAD with no credentials at all.
//!
//! A HEAD is not a pull (Docker Hub does not count it), and asking without the docker
//! config's credentials is the only way to learn what a stranger can read. Public: the HEAD
//! answers 200, or 404 from a registry that asked for no credentials (nothing there is
//! private; the copy then reports the image missing). Private: a challenge this client will
//! not answer with credentials (Basic, an unknown scheme), a token endpoint that refuses
//! anonymous requests, or 401/403 — and 404 — to the HEAD sent with an anonymous token
//! (Docker Hub answers a private repository as it answers a missing one, so failing closed
//! is the only safe reading).
//!
//! The mirror resolves the same source a moment later (its digest and media type), by the
//! same HEAD when the docker config holds no credentials for that registry: the privacy
//! screen's answer is then kept for [`ANSWER_REUSED_WITHIN`] and taken once, so each image's
//! path to its copy has one round trip (three, behind a token endpoint) less, and the source
//! registry one request (and one token) less per image.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use http::{Method, StatusCode};
use tokio::time::Instant;

use super::challenge::{Challenge, parse_www_authenticate};
use super::{HeadError, ManifestHead, Resolved, Token, challenge_of, resolved};
use crate::image::reference::ImageRef;

/// How long an anonymous answer may stand in for the mirror's own HEAD: long enough to cover
/// the step from the privacy screen to the mirror's resolve within one reconcile, short enough
/// that a tag moved since is asked again.
pub const ANSWER_REUSED_WITHIN: Duration = Duration::from_secs(10);

/// Whether a registry serves an image without credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Visibility {
    Public,
    /// Served only with credentials.
    Private,
}

/// Anonymous 200 answers from registries the docker config holds no credentials for, by
/// reference, each taken at most once.
#[derive(Debug, Default)]
pub(super) struct AnonymousAnswers(Mutex<HashMap<String, (Resolved, Instant)>>);

impl AnonymousAnswers {
    pub(super) fn keep(&self, image: &ImageRef, answer: Resolved) {
        let now = Instant::now();
        let mut kept = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        // Answers nobody took (the mirror knew the image already) go with the next keep.
        kept.retain(|_, (_, at)| now.duration_since(*at) < ANSWER_REUSED_WITHIN);
        kept.insert(image.to_string(), (answer, now));
    }

    pub(super) fn take(&self, image: &ImageRef) -> Option<Resolved> {
        let mut kept = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let (answer, at) = kept.remove(&image.to_string())?;
        (at.elapsed() < ANSWER_REUSED_WITHIN).then_some(answer)
    }
}

impl ManifestHead {
    /// What [`resolve`](Self::resolve) would answer for `image`, when an anonymous HEAD made
    /// within [`ANSWER_REUSED_WITHIN`] already said it and no credentials would have changed
    /// the question; taken once.
    pub fn answered_anonymously(&self, image: &ImageRef) -> Option<Resolved> {
        self.anonymous_answers.take(image)
    }

    /// Asks `image`'s registry, with no credentials, whether it serves the image.
    pub async fn visibility(&self, image: &ImageRef) -> Result<Visibility, HeadError> {
        self.over_schemes(image, |url, verify| async move {
            self.anonymous_head(&url, image, verify).await
        })
        .await
    }

    async fn anonymous_head(
        &self,
        url: &str,
        image: &ImageRef,
        verify: bool,
    ) -> Result<Visibility, HeadError> {
        let first = self.send(Method::HEAD, url, None, verify).await?;
        let challenged = first.status() == StatusCode::UNAUTHORIZED;
        let response = if challenged {
            let Challenge::Bearer(params) = parse_www_authenticate(&challenge_of(&first)) else {
                // Basic, or a scheme we do not speak: it wants credentials.
                return Ok(Visibility::Private);
            };
            match self.token(&params, image, None, verify).await? {
                Token::Granted { token: t, .. } => {
                    let bearer = format!("Bearer {t}");
                    self.send(Method::HEAD, url, Some(&bearer), verify).await?
                }
                Token::Refused(_) => return Ok(Visibility::Private),
            }
        } else {
            first
        };
        match response.status() {
            StatusCode::OK => {
                self.keep_for_resolve(image, &response);
                Ok(Visibility::Public)
            }
            StatusCode::NOT_FOUND if !challenged => Ok(Visibility::Public),
            StatusCode::NOT_FOUND | StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                Ok(Visibility::Private)
            }
            StatusCode::TOO_MANY_REQUESTS => Err(HeadError::rate_limited(url, response.headers())),
            other => Err(HeadError::Request {
                url: url.to_owned(),
                detail: format!("HTTP {other} to an anonymous manifest HEAD"),
            }),
        }
    }

    /// Keeps a 200 answer for `resolve` when `resolve` would have sent this very request: the
    /// docker config holds nothing for the registry (no `auths` entry, no credential helper).
    /// The rate-limit budget it reports is then the one copies spend, and recorded as
    /// `resolve` would.
    fn keep_for_resolve(&self, image: &ImageRef, response: &http::Response<hyper::body::Incoming>) {
        let domain = image.domain().to_ascii_lowercase();
        if self.has_credentials(&domain) {
            return;
        }
        self.budgets.record(&domain, response.headers());
        // Without a digest header the answer is no use to `resolve`, which then asks itself.
        if let Ok(answer) = resolved(response) {
            self.anonymous_answers.keep(image, answer);
        }
    }
}
