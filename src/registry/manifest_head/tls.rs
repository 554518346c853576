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

/// Starts reading the system's CA certificates on a thread of its own, so that the first
/// verified HEAD finds them read. Built on the start-up's path (before the first list of `run
/// --once`), reading them held the first copy back by the time it took: 20–30 ms in the cold
/// bench's start-up (the gap in its debug log), ~300 files opened and parsed while the runtime
/// waited; on this thread, it overlaps the kubeconfig, discovery and the API server's TLS
/// handshake. Called only when a verified registry is sure to be asked (the backup registry
/// is not insecure): otherwise they are read when one first is, if ever. A failure to start
/// the thread only leaves the reading to the first verified client.
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

/// The client that verifies certificates (the system roots plus `cert_dir`), made when a
/// registry is first asked over verified TLS. Reading the system's CA certificates is ~19
/// million instructions, 5 % of a cold `run --once` (callgrind); a run whose registries are
/// all `insecure_registries` (a plain-HTTP mirror on the same network) never needs them.
/// `cert_dir` is read and checked when this is set up, so a bad certificate there stops the
/// start, as before.
pub(super) struct VerifiedClient {
    config: rustls::ConfigBuilder<rustls::ClientConfig, rustls::WantsVerifier>,
    cert_dir: rustls::RootCertStore,
    client: OnceLock<HttpsClient>,
}

impl VerifiedClient {
    pub(super) fn new(
        provider: Arc<rustls::crypto::CryptoProvider>,
        cert_dir: Option<&Path>,
    ) -> Result<Self, TlsSetupError> {
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|source| TlsSetupError::ProtocolVersions { source })?;
        Ok(VerifiedClient {
            config,
            cert_dir: cert_dir_roots(cert_dir)?,
            client: OnceLock::new(),
        })
    }

    /// The client; the first call reads the system's certificates (once, on the calling
    /// thread: 5–30 ms) unless they were read ahead ([`preload_system_roots`]).
    pub(super) fn get(&self) -> &HttpsClient {
        self.client.get_or_init(|| {
            let mut roots = system_roots().clone();
            roots.roots.extend(self.cert_dir.roots.iter().cloned());
            client(
                self.config
                    .clone()
                    .with_root_certificates(roots)
                    .with_no_client_auth(),
            )
        })
    }

    /// Whether the system's certificates were needed yet (tests).
    #[cfg(test)]
    pub(super) fn is_made(&self) -> bool {
        self.client.get().is_some()
    }
}

/// The certificates of `cert_dir`'s `*.crt` files, each checked as a trust anchor.
fn cert_dir_roots(cert_dir: Option<&Path>) -> Result<rustls::RootCertStore, TlsSetupError> {
    let mut store = rustls::RootCertStore::empty();
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
