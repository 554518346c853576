//! A kept-alive HTTP/1.1 connection over TLS to a loopback server whose CA is given: how the
//! admission row sends its AdmissionReviews and the cold rounds' floor its API requests.

use std::sync::Arc;

use anyhow::Result;
use bytes::Bytes;
use http_body_util::Full;
use hyper_util::rt::TokioIo;

pub type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

/// A TLS client trusting only the certificates in `ca_pem`.
pub fn client_tls(ca_pem: &str) -> Result<tokio_rustls::TlsConnector> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject as _;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert?)?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

/// One connection to `address` (a 127.0.0.1 address), its driver spawned on the runtime.
pub async fn connect(address: &str, tls: &tokio_rustls::TlsConnector) -> Result<Sender> {
    let tcp = tokio::net::TcpStream::connect(address).await?;
    tcp.set_nodelay(true)?;
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1")?;
    let stream = tls.connect(name, tcp).await?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    Ok(sender)
}
