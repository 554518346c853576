//! Why a cluster command could not run at all (as opposed to ran and found failures, which
//! each command reports in its output and exit status).

use thiserror::Error;

use crate::admission::AdmissionError;
use crate::cluster::client::ClusterError;
use crate::leadership::LeadershipError;
use crate::ops::health::HealthError;

#[derive(Debug, Error)]
pub enum CommandError {
    #[error("connecting to the cluster: {0}")]
    Connect(#[from] ClusterError),
    #[error("listing {what}: {source}")]
    List {
        what: String,
        #[source]
        source: kube::Error,
    },
    #[error("waiting for a signal: {0}")]
    Signal(#[source] std::io::Error),
    #[error(transparent)]
    Health(#[from] HealthError),
    #[error(transparent)]
    Admission(#[from] AdmissionError),
    #[error("writing JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error(transparent)]
    Leadership(#[from] LeadershipError),
}

impl CommandError {
    pub(crate) fn list(what: impl Into<String>) -> impl FnOnce(kube::Error) -> CommandError {
        let what = what.into();
        move |source| CommandError::List { what, source }
    }
}
