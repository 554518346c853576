//! A failed reconcile, by the step that failed, and whether it passes on its own.

use thiserror::Error;

use crate::registry::mirror::MirrorError;
use crate::workload::Kind;

/// How many times a workload is re-read and re-planned after concurrent edits before the
/// attempt is left to the next reconcile.
pub const MAX_REPLANS: usize = 3;

#[derive(Debug, Error)]
pub enum ReconcileError {
    #[error("{kind} {namespace}/{name}: {failures} image(s) could not be mirrored: {first}")]
    Mirror {
        kind: Kind,
        namespace: String,
        name: String,
        failures: usize,
        first: Box<MirrorError>,
        transient: bool,
    },
    #[error("{kind} {namespace}/{name}: patching: {source}")]
    Patch {
        kind: Kind,
        namespace: String,
        name: String,
        #[source]
        source: ApiError,
    },
    #[error("{kind} {namespace}/{name}: re-reading after a rejected patch: {source}")]
    Reread {
        kind: Kind,
        namespace: String,
        name: String,
        #[source]
        source: ApiError,
    },
    #[error(
        "{kind} {namespace}/{name}: still being edited after {MAX_REPLANS} attempts; trying again later"
    )]
    Contended {
        kind: Kind,
        namespace: String,
        name: String,
    },
    #[error(
        "{kind} {namespace}/{name}: waiting for the namespace cache (its opt-out annotation is not known yet)"
    )]
    NamespaceUnknown {
        kind: Kind,
        namespace: String,
        name: String,
    },
    /// Leadership ended during the reconcile: what is left is the next leader's.
    #[error("{kind} {namespace}/{name}: stopped: this replica no longer holds the leader Lease")]
    NotLeading {
        kind: Kind,
        namespace: String,
        name: String,
    },
}

impl ReconcileError {
    /// Whether it can pass on its own (backoff and retry) or needs a person (slow retry).
    pub fn is_transient(&self) -> bool {
        match self {
            ReconcileError::Mirror { transient, .. } => *transient,
            ReconcileError::Patch { source, .. } | ReconcileError::Reread { source, .. } => {
                source.is_transient()
            }
            ReconcileError::Contended { .. }
            | ReconcileError::NamespaceUnknown { .. }
            | ReconcileError::NotLeading { .. } => true,
        }
    }

    /// Whether it ended because this replica does not lead: not a failure, and not retried
    /// here (the leader has it, or this replica reconciles everything when it leads again).
    pub fn is_not_leading(&self) -> bool {
        matches!(self, ReconcileError::NotLeading { .. })
    }

    /// A short label for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            ReconcileError::Mirror { first, .. } => first.reason(),
            ReconcileError::Patch { .. } => "PatchFailed",
            ReconcileError::Reread { .. } => "ReadFailed",
            ReconcileError::Contended { .. } => "Contended",
            ReconcileError::NamespaceUnknown { .. } => "NamespaceUnknown",
            ReconcileError::NotLeading { .. } => "NotLeading",
        }
    }
}

/// A failed call to the API server, or one that took too long.
#[derive(Debug, Error)]
pub enum ApiError {
    #[error(transparent)]
    Kube(#[from] kube::Error),
    #[error("no answer from the API server within {}", humantime::format_duration(*.0))]
    Timeout(std::time::Duration),
    /// Not sent: this replica does not hold the leader Lease (or no longer surely does).
    #[error("not sent: this replica does not hold the leader Lease")]
    NotLeading,
}

impl ApiError {
    /// Network trouble, throttling, server errors, conflicts and timeouts pass; other 4xx
    /// answers do not.
    pub fn is_transient(&self) -> bool {
        match self {
            ApiError::Kube(kube::Error::Api(s)) => s.code == 429 || s.code >= 500 || s.code == 409,
            ApiError::Kube(kube::Error::SerdeError(_)) => false,
            ApiError::Kube(_) | ApiError::Timeout(_) | ApiError::NotLeading => true,
        }
    }

    /// The HTTP status the server answered with, if it answered.
    pub fn code(&self) -> Option<u16> {
        match self {
            ApiError::Kube(kube::Error::Api(s)) => Some(s.code),
            _ => None,
        }
    }

    /// A failed `test` op is answered 422 Invalid ("the server rejected our request due to an
    /// error in our request", checked against kube-apiserver 1.20.2); 409 covers a conflicting
    /// write. Whether it really was a concurrent edit is decided by reading the object again.
    pub fn is_patch_rejection(&self) -> bool {
        matches!(self.code(), Some(422 | 409))
    }
}
