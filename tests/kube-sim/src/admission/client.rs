//! The HTTPS call to a webhook: POST of an AdmissionReview to `clientConfig.url` with
//! `?timeout=Ns`, the server verified against `clientConfig.caBundle`, within
//! `timeoutSeconds`. Failures read like the real server's (Go's `net/http` wording), since a
//! client sees them inside "failed calling webhook" messages.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// Why a webhook could not be called (the real server's `ErrCallingWebhook` reasons).
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("parse {url:?}: {reason}")]
    ParseUrl { url: String, reason: String },
    #[error("Post {url:?}: dial tcp {address}: connect: connection refused")]
    ConnectRefused { url: String, address: String },
    #[error("Post {url:?}: dial tcp {address}: {source}")]
    Connect {
        url: String,
        address: String,
        source: std::io::Error,
    },
    #[error("Post {url:?}: {reason}")]
    Tls { url: String, reason: String },
    #[error("Post {url:?}: context deadline exceeded")]
    Timeout { url: String },
    #[error("Post {url:?}: {source}")]
    Exchange { url: String, source: hyper::Error },
    #[error("an error on the server ({body:?}) has prevented the request from succeeding")]
    Status { code: u16, body: String },
}

/// `host`, `port` and path of an https URL (already validated by the configuration's
/// validation: https, a host, no user, query or fragment).
fn split_url(url: &str) -> Result<(String, u16, String), CallError> {
    let bad = |reason: &str| CallError::ParseUrl {
        url: url.to_owned(),
        reason: reason.to_owned(),
    };
    let rest = url
        .strip_prefix("https://")
        .ok_or_else(|| bad("not an https URL"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (host, port) = match authority.strip_prefix('[') {
        Some(v6) => {
            let (host, after) = v6.split_once(']').ok_or_else(|| bad("unclosed ["))?;
            match after.strip_prefix(':') {
                Some(p) => (host, p.parse().map_err(|_| bad("invalid port"))?),
                None => (host, 443),
            }
        }
        None => match authority.rsplit_once(':') {
            Some((h, p)) => (h, p.parse().map_err(|_| bad("invalid port"))?),
            None => (authority, 443),
        },
    };
    if host.is_empty() {
        return Err(bad("no host"));
    }
    Ok((host.to_owned(), port, path.to_owned()))
}

fn tls_config(ca_pem: &[u8]) -> Result<Arc<rustls::ClientConfig>, String> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem) {
        let cert = cert.map_err(|e| format!("invalid caBundle: {e}"))?;
        roots
            .add(cert)
            .map_err(|e| format!("invalid caBundle: {e}"))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Go's x509 wording for the certificate failures a misconfigured caBundle causes.
fn tls_reason(e: &std::io::Error) -> String {
    use rustls::CertificateError as C;
    match e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
        // BadSignature: an issuer of the right name but another key (Go says the same, and
        // adds which candidate failed).
        Some(rustls::Error::InvalidCertificate(C::UnknownIssuer | C::BadSignature)) => {
            "x509: certificate signed by unknown authority".to_owned()
        }
        Some(rustls::Error::InvalidCertificate(C::NotValidForName)) => {
            "x509: certificate is not valid for the host".to_owned()
        }
        Some(rustls::Error::InvalidCertificate(C::Expired)) => {
            "x509: certificate has expired or is not yet valid".to_owned()
        }
        Some(other) => format!("tls: {other}"),
        None => e.to_string(),
    }
}

/// `host:port`, brackets around an IPv6 address.
fn authority(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// POSTs `review` to `url` (plus `?timeout=Ns`); the answer's body as JSON text.
pub async fn post(
    url: &str,
    ca_pem: &[u8],
    review: &Value,
    timeout: Duration,
) -> Result<Bytes, CallError> {
    let query = format!("timeout={}s", timeout.as_secs());
    let full_url = format!("{url}?{query}");
    let call = exchange(url, &full_url, &query, ca_pem, review);
    match tokio::time::timeout(timeout, call).await {
        Ok(result) => result,
        Err(_) => Err(CallError::Timeout { url: full_url }),
    }
}

/// One POST on a new connection; `url` is the configured one, `full_url` it with `query`.
async fn exchange(
    base: &str,
    url: &str,
    query: &str,
    ca_pem: &[u8],
    review: &Value,
) -> Result<Bytes, CallError> {
    let (host, port, path) = split_url(base)?;
    let tls_err = |reason: String| CallError::Tls {
        url: url.to_owned(),
        reason,
    };
    let config = tls_config(ca_pem).map_err(tls_err)?;
    let address = match host.parse::<std::net::IpAddr>() {
        Ok(ip) => SocketAddr::new(ip, port).to_string(),
        Err(_) => format!("{host}:{port}"),
    };
    let tcp = TcpStream::connect(&address).await.map_err(|source| {
        if source.kind() == std::io::ErrorKind::ConnectionRefused {
            CallError::ConnectRefused {
                url: url.to_owned(),
                address: address.clone(),
            }
        } else {
            CallError::Connect {
                url: url.to_owned(),
                address: address.clone(),
                source,
            }
        }
    })?;
    let name = ServerName::try_from(host.clone()).map_err(|e| tls_err(e.to_string()))?;
    let tls = TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .map_err(|e| tls_err(tls_reason(&e)))?;
    let exchange_err = |source| CallError::Exchange {
        url: url.to_owned(),
        source,
    };
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(exchange_err)?;
    tokio::spawn(conn);
    let body = serde_json::to_vec(review).unwrap_or_default();
    let req = Request::post(format!("{path}?{query}"))
        .header(hyper::header::HOST, authority(&host, port))
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .header(hyper::header::ACCEPT, "application/json, */*")
        .header(hyper::header::USER_AGENT, "kube-sim-admission")
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| tls_err(e.to_string()))?;
    let resp = sender.send_request(req).await.map_err(exchange_err)?;
    let code = resp.status().as_u16();
    let bytes = resp
        .into_body()
        .collect()
        .await
        .map_err(exchange_err)?
        .to_bytes();
    if !(200..300).contains(&code) {
        return Err(CallError::Status {
            code,
            body: String::from_utf8_lossy(&bytes).into_owned(),
        });
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_host_port_path() {
        let s = |u: &str| split_url(u).ok();
        assert_eq!(
            s("https://127.0.0.1:8443/mutate"),
            Some(("127.0.0.1".into(), 8443, "/mutate".into()))
        );
        assert_eq!(
            s("https://hooks.example"),
            Some(("hooks.example".into(), 443, "/".into()))
        );
        assert_eq!(
            s("https://[::1]:9/x/y"),
            Some(("::1".into(), 9, "/x/y".into()))
        );
        assert_eq!(s("http://a/b"), None);
    }
}
