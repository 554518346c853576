//! What can go wrong in the webhooks, by the operation that failed. An error while answering a
//! review never refuses it: the handler logs it and admits the object unchanged.

use std::net::SocketAddr;
use std::path::PathBuf;

use thiserror::Error;

use crate::workload::Kind;

#[derive(Debug, Error)]
pub enum AdmissionError {
    #[error(
        "cannot listen on {address} for the admission webhooks: {source} (set webhook_address)"
    )]
    Listen {
        address: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("reading the webhook certificate {path}: {reason}")]
    ReadCertificate { path: PathBuf, reason: String },
    #[error(
        "the webhook certificate {cert} and key {key} do not make a usable TLS identity: {reason}"
    )]
    Identity {
        cert: PathBuf,
        key: PathBuf,
        reason: String,
    },
    #[error("generating the self-signed webhook CA and certificate: {0}")]
    GenerateCertificate(String),
    #[error("starting the webhooks' runtime: {0}")]
    Runtime(String),
    #[error("setting up TLS for the webhooks: {0}")]
    Tls(String),
    #[error("reading the {kind} under review: {reason}")]
    DecodeObject { kind: Kind, reason: String },
    #[error("reading owner {kind} {namespace}/{name}: {reason}")]
    ReadOwner {
        kind: Kind,
        namespace: String,
        name: String,
        reason: String,
    },
    #[error("building the JSON Patch: {0}")]
    BuildPatch(String),
    #[error("writing the CA bundle into {what} {name}: {source}")]
    WriteCaBundle {
        what: &'static str,
        name: String,
        #[source]
        source: kube::Error,
    },
}

impl AdmissionError {
    /// A short stable label, for logs and metrics.
    pub fn label(&self) -> &'static str {
        match self {
            AdmissionError::Listen { .. } => "listen",
            AdmissionError::ReadCertificate { .. } => "read_certificate",
            AdmissionError::Identity { .. } => "identity",
            AdmissionError::GenerateCertificate(_) => "generate_certificate",
            AdmissionError::Runtime(_) => "runtime",
            AdmissionError::Tls(_) => "tls",
            AdmissionError::DecodeObject { .. } => "decode_object",
            AdmissionError::ReadOwner { .. } => "read_owner",
            AdmissionError::BuildPatch(_) => "build_patch",
            AdmissionError::WriteCaBundle { .. } => "write_ca_bundle",
        }
    }
}
