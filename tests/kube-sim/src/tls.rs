//! A throw-away certificate authority and a serving certificate for 127.0.0.1 and localhost,
//! and the kubeconfig that trusts it, as a real cluster's admin kubeconfig does.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("generating the simulator's certificates: {0}")]
    Generate(#[from] testbed::TestbedError),
    #[error("reading the generated certificates: {0}")]
    Pem(#[from] rustls::pki_types::pem::Error),
    #[error("configuring TLS: {0}")]
    Configure(#[from] rustls::Error),
}

pub struct Certificates {
    pub ca_pem: String,
    pub config: Arc<ServerConfig>,
}

/// The same throw-away CA and loopback serving certificate as the test registries get.
pub fn generate() -> Result<Certificates, TlsError> {
    let certs = testbed::tls::generate()?;
    let chain = vec![CertificateDer::from_pem_slice(
        certs.server_cert_pem.as_bytes(),
    )?];
    let key = PrivateKeyDer::from_pem_slice(certs.server_key_pem.as_bytes())?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    // As the real server (Go's TLS 1.3 server sends one session ticket a connection; `openssl
    // s_client -sess_out` against envtest's kube-apiserver 1.20 receives one and resumes with
    // it): rustls sends two unless told, which would let a client resume more connections here
    // than against a cluster.
    config.send_tls13_tickets = 1;
    Ok(Certificates {
        ca_pem: certs.ca_cert_pem,
        config: Arc::new(config),
    })
}

/// A kubeconfig with one cluster, one user (bearer token) and one context, all `kube-sim`.
pub fn kubeconfig(server: &str, ca_pem: &str, token: &str) -> String {
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: kube-sim
  cluster:
    server: {server}
    certificate-authority-data: {ca}
users:
- name: kube-sim
  user:
    token: {token}
contexts:
- name: kube-sim
  context:
    cluster: kube-sim
    user: kube-sim
    namespace: default
current-context: kube-sim
preferences: {{}}
",
        ca = B64.encode(ca_pem),
    )
}
