//! TLS for the manifest HEAD client: the system roots plus `cert_dir`, and the
//! certificate-accepting verifier used only for `insecure_registries`.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use http_body_util::Empty;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum TlsSetupError {
    #[error("reading CA certificates from {path}: {detail}")]
    CertDir { path: String, detail: String },
    /// rustls refused its own default protocol versions for the crypto provider: a build
    /// problem, not a setting.
    #[error("setting up TLS for the manifest HEAD client (default protocol versions): {source}")]
    ProtocolVersions {
        #[source]
        source: rustls::Error,
    },
}

impl TlsSetupError {
    /// A short, stable label per variant, for logs and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            TlsSetupError::CertDir { .. } => "CertDir",
            TlsSetupError::ProtocolVersions { .. } => "TLSProtocolVersions",
        }
    }
}

pub(super) type HttpsClient = Client<HttpsConnector<HttpConnector>, Empty<Bytes>>;

/// Accepts any certificate: only ever used for `insecure_registries`.
#[derive(Debug)]
pub(super) struct AcceptAny(pub(super) Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &[rustls::pki_types::CertificateDer<'_>],
        _: &rustls::pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

pub(super) fn client(config: rustls::ClientConfig) -> HttpsClient {
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(config)
        .https_or_http()
        .enable_http1()
        .build();
    Client::builder(TokioExecutor::new()).build(connector)
}

/// Starts reading the system's CA certificates on a thread of its own, so that the first HEAD
/// client finds them read. Built on the start-up's path (before the first list of `run
/// --once`), reading them held the first copy back by the time it took: 20–30 ms in the cold
/// bench's start-up (the gap in its debug log), ~300 files opened and parsed while the runtime
/// waited; on this thread, it overlaps the kubeconfig, discovery and the API server's TLS
/// handshake. A failure to start the thread only leaves the reading to the first client.
pub fn preload_system_roots() {
    let _ = std::thread::Builder::new()
        .name("ca-certificates".into())
        .spawn(|| {
            system_roots();
        });
}

/// The system's CA certificates, read and parsed once per process: image-cloner builds two HEAD
/// clients (the mirror's and the anonymous pull check's), and reading the system bundle is
/// about 19 million instructions each time (callgrind, Debian's ca-certificates). A client
/// built while [`preload_system_roots`] is still reading them waits for that read.
fn system_roots() -> &'static rustls::RootCertStore {
    static SYSTEM: OnceLock<rustls::RootCertStore> = OnceLock::new();
    SYSTEM.get_or_init(|| {
        let mut store = rustls::RootCertStore::empty();
        for cert in rustls_native_certs::load_native_certs().certs {
            let _ = store.add(cert);
        }
        store
    })
}

pub(super) fn roots(cert_dir: Option<&Path>) -> Result<rustls::RootCertStore, TlsSetupError> {
    let mut store = system_roots().clone();
    if let Some(dir) = cert_dir {
        let fail = |detail: String| TlsSetupError::CertDir {
            path: dir.display().to_string(),
            detail,
        };
        let entries = std::fs::read_dir(dir).map_err(|e| fail(e.to_string()))?;
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "crt") {
                use rustls::pki_types::pem::PemObject as _;
                let certs = rustls::pki_types::CertificateDer::pem_file_iter(&path)
                    .map_err(|e| fail(format!("{}: {e}", path.display())))?;
                for cert in certs {
                    let cert = cert.map_err(|e| fail(format!("{}: {e}", path.display())))?;
                    store
                        .add(cert)
                        .map_err(|e| fail(format!("{}: {e}", path.display())))?;
                }
            }
        }
    }
    Ok(store)
}
