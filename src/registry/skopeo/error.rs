//! What a failed skopeo run was, by kind, and what the controller's retry policy needs to
//! know about it.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use thiserror::Error;

use super::args::CommandLine;

/// A failed skopeo run, by what went wrong. Every variant that ran skopeo shows the command
/// and the end of what skopeo printed.
#[derive(Debug, Clone, Error)]
pub enum SkopeoError {
    #[error("skopeo not found at {program} (install the skopeo package or set `skopeo`)")]
    NotFound { program: PathBuf },
    #[error("skopeo at {program} is not executable (check its permissions or set `skopeo`)")]
    NotExecutable { program: PathBuf },
    /// The directory a run writes into (its `--tmpdir`, `TMPDIR` and `--digestfile`) could
    /// not be made: `tmp_dir` is missing, read-only or full.
    #[error("creating skopeo's scratch directory under {path} (check `tmp_dir`): {source}")]
    ScratchDir {
        path: PathBuf,
        #[source]
        source: Arc<io::Error>,
    },
    #[error("could not start `{command}`: {source}")]
    Spawn {
        command: CommandLine,
        #[source]
        source: Arc<io::Error>,
    },
    /// Reading skopeo's output or its exit status failed after it started.
    #[error("lost track of `{command}` while waiting for it: {source}")]
    Wait {
        command: CommandLine,
        #[source]
        source: Arc<io::Error>,
    },
    #[error("`{command}` did not finish within {}; killed", humantime::format_duration(*after))]
    Timeout {
        command: CommandLine,
        after: Duration,
    },
    #[error(
        "manifest unknown: the image does not exist in the registry: {summary} (command: `{command}`)"
    )]
    ManifestUnknown {
        command: CommandLine,
        summary: String,
        stderr: String,
    },
    #[error(
        "unauthorized: the registry refused the credentials (or their absence): {summary} (command: `{command}`)"
    )]
    Unauthorized {
        command: CommandLine,
        summary: String,
        stderr: String,
    },
    #[error(
        "TLS failure (list the registry in `insecure_registries` or give its CA in `cert_dir`): {summary} (command: `{command}`)"
    )]
    Tls {
        command: CommandLine,
        summary: String,
        stderr: String,
    },
    #[error("rate-limited by the registry (429): {summary} (command: `{command}`)")]
    RateLimited {
        command: CommandLine,
        summary: String,
        stderr: String,
    },
    #[error("registry unreachable: {summary} (command: `{command}`)")]
    Unreachable {
        command: CommandLine,
        summary: String,
        stderr: String,
    },
    #[error("registry error: {summary} (command: `{command}`)")]
    Registry {
        command: CommandLine,
        summary: String,
        stderr: String,
    },
    #[error("skopeo failed ({status}): {summary} (command: `{command}`)")]
    Failed {
        command: CommandLine,
        status: String,
        summary: String,
        stderr: String,
    },
    #[error(
        "skopeo copy exited 0 but its digest file {path} could not be read, so what it pushed is unknown: {source} (command: `{command}`)"
    )]
    ReadDigestFile {
        command: CommandLine,
        path: PathBuf,
        #[source]
        source: Arc<io::Error>,
    },
    #[error(
        "skopeo copy exited 0 but its digest file {path} holds {content:?}, not a digest (command: `{command}`)"
    )]
    ParseDigestFile {
        command: CommandLine,
        path: PathBuf,
        content: String,
    },
}

impl SkopeoError {
    /// Whether trying again later can succeed on its own: network trouble, rate limits, server
    /// errors and timeouts. A missing image or refused credentials need a person.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            SkopeoError::Timeout { .. }
                | SkopeoError::RateLimited { .. }
                | SkopeoError::Unreachable { .. }
                | SkopeoError::Registry { .. }
                | SkopeoError::Spawn { .. }
                | SkopeoError::Wait { .. }
                // A full disk frees up; a copy that may have landed is found by the next check.
                | SkopeoError::ScratchDir { .. }
                | SkopeoError::ReadDigestFile { .. }
        )
    }

    /// Whether a registry answered 429 (skopeo's text gives no `Retry-After`).
    pub fn is_rate_limited(&self) -> bool {
        matches!(self, SkopeoError::RateLimited { .. })
    }

    /// A short, stable CamelCase label per variant, for logs and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            SkopeoError::NotFound { .. } => "SkopeoNotFound",
            SkopeoError::NotExecutable { .. } => "SkopeoNotExecutable",
            SkopeoError::ScratchDir { .. } => "ScratchDir",
            SkopeoError::Spawn { .. } => "SpawnFailed",
            SkopeoError::Wait { .. } => "WaitFailed",
            SkopeoError::Timeout { .. } => "Timeout",
            SkopeoError::ManifestUnknown { .. } => "ManifestUnknown",
            SkopeoError::Unauthorized { .. } => "Unauthorized",
            SkopeoError::Tls { .. } => "TLS",
            SkopeoError::RateLimited { .. } => "RateLimited",
            SkopeoError::Unreachable { .. } => "Unreachable",
            SkopeoError::Registry { .. } => "RegistryError",
            SkopeoError::Failed { .. } => "SkopeoFailed",
            SkopeoError::ReadDigestFile { .. } => "ReadDigestFile",
            SkopeoError::ParseDigestFile { .. } => "ParseDigestFile",
        }
    }

    /// The full captured stderr tail, for the debug log.
    pub fn stderr(&self) -> Option<&str> {
        match self {
            SkopeoError::ManifestUnknown { stderr, .. }
            | SkopeoError::Unauthorized { stderr, .. }
            | SkopeoError::Tls { stderr, .. }
            | SkopeoError::RateLimited { stderr, .. }
            | SkopeoError::Unreachable { stderr, .. }
            | SkopeoError::Registry { stderr, .. }
            | SkopeoError::Failed { stderr, .. } => Some(stderr),
            _ => None,
        }
    }
}
