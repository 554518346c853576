//! Why a pull secret could not be read, written or removed. No variant holds any part of a
//! credential: the docker config is named by path, a Secret by namespace and name.

use std::path::PathBuf;

use thiserror::Error;

use crate::pullsecret::entry::NoEntry;
use crate::pullsecret::{MANAGED_BY_LABEL, MANAGED_BY_VALUE};
use crate::reconcile::ApiError;

#[derive(Debug, Error)]
pub enum PullSecretError {
    #[error("reading docker config {path}: {source}")]
    ReadConfig {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("no docker config is set: there are no credentials to put in a pull secret")]
    NoConfig,
    #[error("docker config {path}: no pull secret can be made for the backup registry: {why}")]
    NoCredentials { path: PathBuf, why: NoEntry },
    #[error("reading Secret {namespace}/{name}: {source}")]
    Get {
        namespace: String,
        name: String,
        #[source]
        source: ApiError,
    },
    #[error("creating Secret {namespace}/{name}: {source}")]
    Create {
        namespace: String,
        name: String,
        #[source]
        source: ApiError,
    },
    #[error("updating Secret {namespace}/{name}: {source}")]
    Patch {
        namespace: String,
        name: String,
        #[source]
        source: ApiError,
    },
    #[error("deleting Secret {namespace}/{name}: {source}")]
    Delete {
        namespace: String,
        name: String,
        #[source]
        source: ApiError,
    },
    #[error(
        "Secret {namespace}/{name} exists and is not image-cloner's (it lacks the label {MANAGED_BY_LABEL}={MANAGED_BY_VALUE}): left as it is; choose another pull_secret name, or delete it"
    )]
    NotOurs { namespace: String, name: String },
    #[error(
        "Secret {namespace}/{name} has type {found:?}, not kubernetes.io/dockerconfigjson (a Secret's type cannot change): delete it and image-cloner creates it again"
    )]
    WrongType {
        namespace: String,
        name: String,
        found: String,
    },
    #[error(
        "listing the workloads of namespace {namespace} to see who uses Secret {name}: {source}"
    )]
    ListUsers {
        namespace: String,
        name: String,
        #[source]
        source: kube::Error,
    },
}

impl PullSecretError {
    /// Whether trying again later can succeed without anyone changing anything.
    pub fn is_transient(&self) -> bool {
        match self {
            PullSecretError::Get { source, .. }
            | PullSecretError::Create { source, .. }
            | PullSecretError::Patch { source, .. }
            | PullSecretError::Delete { source, .. } => source.is_transient(),
            PullSecretError::ListUsers { .. } => true,
            PullSecretError::ReadConfig { .. }
            | PullSecretError::NoConfig
            | PullSecretError::NoCredentials { .. }
            | PullSecretError::NotOurs { .. }
            | PullSecretError::WrongType { .. } => false,
        }
    }
}
