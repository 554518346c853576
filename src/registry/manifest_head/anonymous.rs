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

use http::{Method, StatusCode};

use super::challenge::{Challenge, parse_www_authenticate};
use super::{HeadError, ManifestHead, Token, challenge_of};
use crate::image::reference::ImageRef;

/// Whether a registry serves an image without credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Visibility {
    Public,
    /// Served only with credentials.
    Private,
}

impl ManifestHead {
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
                Token::Granted(t) => {
                    let bearer = format!("Bearer {t}");
                    self.send(Method::HEAD, url, Some(&bearer), verify).await?
                }
                Token::Refused(_) => return Ok(Visibility::Private),
            }
        } else {
            first
        };
        match response.status() {
            StatusCode::OK => Ok(Visibility::Public),
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
}
