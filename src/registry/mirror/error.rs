//! Why `ensure` failed, by the step that failed; each with a stable reason for Events and
//! metrics, and whether retrying later can succeed without a person.

use thiserror::Error;

use crate::image::naming::NamingError;
use crate::registry::client::LookupError;
use crate::registry::skopeo::SkopeoError;

/// A failed `ensure`, by the step that failed.
#[derive(Debug, Clone, Error)]
pub enum MirrorError {
    #[error("{image}: no backup name: {source}")]
    Naming {
        image: String,
        #[source]
        source: NamingError,
    },
    #[error("{image}: not found in its registry")]
    SourceNotFound { image: String },
    #[error("{image}: reading the source manifest: {source}")]
    ResolveSource {
        image: String,
        #[source]
        source: Box<LookupError>,
    },
    #[error("{image}: checking the backup registry for {backup}: {source}")]
    CheckBackup {
        image: String,
        backup: String,
        #[source]
        source: Box<LookupError>,
    },
    #[error("{image}: is under the backup registry but not found there")]
    NotInBackupRegistry { image: String },
    #[error("{image}: copying to {backup}: {source}")]
    Copy {
        image: String,
        backup: String,
        #[source]
        source: Box<SkopeoError>,
    },
    #[error("{image}: verifying {backup} after the copy: {source}")]
    VerifyLookup {
        image: String,
        backup: String,
        #[source]
        source: Box<LookupError>,
    },
    #[error(
        "{image}: verification failed: {backup} resolves to {found}, expected {expected}; not using it"
    )]
    Verify {
        image: String,
        backup: String,
        expected: String,
        found: String,
    },
    #[error("{image}: the mirror task ended without a result (shutting down?)")]
    Aborted { image: String },
    /// The registry's gate is closed for longer than a request waits inline: nothing sent.
    #[error(
        "{image}: {registry} is rate-limiting (429); not asked again for another {}",
        humantime::format_duration(*retry_after)
    )]
    Throttled {
        image: String,
        registry: String,
        retry_after: std::time::Duration,
    },
    /// Docker Hub's pull budget is down to the reserve kept for the nodes.
    #[error(
        "{image}: not pulled: {registry} reports {remaining} pull(s) left, and {reserve} are kept in reserve (pull_budget_reserve)"
    )]
    PullBudget {
        image: String,
        registry: String,
        remaining: u64,
        reserve: u64,
    },
    #[error("{image}: asking its registry whether it is public: {source}")]
    CheckVisibility {
        image: String,
        #[source]
        source: Box<LookupError>,
    },
    /// The copy gate refused: this replica does not lead (leader election).
    #[error("{image}: not copied: this replica does not hold the leader Lease")]
    NotLeading { image: String },
}

/// The reason of a skopeo failure: what the registry said when it said something; `otherwise`
/// (which side was unavailable) for network trouble; the runner's own label for a local failure.
fn skopeo_reason(e: &SkopeoError, otherwise: &'static str) -> &'static str {
    match e {
        SkopeoError::Unauthorized { .. } => "Unauthorized",
        SkopeoError::RateLimited { .. } => "RateLimited",
        SkopeoError::NotFound { .. } | SkopeoError::NotExecutable { .. } => "SkopeoMissing",
        SkopeoError::ManifestUnknown { .. } => "SourceNotFound",
        SkopeoError::Timeout { .. }
        | SkopeoError::Tls { .. }
        | SkopeoError::Unreachable { .. }
        | SkopeoError::Registry { .. }
        | SkopeoError::Failed { .. } => otherwise,
        local => local.reason(),
    }
}

impl MirrorError {
    /// Whether retrying later can succeed without a person: network, 5xx, 429, timeouts, and a
    /// copy that verified wrong (the backup tag moved under us).
    pub fn is_transient(&self) -> bool {
        match self {
            MirrorError::Verify { .. }
            | MirrorError::Aborted { .. }
            | MirrorError::Throttled { .. }
            | MirrorError::PullBudget { .. }
            | MirrorError::NotLeading { .. } => true,
            MirrorError::ResolveSource { source, .. }
            | MirrorError::CheckBackup { source, .. }
            | MirrorError::VerifyLookup { source, .. }
            | MirrorError::CheckVisibility { source, .. } => source.is_transient(),
            MirrorError::Copy { source, .. } => source.is_transient(),
            MirrorError::Naming { .. }
            | MirrorError::SourceNotFound { .. }
            | MirrorError::NotInBackupRegistry { .. } => false,
        }
    }

    /// The gate refused the copy: this replica does not lead.
    pub fn is_not_leading(&self) -> bool {
        matches!(self, MirrorError::NotLeading { .. })
    }

    /// A short CamelCase reason, for Kubernetes Events and metrics labels.
    pub fn reason(&self) -> &'static str {
        match self {
            MirrorError::Naming { .. } => "InvalidBackupName",
            MirrorError::SourceNotFound { .. } => "SourceNotFound",
            MirrorError::NotInBackupRegistry { .. } => "BackupNotFound",
            MirrorError::Verify { .. } => "VerificationFailed",
            MirrorError::Aborted { .. } => "Aborted",
            MirrorError::Throttled { .. } => "RateLimited",
            MirrorError::PullBudget { .. } => "PullBudgetReserve",
            MirrorError::CheckVisibility { source, .. } => match source.rate_limited() {
                Some(_) => "RateLimited",
                None => "VisibilityUnknown",
            },
            MirrorError::NotLeading { .. } => "NotLeading",
            MirrorError::ResolveSource { source, .. } => match source.as_ref() {
                LookupError::InvalidManifest(_) => "InvalidSourceManifest",
                LookupError::RateLimited { .. } => "RateLimited",
                LookupError::Skopeo(SkopeoError::Tls { .. }) => "SourceTLS",
                LookupError::Skopeo(e) => skopeo_reason(e, "SourceUnavailable"),
                LookupError::Visibility { .. } => "VisibilityUnknown",
            },
            MirrorError::CheckBackup { source, .. } | MirrorError::VerifyLookup { source, .. } => {
                match source.as_ref() {
                    LookupError::InvalidManifest(_) => "BackupUnavailable",
                    LookupError::RateLimited { .. } => "RateLimited",
                    LookupError::Skopeo(e) => skopeo_reason(e, "BackupUnavailable"),
                    LookupError::Visibility { .. } => "BackupUnavailable",
                }
            }
            MirrorError::Copy { source, .. } => skopeo_reason(source, "BackupUnavailable"),
        }
    }
}
