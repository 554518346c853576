//! The webhooks' TLS identity: from PEM files, re-read when they change (cert-manager renews a
//! certificate by replacing the Secret's files; the server must pick it up without a restart),
//! or generated at start — a CA and a certificate it signs for the hosts the webhook
//! configurations call — whose CA the daemon writes into those configurations.

use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::crypto::ring as provider;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use crate::admission::error::AdmissionError;

/// How often the certificate files are compared with what is served.
pub const RELOAD_INTERVAL: Duration = Duration::from_secs(10);

/// Hands every TLS handshake the current identity; swapped when the files change.
#[derive(Debug)]
pub struct Resolver {
    current: RwLock<Arc<CertifiedKey>>,
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(
            &self.current.read().unwrap_or_else(PoisonError::into_inner),
        ))
    }
}

impl Resolver {
    pub fn new(identity: CertifiedKey) -> Arc<Self> {
        Arc::new(Resolver {
            current: RwLock::new(Arc::new(identity)),
        })
    }

    pub fn from_files(cert: &Path, key: &Path) -> Result<Arc<Self>, AdmissionError> {
        let (cert_pem, key_pem) = (read(cert)?, read(key)?);
        Ok(Self::new(identity(cert, key, &cert_pem, &key_pem)?))
    }

    fn replace(&self, identity: CertifiedKey) {
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(identity);
    }

    /// The leaf certificate served now (DER), for tests and logs.
    pub fn leaf(&self) -> Option<Vec<u8>> {
        let current = self.current.read().unwrap_or_else(PoisonError::into_inner);
        current.cert.first().map(|c| c.as_ref().to_vec())
    }
}

fn read(path: &Path) -> Result<Vec<u8>, AdmissionError> {
    std::fs::read(path).map_err(|e| AdmissionError::ReadCertificate {
        path: path.to_owned(),
        reason: e.to_string(),
    })
}

/// A TLS identity from PEM bytes: the chain in `cert_pem`, the key in `key_pem`.
fn identity(
    cert: &Path,
    key: &Path,
    cert_pem: &[u8],
    key_pem: &[u8],
) -> Result<CertifiedKey, AdmissionError> {
    let failed = |reason: String| AdmissionError::Identity {
        cert: cert.to_owned(),
        key: key.to_owned(),
        reason,
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| failed(format!("the certificate file: {e}")))?;
    if chain.is_empty() {
        return Err(failed("no CERTIFICATE in the certificate file".into()));
    }
    let key_der =
        PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| failed(format!("the key file: {e}")))?;
    let signing = provider::sign::any_supported_type(&key_der)
        .map_err(|e| failed(format!("the key: {e}")))?;
    let identity = CertifiedKey::new(chain, signing);
    identity
        .keys_match()
        .map_err(|e| failed(format!("the key is not the certificate's: {e}")))?;
    Ok(identity)
}

/// Re-reads the files every [`RELOAD_INTERVAL`] and serves them once they changed and make a
/// valid identity; a broken pair (a renewal half-written) keeps the current one, with a warning.
pub fn watch_files(
    resolver: Arc<Resolver>,
    cert: &Path,
    key: &Path,
) -> tokio::task::JoinHandle<()> {
    let (cert, key): (PathBuf, PathBuf) = (cert.to_owned(), key.to_owned());
    // What is served now: read before the task starts, so a change in between is seen.
    let mut last = (std::fs::read(&cert).ok(), std::fs::read(&key).ok());
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(RELOAD_INTERVAL);
        ticker.tick().await;
        loop {
            ticker.tick().await;
            let now = (std::fs::read(&cert).ok(), std::fs::read(&key).ok());
            if now == last {
                continue;
            }
            let (Some(cert_pem), Some(key_pem)) = (&now.0, &now.1) else {
                tracing::warn!(cert = %cert.display(), key = %key.display(), "webhook certificate files unreadable; still serving the previous certificate");
                continue;
            };
            match identity(&cert, &key, cert_pem, key_pem) {
                Ok(identity) => {
                    resolver.replace(identity);
                    tracing::info!(cert = %cert.display(), "webhook certificate changed on disk: serving the new one");
                    last = now;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "still serving the previous webhook certificate")
                }
            }
        }
    })
}

/// A generated CA and a certificate it signed.
pub struct Generated {
    pub identity: CertifiedKey,
    /// The CA's certificate, PEM: what `clientConfig.caBundle` holds (base64 of it).
    pub ca_pem: String,
}

/// A CA (ECDSA P-256) and a serving certificate for `hosts` (DNS names or IP addresses).
pub fn self_signed(hosts: &[String]) -> Result<Generated, AdmissionError> {
    let err = |e: rcgen::Error| AdmissionError::GenerateCertificate(e.to_string());
    let ca_key = KeyPair::generate().map_err(err)?;
    let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.distinguished_name
        .push(DnType::CommonName, "image-cloner webhook CA");
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca.self_signed(&ca_key).map_err(err)?;
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().map_err(err)?;
    let mut leaf = CertificateParams::new(hosts.to_vec()).map_err(err)?;
    leaf.distinguished_name
        .push(DnType::CommonName, "image-cloner webhook");
    leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let leaf_cert = leaf.signed_by(&key, &issuer).map_err(err)?;
    let identity = identity(
        Path::new("(generated)"),
        Path::new("(generated)"),
        leaf_cert.pem().as_bytes(),
        key.serialize_pem().as_bytes(),
    )?;
    Ok(Generated {
        identity,
        ca_pem: ca_cert.pem(),
    })
}

/// The server's TLS configuration: TLS 1.2 and 1.3, HTTP/1.1, the identity from `resolver`.
pub fn server_config(resolver: Arc<Resolver>) -> Result<Arc<rustls::ServerConfig>, AdmissionError> {
    let mut config =
        rustls::ServerConfig::builder_with_provider(Arc::new(provider::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| AdmissionError::Tls(e.to_string()))?
            .with_no_client_auth()
            .with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes a self-signed pair for `name` as tls.crt and tls.key; returns its DER.
    fn write_pair(dir: &Path, name: &str) -> Vec<u8> {
        let kp = KeyPair::generate().expect("key");
        let cert = CertificateParams::new(vec![name.to_owned()])
            .expect("params")
            .self_signed(&kp)
            .expect("cert");
        std::fs::write(dir.join("tls.crt"), cert.pem()).expect("write");
        std::fs::write(dir.join("tls.key"), kp.serialize_pem()).expect("write");
        cert.der().to_vec()
    }

    #[tokio::test(start_paused = true)]
    async fn renewed_files_are_served_and_a_broken_renewal_keeps_the_current_certificate() {
        let dir = tempfile::tempdir().expect("dir");
        let (cert, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
        let first = write_pair(dir.path(), "first.example");
        let resolver = Resolver::from_files(&cert, &key).expect("a valid pair");
        assert_eq!(resolver.leaf(), Some(first));
        let task = watch_files(Arc::clone(&resolver), &cert, &key);

        let second = write_pair(dir.path(), "second.example");
        tokio::time::sleep(RELOAD_INTERVAL * 2).await;
        assert_eq!(
            resolver.leaf(),
            Some(second.clone()),
            "the renewal is served"
        );

        // Half a renewal: a new certificate with the old key.
        let other = KeyPair::generate().expect("key");
        let third = CertificateParams::new(vec!["third.example".to_owned()])
            .expect("params")
            .self_signed(&other)
            .expect("cert");
        std::fs::write(&cert, third.pem()).expect("write");
        tokio::time::sleep(RELOAD_INTERVAL * 2).await;
        assert_eq!(
            resolver.leaf(),
            Some(second),
            "a mismatched pair is not served"
        );
        task.abort();
    }

    #[test]
    fn a_key_that_is_not_the_certificates_is_refused_by_name() {
        let dir = tempfile::tempdir().expect("dir");
        write_pair(dir.path(), "a.example");
        let other = KeyPair::generate().expect("key");
        std::fs::write(dir.path().join("other.key"), other.serialize_pem()).expect("write");
        let e = Resolver::from_files(&dir.path().join("tls.crt"), &dir.path().join("other.key"))
            .expect_err("mismatched");
        assert!(e.to_string().contains("other.key"), "{e}");
        assert!(e.to_string().contains("not the certificate's"), "{e}");
    }
}
