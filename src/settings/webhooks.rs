//! The admission webhooks' settings: whether each webhook is on, where they are served, and
//! where their certificate comes from. Checked together: a certificate file that is not PEM, or
//! `webhook_tls = files` with a webhook on and no certificate, stops the daemon at start, by
//! name, rather than at the API server's first call.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::settings::parse::{self, Bad};
use crate::settings::validate::Validator;

/// What the validating webhook does with an image that is not in the backup registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Validating {
    /// `/validate` answers 404.
    #[default]
    Off,
    /// Admitted, with an AdmissionReview warning (kubectl prints it).
    Warn,
    /// Refused, naming each image and its backup reference; its copy is queued.
    Deny,
}

/// Where the webhooks' certificate comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WebhookTls {
    /// `webhook_cert_file` and `webhook_key_file`, re-read when they change.
    #[default]
    Files,
    /// A CA generated at start, written into the daemon's own webhook configurations.
    SelfSigned,
}

/// The webhooks' settings.
#[derive(Debug, Clone)]
pub struct Webhooks {
    pub mutating: bool,
    pub validating: Validating,
    pub address: SocketAddr,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    pub tls: WebhookTls,
}

/// The default address: loopback (the manifests set 0.0.0.0:8443 in the container).
pub const DEFAULT_WEBHOOK_ADDRESS: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 8443);

impl Default for Webhooks {
    fn default() -> Self {
        Webhooks {
            mutating: false,
            validating: Validating::Off,
            address: DEFAULT_WEBHOOK_ADDRESS,
            cert_file: None,
            key_file: None,
            tls: WebhookTls::Files,
        }
    }
}

impl Webhooks {
    /// Whether anything is served at all: with both webhooks off nothing listens.
    pub fn any(&self) -> bool {
        self.mutating || self.validating != Validating::Off
    }
}

impl std::fmt::Display for Validating {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Validating::Off => "off",
            Validating::Warn => "warn",
            Validating::Deny => "deny",
        })
    }
}

impl std::fmt::Display for WebhookTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            WebhookTls::Files => "files",
            WebhookTls::SelfSigned => "self-signed",
        })
    }
}

/// A readable PEM file holding at least one certificate.
fn certificate_file(s: &str) -> Result<Option<PathBuf>, Bad> {
    let path = parse::existing_file(s)?;
    let bytes = read(&path)?;
    match CertificateDer::pem_slice_iter(&bytes).next() {
        Some(Ok(_)) => Ok(Some(path)),
        _ => Err(Bad::because("no PEM CERTIFICATE in it")),
    }
}

/// A readable PEM file holding a private key.
fn key_file(s: &str) -> Result<Option<PathBuf>, Bad> {
    let path = parse::existing_file(s)?;
    let bytes = read(&path)?;
    match PrivateKeyDer::from_pem_slice(&bytes) {
        Ok(_) => Ok(Some(path)),
        Err(_) => Err(Bad::because("no PEM PRIVATE KEY in it")),
    }
}

fn read(path: &Path) -> Result<Vec<u8>, Bad> {
    std::fs::read(path).map_err(|e| Bad::because(format!("cannot read it: {e}")))
}

impl Validator<'_> {
    pub(super) fn webhooks(&mut self) -> Webhooks {
        let w = Webhooks {
            mutating: self.scalar("mutating_webhook", false, |s| match s {
                "on" => Ok(true),
                "off" => Ok(false),
                _ => Err(Bad(None)),
            }),
            validating: self.scalar("validating_webhook", Validating::Off, |s| match s {
                "off" => Ok(Validating::Off),
                "warn" => Ok(Validating::Warn),
                "deny" => Ok(Validating::Deny),
                _ => Err(Bad(None)),
            }),
            address: self.scalar("webhook_address", DEFAULT_WEBHOOK_ADDRESS, |s| {
                s.parse().map_err(|_| Bad(None))
            }),
            cert_file: self.scalar("webhook_cert_file", None, certificate_file),
            key_file: self.scalar("webhook_key_file", None, key_file),
            tls: self.scalar("webhook_tls", WebhookTls::Files, |s| match s {
                "files" => Ok(WebhookTls::Files),
                "self-signed" => Ok(WebhookTls::SelfSigned),
                _ => Err(Bad(None)),
            }),
        };
        // A file given but refused was reported already.
        let files_missing = !self.map.contains_key("webhook_cert_file")
            || !self.map.contains_key("webhook_key_file");
        if w.any() && w.tls == WebhookTls::Files && files_missing {
            self.problems.push(format!(
                "a webhook is on (mutating_webhook = {}, validating_webhook = {}) with webhook_tls = files, but webhook_cert_file and webhook_key_file are not both set: set them (PEM files, e.g. from cert-manager) or set webhook_tls = self-signed",
                if w.mutating { "on" } else { "off" },
                w.validating
            ));
        }
        w
    }
}
