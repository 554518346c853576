//! Asking kube-apiserver's `/readyz` over TLS verified by envtest's CA, with the bearer token:
//! one blocking HTTP/1.1 request, enough to know when the server can take the tests.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

use super::EnvtestError;

/// How long one probe may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

pub(super) struct Probe {
    config: Arc<ClientConfig>,
    address: SocketAddr,
    request: String,
}

impl Probe {
    pub fn new(ca_pem: &str, port: u16, token: &str) -> Result<Probe, EnvtestError> {
        let err = |reason: String| EnvtestError::ConfigureTls { reason };
        let ca = CertificateDer::from_pem_slice(ca_pem.as_bytes())
            .map_err(|e| err(format!("reading the CA: {e}")))?;
        let mut roots = RootCertStore::empty();
        roots
            .add(ca)
            .map_err(|e| err(format!("trusting the CA: {e}")))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| err(format!("configuring TLS: {e}")))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Probe {
            config: Arc::new(config),
            address: SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
            request: format!(
                "GET /readyz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\
                 Authorization: Bearer {token}\r\nConnection: close\r\n\r\n"
            ),
        })
    }

    /// `Ok` when `/readyz` answers 200; otherwise what it answered, or why it could not.
    pub fn ready(&self) -> Result<(), String> {
        let status = self.status_line().map_err(|e| e.to_string())?;
        match status.split_whitespace().nth(1) {
            Some("200") => Ok(()),
            _ => Err(status),
        }
    }

    fn status_line(&self) -> std::io::Result<String> {
        let tcp = TcpStream::connect_timeout(&self.address, PROBE_TIMEOUT)?;
        tcp.set_read_timeout(Some(PROBE_TIMEOUT))?;
        tcp.set_write_timeout(Some(PROBE_TIMEOUT))?;
        let name = ServerName::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST).into());
        let conn =
            ClientConnection::new(Arc::clone(&self.config), name).map_err(std::io::Error::other)?;
        let mut tls = StreamOwned::new(conn, tcp);
        tls.write_all(self.request.as_bytes())?;
        let mut head = Vec::new();
        let mut buf = [0u8; 512];
        while !head.windows(2).any(|w| w == b"\r\n") {
            let n = tls.read(&mut buf)?;
            if n == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            head.extend_from_slice(&buf[..n]);
        }
        let head = String::from_utf8_lossy(&head);
        Ok(head.lines().next().unwrap_or_default().to_string())
    }
}
