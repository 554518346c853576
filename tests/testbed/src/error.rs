//! The one error type of the testbed.

use std::path::PathBuf;

/// What went wrong, named after the operation that failed. Every variant
/// carries what is needed to reproduce or diagnose the failure: the command
/// line (passwords redacted), the paths, and the tail of the process's stderr
/// or of the registry's log.
#[derive(Debug, thiserror::Error)]
pub enum TestbedError {
    /// No free TCP port could be reserved on 127.0.0.1.
    #[error("reserving a free port on 127.0.0.1: {source}")]
    ReservePort {
        #[source]
        source: std::io::Error,
    },

    /// A file or directory could not be created, written or read.
    #[error("{operation} {}: {source}", path.display())]
    File {
        /// What was being done, e.g. "writing", "creating directory", "reading".
        operation: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The CA or the server certificate could not be generated.
    #[error("generating TLS certificates: {reason}")]
    GenerateCertificates { reason: String },

    /// The htpasswd entry could not be computed.
    #[error("hashing the registry password with bcrypt: {reason}")]
    HashPassword { reason: String },

    /// A process could not be started at all (program missing, not executable…).
    #[error("starting `{command}`: {source}")]
    Spawn {
        command: String,
        #[source]
        source: std::io::Error,
    },

    /// The registry process started but did not answer `GET /v2/` in time, or exited.
    #[error(
        "registry `{command}` on {addr} did not become ready: {reason}\n--- registry log tail ({}) ---\n{log_tail}",
        log.display()
    )]
    StartRegistry {
        command: String,
        addr: String,
        reason: String,
        log: PathBuf,
        log_tail: String,
    },

    /// Waiting for or killing the registry process failed.
    #[error("stopping registry `{command}`: {source}")]
    StopRegistry {
        command: String,
        #[source]
        source: std::io::Error,
    },

    /// Building a test image's OCI layout failed.
    #[error("building test image {name:?} in {}: {reason}", dir.display())]
    BuildImage {
        name: String,
        dir: PathBuf,
        reason: String,
    },

    /// `skopeo copy` into a registry failed.
    #[error("push failed: `{command}` ({status})\n--- stderr tail ---\n{stderr_tail}")]
    Push {
        command: String,
        status: String,
        stderr_tail: String,
    },

    /// `skopeo inspect --raw` failed.
    #[error("inspect failed: `{command}` ({status})\n--- stderr tail ---\n{stderr_tail}")]
    Inspect {
        command: String,
        status: String,
        stderr_tail: String,
    },
    /// `skopeo delete` failed.
    #[error("delete failed: `{command}` ({status})\n--- stderr tail ---\n{stderr_tail}")]
    Delete {
        command: String,
        status: String,
        stderr_tail: String,
    },
}

impl TestbedError {
    /// The tail of the failed process's stderr (skopeo) or log (registry), if any.
    pub fn stderr_tail(&self) -> Option<&str> {
        match self {
            Self::Push { stderr_tail, .. }
            | Self::Inspect { stderr_tail, .. }
            | Self::Delete { stderr_tail, .. } => Some(stderr_tail),
            Self::StartRegistry { log_tail, .. } => Some(log_tail),
            _ => None,
        }
    }

    pub(crate) fn file(
        operation: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Self::File {
            operation,
            path,
            source,
        }
    }
}

/// The testbed's result type.
pub type Result<T, E = TestbedError> = std::result::Result<T, E>;
