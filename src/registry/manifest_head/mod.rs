//! A manifest HEAD against the backup registry: which digest a tag resolves to, in one or two
//! round trips instead of a skopeo process (~30 ms of start-up each on a small machine). The
//! mirror asks the backup registry this question twice per copy (before: already there? after:
//! verified?), so this is most of image-cloner's overhead over a plain `skopeo copy`.
//!
//! It speaks the distribution token protocol (Basic, or Bearer tokens from the realm the
//! registry names) with the `auths` credentials of the docker config — remembering what each
//! registry asked for and the tokens it granted (`auth_memo.rs`), so that a question is one
//! request, not a refusal first — verifies TLS against the
//! system roots plus `cert_dir`, and relaxes TLS only for `insecure_registries`. Anything it
//! does not handle — a credential helper, an unexpected answer — is reported as
//! [`HeadError::Unsupported`] and the mirror falls back to `skopeo inspect`, so correctness
//! never depends on it. A 429 is [`HeadError::RateLimited`] (with its `Retry-After`): skopeo
//! would meet the same limit, only after its own silent backoff and the inspect timeout.
//!
//! Two more questions ride on the same requests: whether a source is public, by a HEAD sent
//! with no credentials at all ([`ManifestHead::visibility`], `anonymous.rs`), and how much of
//! Docker Hub's pull budget is left (`ratelimit-remaining`, `budget.rs`).

mod anonymous;
mod auth_memo;
mod budget;
mod challenge;
mod error;
mod retry_after;
mod tls;
mod turns;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use http::{Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Empty};

use crate::image::reference::{Digest, ImageRef};

use anonymous::AnonymousAnswers;
pub use anonymous::{ANSWER_REUSED_WITHIN, Visibility};
use auth_memo::{AuthMemo, TokenKey, origin_of};
use budget::Budgets;
use challenge::{Challenge, parse_www_authenticate, percent_encode};
pub use error::HeadError;
pub use retry_after::parse_retry_after;
use tls::{AcceptAny, HttpsClient, VerifiedClient, client};
pub use tls::{TlsSetupError, preload_system_roots};
pub use turns::QUESTIONS_PER_REGISTRY;
use turns::Turns;

/// Every manifest type a backup tag can hold.
const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.v1+prettyjws";

/// What a manifest HEAD tells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub digest: Digest,
    pub media_type: Option<String>,
}

impl Resolved {
    /// A modern manifest (copied byte for byte); `false` for schema 1 or an unknown type,
    /// which need the manifest itself.
    pub fn is_modern(&self) -> bool {
        matches!(
            self.media_type.as_deref(),
            Some(
                "application/vnd.oci.image.index.v1+json"
                    | "application/vnd.oci.image.manifest.v1+json"
                    | "application/vnd.docker.distribution.manifest.list.v2+json"
                    | "application/vnd.docker.distribution.manifest.v2+json"
            )
        )
    }
}

/// Credentials for one registry: the `auth` value of the docker config (base64 `user:pass`).
#[derive(Clone)]
pub struct BasicAuth(pub String);

impl std::fmt::Debug for BasicAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BasicAuth(***)")
    }
}

/// Asks registries which digest a reference resolves to.
#[derive(Clone)]
pub struct ManifestHead {
    verified: Arc<VerifiedClient>,
    unverified: HttpsClient,
    insecure: Arc<Vec<String>>,
    auths: Arc<HashMap<String, BasicAuth>>,
    /// Registries whose credentials come from a helper this client cannot run.
    helper_hosts: Arc<Vec<String>>,
    timeout: Duration,
    /// Docker Hub's `ratelimit-remaining`, by registry, from the answers to credentialed
    /// requests (the budget copies spend).
    budgets: Arc<Budgets>,
    /// The privacy screen's answers, for `resolve` to reuse (`anonymous.rs`).
    anonymous_answers: Arc<AnonymousAnswers>,
    /// Challenges and tokens, so that a question is not refused first (`auth_memo.rs`).
    memo: Arc<AuthMemo>,
    /// A few questions at a time to each registry (`turns.rs`).
    turns: Arc<Turns>,
}

/// The host a docker config keys its credentials by, as `docker login` writes it.
fn config_key_host(key: &str) -> String {
    let k = key
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    let host = k.split('/').next().unwrap_or(k);
    match host {
        "index.docker.io" | "registry-1.docker.io" => "docker.io".to_owned(),
        h => h.to_ascii_lowercase(),
    }
}

impl ManifestHead {
    /// `auths`: (docker config key, base64 `user:pass`); `helper_hosts`: registries served by a
    /// credential helper (or `*` for a default `credsStore`).
    pub fn new(
        auths: Vec<(String, String)>,
        helper_hosts: Vec<String>,
        insecure_registries: Vec<String>,
        cert_dir: Option<&Path>,
        timeout: Duration,
    ) -> Result<Self, TlsSetupError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verified = VerifiedClient::new(Arc::clone(&provider), cert_dir)?;
        let unverified = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(|source| TlsSetupError::ProtocolVersions { source })?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAny(provider)))
            .with_no_client_auth();
        Ok(ManifestHead {
            verified: Arc::new(verified),
            unverified: client(unverified),
            insecure: Arc::new(insecure_registries),
            auths: Arc::new(
                auths
                    .into_iter()
                    .map(|(k, v)| (config_key_host(&k), BasicAuth(v)))
                    .collect(),
            ),
            helper_hosts: Arc::new(helper_hosts.iter().map(|h| config_key_host(h)).collect()),
            timeout,
            budgets: Arc::default(),
            anonymous_answers: Arc::default(),
            memo: Arc::default(),
            turns: Arc::default(),
        })
    }

    /// The digest `image` resolves to, or `None` when the registry does not know it.
    pub async fn digest(&self, image: &ImageRef) -> Result<Option<Digest>, HeadError> {
        Ok(self.resolve(image).await?.map(|r| r.digest))
    }

    /// The digest and media type `image` resolves to, or `None` when the registry does not
    /// know it. A `ratelimit-remaining` header on the answer is recorded (see
    /// [`take_pull`](Self::take_pull)).
    pub async fn resolve(&self, image: &ImageRef) -> Result<Option<Resolved>, HeadError> {
        let domain = image.domain().to_ascii_lowercase();
        if self.has_helper(&domain) {
            return Err(HeadError::Unsupported(format!(
                "credentials for {domain} come from a credential helper"
            )));
        }
        let domain = &domain;
        self.over_schemes(image, |url, verify| async move {
            self.head(&url, domain, image, verify).await
        })
        .await
    }

    /// Whether a credential helper serves `domain` (lowercase).
    fn has_helper(&self, domain: &str) -> bool {
        self.helper_hosts.iter().any(|h| h == domain || h == "*")
    }

    /// Whether the docker config holds credentials of any kind for `domain` (lowercase).
    fn has_credentials(&self, domain: &str) -> bool {
        self.auths.contains_key(domain) || self.has_helper(domain)
    }

    /// Takes one pull from `registry`'s budget as its last manifest answer reported it, unless
    /// that leaves no more than `reserve`: then `Err` with what is left.
    pub fn take_pull(&self, registry: &str, reserve: u64) -> Result<(), u64> {
        self.budgets.take(registry, reserve)
    }

    /// The manifest URL of `image` over each scheme to try, in order, through `attempt`, once
    /// the registry gives the question a turn; the first answer wins, a 429 included (another
    /// scheme would meet the same limit).
    async fn over_schemes<'a, T, F, Fut>(
        &'a self,
        image: &'a ImageRef,
        attempt: F,
    ) -> Result<T, HeadError>
    where
        F: Fn(String, bool) -> Fut,
        Fut: Future<Output = Result<T, HeadError>> + 'a,
    {
        let domain = image.domain().to_ascii_lowercase();
        let host = if domain == "docker.io" {
            "registry-1.docker.io"
        } else {
            image.domain()
        };
        let reference = match image.digest() {
            Some(d) => d.to_string(),
            None => image.tag_or_latest().to_owned(),
        };
        let path = format!("/v2/{}/manifests/{reference}", image.path());
        let insecure = crate::registry::is_insecure(&self.insecure, &domain);
        // An insecure registry is usually plain HTTP; try that first, then unverified TLS.
        let attempts: &[(&str, bool)] = if insecure {
            &[("http", false), ("https", false)]
        } else {
            &[("https", true)]
        };
        let _turn = self.turns.take(&domain).await;
        let mut last = None;
        for (scheme, verify) in attempts {
            let url = format!("{scheme}://{host}{path}");
            match tokio::time::timeout(self.timeout, attempt(url.clone(), *verify)).await {
                Ok(Ok(found)) => return Ok(found),
                Ok(Err(e @ HeadError::RateLimited { .. })) => return Err(e),
                Ok(Err(e)) => last = Some(e),
                Err(_) => last = Some(HeadError::Timeout { url }),
            }
        }
        Err(last.unwrap_or_else(|| HeadError::Unsupported("no attempt".into())))
    }

    async fn send(
        &self,
        method: Method,
        url: &str,
        authorization: Option<&str>,
        verify: bool,
    ) -> Result<http::Response<hyper::body::Incoming>, HeadError> {
        let mut req = Request::builder()
            .method(method)
            .uri(url)
            .header(header::ACCEPT, ACCEPT)
            .header(header::USER_AGENT, "image-cloner");
        if let Some(a) = authorization {
            req = req.header(header::AUTHORIZATION, a);
        }
        let req = req.body(Empty::new()).map_err(|e| HeadError::Request {
            url: url.to_owned(),
            detail: e.to_string(),
        })?;
        let client = if verify {
            self.verified.get()
        } else {
            &self.unverified
        };
        client.request(req).await.map_err(|e| HeadError::Request {
            url: url.to_owned(),
            detail: e.to_string(),
        })
    }

    async fn head(
        &self,
        url: &str,
        domain: &str,
        image: &ImageRef,
        verify: bool,
    ) -> Result<Option<Resolved>, HeadError> {
        let origin = origin_of(url);
        let remembered = self.remembered(origin, domain, image, verify).await?;
        let first = self
            .send(Method::HEAD, url, remembered.as_deref(), verify)
            .await?;
        let response = if first.status() == StatusCode::UNAUTHORIZED {
            let authorization = self
                .authorize(&challenge_of(&first), origin, domain, image, verify)
                .await?;
            self.send(Method::HEAD, url, Some(&authorization), verify)
                .await?
        } else {
            first
        };
        self.budgets.record(domain, response.headers());
        match response.status() {
            StatusCode::OK => Ok(Some(resolved(&response)?)),
            StatusCode::NOT_FOUND => Ok(None),
            StatusCode::TOO_MANY_REQUESTS => Err(HeadError::rate_limited(url, response.headers())),
            other => Err(HeadError::Request {
                url: url.to_owned(),
                detail: format!("HTTP {other}"),
            }),
        }
    }

    /// The docker config's credentials for `domain`, as a Basic Authorization value.
    fn basic(&self, domain: &str) -> Option<String> {
        self.auths.get(domain).map(|b| format!("Basic {}", b.0))
    }

    /// The Authorization `origin`'s last challenge asked for, sent with the first request:
    /// its Basic credentials, or a kept pull token (else a new one, from the realm it named).
    /// `None` when it never refused a request, or asked for something this client cannot give.
    async fn remembered(
        &self,
        origin: &str,
        domain: &str,
        image: &ImageRef,
        verify: bool,
    ) -> Result<Option<String>, HeadError> {
        match self.memo.challenge(origin) {
            Some(Challenge::Basic) => Ok(self.basic(domain)),
            Some(Challenge::Bearer(params)) => {
                self.bearer(&params, domain, image, verify).await.map(Some)
            }
            Some(Challenge::Other(_)) | None => Ok(None),
        }
    }

    /// The Authorization header answering a 401 challenge with the docker config's
    /// credentials; the challenge is remembered for `origin`'s next requests. A token sent
    /// with the refused request is not sent again.
    async fn authorize(
        &self,
        challenge: &str,
        origin: &str,
        domain: &str,
        image: &ImageRef,
        verify: bool,
    ) -> Result<String, HeadError> {
        let challenge = parse_www_authenticate(challenge);
        if let Some(Challenge::Bearer(params)) = self.memo.challenge(origin) {
            self.memo
                .forget_token(&self.token_key(&params, domain, image));
        }
        self.memo.learn(origin, &challenge);
        match challenge {
            Challenge::Basic => self.basic(domain).ok_or_else(|| {
                HeadError::Unsupported(format!(
                    "{domain} wants credentials the docker config lacks"
                ))
            }),
            Challenge::Bearer(params) => self.bearer(&params, domain, image, verify).await,
            Challenge::Other(scheme) => {
                Err(HeadError::Unsupported(format!("auth scheme {scheme:?}")))
            }
        }
    }

    /// `Bearer <token>` for `image` from the realm of `params`: a kept token, else a new one
    /// asked with the docker config's credentials (kept for the next requests).
    async fn bearer(
        &self,
        params: &HashMap<String, String>,
        domain: &str,
        image: &ImageRef,
        verify: bool,
    ) -> Result<String, HeadError> {
        let key = self.token_key(params, domain, image);
        if let Some(token) = self.memo.token(&key) {
            return Ok(format!("Bearer {token}"));
        }
        let basic = self.basic(domain);
        match self.token(params, image, basic.as_deref(), verify).await? {
            Token::Granted { token, expires_in } => {
                self.memo.keep_token(key, &token, expires_in);
                Ok(format!("Bearer {token}"))
            }
            Token::Refused(status) => Err(HeadError::Unsupported(format!(
                "token endpoint answered HTTP {status}"
            ))),
        }
    }

    /// Which kept token answers a Bearer challenge of `params` for `image`.
    fn token_key(
        &self,
        params: &HashMap<String, String>,
        domain: &str,
        image: &ImageRef,
    ) -> TokenKey {
        TokenKey {
            realm: params.get("realm").cloned().unwrap_or_default(),
            service: params.get("service").cloned(),
            domain: domain.to_owned(),
            repository: image.path().to_owned(),
            credentialed: self.auths.contains_key(domain),
        }
    }

    /// A pull token for `image` from the realm of a Bearer challenge, asked with `basic`
    /// credentials or anonymously.
    async fn token(
        &self,
        params: &HashMap<String, String>,
        image: &ImageRef,
        basic: Option<&str>,
        verify: bool,
    ) -> Result<Token, HeadError> {
        let realm = params
            .get("realm")
            .ok_or_else(|| HeadError::Unsupported("Bearer challenge without realm".into()))?;
        let mut url = format!("{realm}?scope=repository:{}:pull", image.path());
        if let Some(service) = params.get("service") {
            url.push_str("&service=");
            url.push_str(&percent_encode(service));
        }
        let response = self.send(Method::GET, &url, basic, verify).await?;
        match response.status() {
            StatusCode::OK => {}
            StatusCode::TOO_MANY_REQUESTS => {
                return Err(HeadError::rate_limited(realm, response.headers()));
            }
            other => return Ok(Token::Refused(other)),
        }
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| HeadError::Request {
                url: realm.clone(),
                detail: e.to_string(),
            })?
            .to_bytes();
        let token: serde_json::Value = serde_json::from_slice(&body)
            .map_err(|e| HeadError::Unsupported(format!("token response: {e}")))?;
        let expires_in = token.get("expires_in").and_then(|e| e.as_u64());
        let token = token
            .get("token")
            .or_else(|| token.get("access_token"))
            .and_then(|t| t.as_str())
            .ok_or_else(|| HeadError::Unsupported("token response without a token".into()))?;
        Ok(Token::Granted {
            token: token.to_owned(),
            expires_in,
        })
    }
}

/// What a token endpoint answered.
enum Token {
    /// The token, and its lifetime in seconds when the endpoint gave one.
    Granted {
        token: String,
        expires_in: Option<u64>,
    },
    /// Not 200 (nor 429): the status.
    Refused(StatusCode),
}

/// The `WWW-Authenticate` value of a 401.
fn challenge_of(response: &http::Response<hyper::body::Incoming>) -> String {
    response
        .headers()
        .get(header::WWW_AUTHENTICATE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// The digest and media type of a 200 answer.
fn resolved(response: &http::Response<hyper::body::Incoming>) -> Result<Resolved, HeadError> {
    let digest = response
        .headers()
        .get("docker-content-digest")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| Digest::parse(v).ok())
        .ok_or_else(|| HeadError::Unsupported("no Docker-Content-Digest header".into()))?;
    let media_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or(v).trim().to_owned());
    Ok(Resolved { digest, media_type })
}

/// The base64 `user:pass` the docker config holds for `host`, if any (used only in the
/// Authorization header, never logged).
pub fn encode_basic(user: &str, password: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
}

#[cfg(test)]
mod auth_memo_tests;
#[cfg(test)]
mod tests;
