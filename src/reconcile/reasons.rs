//! Event reasons and actions, stable for alerting rules: one place for the strings.

/// A workload was patched to its verified copies.
pub const CLONED: &str = "Cloned";
/// Copied, not patched: Argo CD or Flux would revert the patch.
pub const GITOPS_MANAGED: &str = "GitOpsManaged";
/// Copied, not patched: a Job's pod template cannot change.
pub const IMMUTABLE: &str = "ImmutablePodTemplate";
/// Copied, not patched: the nodes could not pull the copy from the backup registry.
pub const BACKUP_NOT_PULLABLE: &str = "BackupNotPullable";
/// An image string that is not a valid reference.
pub const INVALID_REFERENCE: &str = "InvalidReference";
/// The API server refused a patch whose `test` ops still held.
pub const PATCH_REJECTED: &str = "PatchRejected";

/// Not copied: its registry serves it only with credentials (`copy_private_sources`).
pub const PRIVATE_SOURCE: &str = "PrivateSource";
/// A registry answered 429, or is paused after one (a mirror failure's reason).
pub const RATE_LIMITED: &str = "RateLimited";
/// Docker Hub's pull budget is down to `pull_budget_reserve` (a mirror failure's reason).
pub const PULL_BUDGET_RESERVE: &str = "PullBudgetReserve";

/// The Event action of a patch.
pub const ACTION_PATCH: &str = "Patch";
/// The Event action of everything about copying.
pub const ACTION_CLONE: &str = "Clone";
