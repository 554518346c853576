//! Pure: if the public registries disappeared now, which workloads could not start, and why.
//! One state per workload — its worst container's — from planning's decision, the liveness of
//! the backup copies it runs and why its last copy failed. `image-cloner status` and the
//! daemon's `image_cloner_workloads{state}` both classify with [`classify`], so the command and
//! the metric agree.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::audit::check::Liveness;
use crate::reconcile::plan::{Decision, Policy, decide};
use crate::reconcile::reasons;
use crate::workload::Workload;

/// A workload's state, worst first: the order of the table, and how a workload with several
/// containers is summed up (its worst).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// It runs a backup copy that is gone (and could not be copied again).
    BackupMissing,
    /// Its images are not copied: the copy fails.
    CopyFailing,
    /// Its images are not copied yet.
    NotYetCopied,
    InvalidReference,
    /// Copied, not patched: the nodes could not pull the copies (a private backup registry
    /// without a pull secret).
    NotPullable,
    /// Copied, not patched: the backup references are not committed to git yet.
    GitopsManaged,
    /// Copied, not patched: a Job's pod template cannot change.
    Immutable,
    /// Not copied: its registry serves it only with credentials (`copy_private_sources`).
    PrivateSource,
    /// Not copied: `source_include` / `source_exclude` leave it out.
    Excluded,
    /// It runs backup copies the backup registry could not be asked about.
    Unknown,
    OptedOut,
    IgnoredNamespace,
    /// It runs verified copies that are there.
    Protected,
}

impl State {
    pub const ALL: [State; 13] = [
        State::BackupMissing,
        State::CopyFailing,
        State::NotYetCopied,
        State::InvalidReference,
        State::NotPullable,
        State::GitopsManaged,
        State::Immutable,
        State::PrivateSource,
        State::Excluded,
        State::Unknown,
        State::OptedOut,
        State::IgnoredNamespace,
        State::Protected,
    ];

    /// The metric label and JSON value.
    pub fn label(self) -> &'static str {
        match self {
            State::BackupMissing => "backup_missing",
            State::CopyFailing => "copy_failing",
            State::NotYetCopied => "not_yet_copied",
            State::InvalidReference => "invalid_reference",
            State::NotPullable => "not_pullable",
            State::PrivateSource => "private_source",
            State::Excluded => "excluded",
            State::GitopsManaged => "gitops_managed",
            State::Immutable => "immutable",
            State::Unknown => "unknown",
            State::OptedOut => "opted_out",
            State::IgnoredNamespace => "ignored_namespace",
            State::Protected => "protected",
        }
    }

    /// For people.
    pub fn describe(self) -> &'static str {
        match self {
            State::BackupMissing => "backup copy missing",
            State::CopyFailing => "copy failing",
            State::NotYetCopied => "not yet copied",
            State::InvalidReference => "invalid reference",
            State::NotPullable => "copied, not pullable from the backup",
            State::PrivateSource => "private source (not copied)",
            State::Excluded => "excluded by the source policy",
            State::GitopsManaged => "GitOps-managed (backup not in git)",
            State::Immutable => "immutable (Job)",
            State::Unknown => "backup not checked",
            State::OptedOut => "opted out",
            State::IgnoredNamespace => "ignored namespace",
            State::Protected => "protected",
        }
    }
}

/// Why a workload that should be copied is not (yet) on its copies, as the daemon last said it:
/// the reason of its last Warning (a [`ReconcileError`](crate::reconcile::error::ReconcileError)'s
/// label, `PrivateSource`, `BackupNotPullable`) and its note.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastWord {
    pub reason: String,
    pub note: String,
}

impl LastWord {
    pub fn new(reason: &str, note: impl Into<String>) -> LastWord {
        LastWord {
            reason: reason.to_owned(),
            note: note.into(),
        }
    }

    /// The state of a container still to be copied and patched that this word is about.
    fn state(&self) -> State {
        match self.reason.as_str() {
            reasons::PRIVATE_SOURCE => State::PrivateSource,
            reasons::BACKUP_NOT_PULLABLE => State::NotPullable,
            _ => State::CopyFailing,
        }
    }
}

/// One workload's state and what there is to say about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Classified {
    pub state: State,
    pub detail: Option<String>,
}

/// The state of one container.
fn container_state(
    decision: &Decision,
    image: &str,
    liveness: &dyn Fn(&str) -> Option<Liveness>,
    last_word: Option<&LastWord>,
) -> Classified {
    let (state, detail) = match decision {
        Decision::IgnoredNamespace => (State::IgnoredNamespace, None),
        Decision::OptOut => (State::OptedOut, None),
        Decision::InvalidReference { error } => (State::InvalidReference, Some(error.clone())),
        Decision::GitOpsManaged { tool } => {
            (State::GitopsManaged, Some(format!("managed by {tool}")))
        }
        Decision::Immutable => (State::Immutable, None),
        Decision::BackupNotPullable { why } => (State::NotPullable, Some(why.clone())),
        Decision::PrivateSource => (State::PrivateSource, Some(image.to_owned())),
        Decision::Excluded { rule } => (State::Excluded, Some(format!("{image}: {rule}"))),
        Decision::Clone => match last_word {
            Some(w) => (w.state(), Some(w.note.clone())),
            None => (State::NotYetCopied, Some(image.to_owned())),
        },
        Decision::AlreadyInBackup => match liveness(image) {
            Some(l @ (Liveness::Missing | Liveness::WrongDigest { .. })) => {
                (State::BackupMissing, Some(format!("{image}: {l}")))
            }
            Some(l @ Liveness::Unknown { .. }) => (State::Unknown, Some(format!("{image}: {l}"))),
            // Not audited yet: verified when it was patched.
            Some(Liveness::Alive) | None => (State::Protected, None),
        },
    };
    Classified { state, detail }
}

/// The workload's state: its worst container's. `liveness` answers for the backup references
/// (`None`: not checked since they were verified), `last_word` is why it is not on its copies
/// yet, when the daemon said so.
pub fn classify(
    w: &Workload,
    policy: &Policy,
    liveness: &dyn Fn(&str) -> Option<Liveness>,
    last_word: Option<&LastWord>,
) -> Classified {
    decide(w, policy)
        .iter()
        .map(|p| container_state(&p.decision, &p.container.image, liveness, last_word))
        .min_by_key(|c| c.state)
        .unwrap_or(Classified {
            state: State::Protected,
            detail: None,
        })
}

/// Every state, counted (zero included, so that a gauge drops back to 0).
pub fn count(states: impl IntoIterator<Item = State>) -> BTreeMap<State, usize> {
    let mut counts: BTreeMap<State, usize> = State::ALL.iter().map(|s| (*s, 0)).collect();
    for s in states {
        *counts.entry(s).or_default() += 1;
    }
    counts
}
