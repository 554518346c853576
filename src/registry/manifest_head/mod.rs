//! A manifest HEAD against the backup registry: which digest a tag resolves to, in one or two
//! round trips instead of a skopeo process (~30 ms of start-up each on a small machine). The
//! mirror asks the backup registry this question twice per copy (before: already there? after:
//! verified?), so this is most of image-cloner's overhead over a plain `skopeo copy`.
//!
//! It speaks the distribution token protocol (Basic, or Bearer tokens from the realm the
//! registry names) with the `auths` credentials of the docker config, verifies TLS against the
//! system roots plus `cert_dir`, and relaxes TLS only for `insecure_registries`. Anything it
//! does not handle — a credential helper, an unexpected answer — is reported as
//! [`HeadError::Unsupported`] and the mirror falls back to `skopeo inspect`, so correctness
//! never depends on it. A 429 is [`HeadError::RateLimited`] (with its `Retry-After`): skopeo
//! would meet the same limit, only after its own silent backoff and the inspect timeout.

mod challenge;
mod error;
mod retry_after;
mod tls;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use http::{Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Empty};

use crate::image::reference::{Digest, ImageRef};

use challenge::{parse_challenge, percent_encode};
pub use error::HeadError;
pub use retry_after::parse_retry_after;
pub use tls::TlsSetupError;
use tls::{AcceptAny, HttpsClient, client, roots};

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
    verified: HttpsClient,
    unverified: HttpsClient,
    insecure: Arc<Vec<String>>,
    auths: Arc<HashMap<String, BasicAuth>>,
    /// Registries whose credentials come from a helper this client cannot run.
    helper_hosts: Arc<Vec<String>>,
    timeout: Duration,
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
        let verified = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(|source| TlsSetupError::ProtocolVersions { source })?
            .with_root_certificates(roots(cert_dir)?)
            .with_no_client_auth();
        let unverified = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(|source| TlsSetupError::ProtocolVersions { source })?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAny(provider)))
            .with_no_client_auth();
        Ok(ManifestHead {
            verified: client(verified),
            unverified: client(unverified),
            insecure: Arc::new(
                insecure_registries
                    .into_iter()
                    .map(|h| h.to_ascii_lowercase())
                    .collect(),
            ),
            auths: Arc::new(
                auths
                    .into_iter()
                    .map(|(k, v)| (config_key_host(&k), BasicAuth(v)))
                    .collect(),
            ),
            helper_hosts: Arc::new(helper_hosts.iter().map(|h| config_key_host(h)).collect()),
            timeout,
        })
    }

    /// The digest `image` resolves to, or `None` when the registry does not know it.
    pub async fn digest(&self, image: &ImageRef) -> Result<Option<Digest>, HeadError> {
        Ok(self.resolve(image).await?.map(|r| r.digest))
    }

    /// The digest and media type `image` resolves to, or `None` when the registry does not
    /// know it.
    pub async fn resolve(&self, image: &ImageRef) -> Result<Option<Resolved>, HeadError> {
        let domain = image.domain().to_ascii_lowercase();
        if self.helper_hosts.iter().any(|h| h == &domain || h == "*") {
            return Err(HeadError::Unsupported(format!(
                "credentials for {domain} come from a credential helper"
            )));
        }
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
        let insecure = self.insecure.iter().any(|h| h == &domain);
        // An insecure registry is usually plain HTTP; try that first, then unverified TLS.
        let attempts: &[(&str, bool)] = if insecure {
            &[("http", false), ("https", false)]
        } else {
            &[("https", true)]
        };
        let mut last = None;
        for (scheme, verify) in attempts {
            let url = format!("{scheme}://{host}{path}");
            match tokio::time::timeout(self.timeout, self.head(&url, &domain, image, *verify)).await
            {
                Ok(Ok(found)) => return Ok(found),
                // The registry answered: another scheme would meet the same limit (or refusal).
                Ok(Err(e @ (HeadError::RateLimited { .. } | HeadError::Denied { .. }))) => {
                    return Err(e);
                }
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
            &self.verified
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
        let first = self.send(Method::HEAD, url, None, verify).await?;
        let response = if first.status() == StatusCode::UNAUTHORIZED {
            let challenge = first
                .headers()
                .get(header::WWW_AUTHENTICATE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            let authorization = self
                .authorize(url, &challenge, domain, image, verify)
                .await?;
            self.send(Method::HEAD, url, Some(&authorization), verify)
                .await?
        } else {
            first
        };
        match response.status() {
            StatusCode::OK => {
                let digest = response
                    .headers()
                    .get("docker-content-digest")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| Digest::parse(v).ok())
                    .ok_or_else(|| {
                        HeadError::Unsupported("no Docker-Content-Digest header".into())
                    })?;
                let media_type = response
                    .headers()
                    .get(header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .map(|v| v.split(';').next().unwrap_or(v).trim().to_owned());
                Ok(Some(Resolved { digest, media_type }))
            }
            StatusCode::NOT_FOUND => Ok(None),
            StatusCode::TOO_MANY_REQUESTS => Err(HeadError::rate_limited(url, response.headers())),
            s @ (StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) => Err(HeadError::Denied {
                url: url.to_owned(),
                status: s.as_u16(),
            }),
            other => Err(HeadError::Request {
                url: url.to_owned(),
                detail: format!("HTTP {other}"),
            }),
        }
    }

    /// The Authorization header answering a 401 challenge.
    async fn authorize(
        &self,
        url: &str,
        challenge: &str,
        domain: &str,
        image: &ImageRef,
        verify: bool,
    ) -> Result<String, HeadError> {
        let basic = self.auths.get(domain).map(|b| format!("Basic {}", b.0));
        let (scheme, params) = challenge.split_once(' ').unwrap_or((challenge, ""));
        if scheme.eq_ignore_ascii_case("basic") {
            return basic.ok_or_else(|| HeadError::Denied {
                url: url.to_owned(),
                status: StatusCode::UNAUTHORIZED.as_u16(),
            });
        }
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(HeadError::Unsupported(format!("auth scheme {scheme:?}")));
        }
        let params = parse_challenge(params);
        let realm = params
            .get("realm")
            .ok_or_else(|| HeadError::Unsupported("Bearer challenge without realm".into()))?;
        let mut token_url = format!("{realm}?scope=repository:{}:pull", image.path());
        if let Some(service) = params.get("service") {
            token_url.push_str("&service=");
            token_url.push_str(&percent_encode(service));
        }
        let response = self
            .send(Method::GET, &token_url, basic.as_deref(), verify)
            .await?;
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            return Err(HeadError::rate_limited(realm, response.headers()));
        }
        if matches!(
            response.status(),
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN
        ) {
            return Err(HeadError::Denied {
                url: realm.clone(),
                status: response.status().as_u16(),
            });
        }
        if response.status() != StatusCode::OK {
            return Err(HeadError::Unsupported(format!(
                "token endpoint answered HTTP {}",
                response.status()
            )));
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
        let token = token
            .get("token")
            .or_else(|| token.get("access_token"))
            .and_then(|t| t.as_str())
            .ok_or_else(|| HeadError::Unsupported("token response without a token".into()))?;
        Ok(format!("Bearer {token}"))
    }
}

/// The base64 `user:pass` the docker config holds for `host`, if any (used only in the
/// Authorization header, never logged).
pub fn encode_basic(user: &str, password: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_config_keys_name_hosts_the_way_docker_login_writes_them() {
        assert_eq!(config_key_host("https://index.docker.io/v1/"), "docker.io");
        assert_eq!(config_key_host("quay.io"), "quay.io");
        assert_eq!(
            config_key_host("https://Registry.Example:5000"),
            "registry.example:5000"
        );
    }

    #[test]
    fn credentials_never_show_in_debug_output() {
        let b = BasicAuth(encode_basic("alice", "secret"));
        assert_eq!(format!("{b:?}"), "BasicAuth(***)");
    }

    /// A registry on loopback (plain HTTP) answering each request line with `answer(line)`.
    async fn fake_registry(answer: fn(&str, &str) -> String) -> String {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let host = listener.local_addr().expect("its address").to_string();
        let me = host.clone();
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                let me = me.clone();
                tokio::spawn(async move {
                    let mut request = Vec::new();
                    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                        if conn.read_buf(&mut request).await.unwrap_or(0) == 0 {
                            return;
                        }
                    }
                    let text = String::from_utf8_lossy(&request);
                    let line = text.lines().next().unwrap_or_default().to_owned();
                    let _ = conn.write_all(answer(&line, &me).as_bytes()).await;
                });
            }
        });
        host
    }

    fn head_client(host: &str) -> ManifestHead {
        ManifestHead::new(
            Vec::new(),
            Vec::new(),
            vec![host.to_owned()],
            None,
            Duration::from_secs(5),
        )
        .expect("a client")
    }

    #[tokio::test]
    async fn a_429_is_rate_limited_with_its_retry_after() {
        let host = fake_registry(|_, _| {
            "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 7\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".into()
        })
        .await;
        let image = ImageRef::parse(&format!("{host}/team/app:1")).expect("a reference");
        let err = head_client(&host)
            .resolve(&image)
            .await
            .expect_err("rate-limited");
        // Returned from the plain-HTTP attempt, not replaced by the HTTPS one's failure.
        match &err {
            HeadError::RateLimited { url, retry_after } => {
                assert_eq!(url, &format!("http://{host}/v2/team/app/manifests/1"));
                assert_eq!(*retry_after, Some(Duration::from_secs(7)));
            }
            other => panic!("not rate-limited: {other}"),
        }
        assert!(err.to_string().contains("(429), retry after 7s"), "{err}");
        assert_eq!(err.reason(), "RateLimited");
    }

    #[tokio::test]
    async fn a_429_from_the_token_endpoint_is_rate_limited_too() {
        let host = fake_registry(|line, me| {
            if line.starts_with("HEAD ") {
                format!(
                    "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Bearer realm=\"http://{me}/token\",service=\"test\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                )
            } else {
                "HTTP/1.1 429 Too Many Requests\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    .into()
            }
        })
        .await;
        let image = ImageRef::parse(&format!("{host}/team/app:1")).expect("a reference");
        let err = head_client(&host)
            .digest(&image)
            .await
            .expect_err("rate-limited");
        match &err {
            HeadError::RateLimited { url, retry_after } => {
                assert_eq!(url, &format!("http://{host}/token"));
                assert_eq!(*retry_after, None);
            }
            other => panic!("not rate-limited: {other}"),
        }
    }

    #[test]
    fn a_protocol_error_is_not_reported_as_a_cert_dir() {
        let err = TlsSetupError::ProtocolVersions {
            source: rustls::Error::General("no usable versions".into()),
        };
        assert!(!err.to_string().contains("CA certificates"), "{err}");
        assert!(err.to_string().contains("no usable versions"), "{err}");
        assert_eq!(err.reason(), "TLSProtocolVersions");
    }
}
