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
        "{kind} {namespace}/{name}: not patched: whether its pods could pull the copies is not known yet: {error}"
    )]
    PullUnknown {
        kind: Kind,
        namespace: String,
        name: String,
        error: String,
    },
    #[error(
        "{kind} {namespace}/{name}: waiting for the namespace cache (its opt-out annotation is not known yet)"
    )]
    NamespaceUnknown {
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
            | ReconcileError::PullUnknown { .. } => true,
        }
    }

    /// A short label for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            ReconcileError::Mirror { first, .. } => first.reason(),
            ReconcileError::Patch { .. } => "PatchFailed",
            ReconcileError::Reread { .. } => "ReadFailed",
            ReconcileError::Contended { .. } => "Contended",
            ReconcileError::NamespaceUnknown { .. } => "NamespaceUnknown",
            ReconcileError::PullUnknown { .. } => "PullAccessUnknown",
        }
    }
}

/// `e` and the causes below it, each once: our messages already carry their direct cause, but
/// a client error's own text stops short of why ("client error (Connect)"), which is further
/// down the chain ("tcp connect error: Connection refused", "invalid peer certificate:
/// UnknownIssuer"). A cause whose text is already in the line is not repeated.
pub fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let part = c.to_string();
        if !part.is_empty() && !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        cause = c.source();
    }
    text
}

/// A failed call to the API server, or one that took too long.
#[derive(Debug, Error)]
pub enum ApiError {
    #[error("{}", with_causes(.0))]
    Kube(#[from] kube::Error),
    #[error("no answer from the API server within {}", humantime::format_duration(*.0))]
    Timeout(std::time::Duration),
}

impl ApiError {
    /// Network trouble, throttling, server errors, conflicts and timeouts pass; other 4xx
    /// answers do not.
    pub fn is_transient(&self) -> bool {
        match self {
            ApiError::Kube(kube::Error::Api(s)) => s.code == 429 || s.code >= 500 || s.code == 409,
            ApiError::Kube(kube::Error::SerdeError(_)) => false,
            ApiError::Kube(_) | ApiError::Timeout(_) => true,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Error)]
    #[error("connecting: {0}")]
    struct Outer(#[source] Middle);

    #[derive(Debug, Error)]
    #[error("client error (Connect)")]
    struct Middle(#[source] std::io::Error);

    #[test]
    fn the_root_cause_is_on_the_line_and_nothing_twice() {
        let e = Outer(Middle(std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "Connection refused (os error 111)",
        )));
        assert_eq!(
            with_causes(&e),
            "connecting: client error (Connect): Connection refused (os error 111)"
        );
    }
}
