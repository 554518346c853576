//! Pure decisions of a reconcile that are not the plan itself: which Events to publish about
//! what will not be patched, and what a rejected patch means. No client, no I/O.

use std::collections::{BTreeSet, HashMap};

use crate::reconcile::patch::ORIGINAL_IMAGES_ANNOTATION;
use crate::reconcile::plan::{ContainerPlan, Decision};
use crate::reconcile::pull::{self, PULL_SECRET_ANNOTATION};
use crate::reconcile::reasons;
use crate::registry::mirror::{MirrorError, MirroredImage, Outcome};
use crate::workload::Workload;

/// The copies the mirror verified in this reconcile, by canonical source reference.
pub type Verified = HashMap<String, MirroredImage, foldhash::fast::RandomState>;

/// An Event to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub warning: bool,
    pub reason: &'static str,
    pub note: String,
}

/// What the reconcile reports about the images it will not patch.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Unpatched {
    pub notices: Vec<Notice>,
    /// Copies made for containers that are deliberately not patched (GitOps-managed, Job).
    pub cloned_only: Vec<MirroredImage>,
    pub invalid: usize,
}

fn mapping<'a>(copies: impl Iterator<Item = &'a MirroredImage>) -> String {
    copies
        .map(|m| format!("{} → {}", m.source, m.backup_ref))
        .collect::<Vec<_>>()
        .join("; ")
}

/// The Events about invalid references, failed copies, and copies that are deliberately not
/// patched. A copy that is not patched is news only when it was made now or the workload was
/// created since the daemon started (`new_workload`): a converged workload seen again after a
/// restart gets no Event, so a restarted daemon writes nothing.
pub fn unpatched(
    plans: &[ContainerPlan],
    verified: &Verified,
    failures: &[MirrorError],
    new_workload: bool,
) -> Unpatched {
    let mut out = Unpatched::default();
    let invalid: Vec<&str> = plans
        .iter()
        .filter_map(|p| match &p.decision {
            Decision::InvalidReference { error } => Some(error.as_str()),
            _ => None,
        })
        .collect();
    out.invalid = invalid.len();
    if !invalid.is_empty() {
        out.notices.push(Notice {
            warning: true,
            reason: reasons::INVALID_REFERENCE,
            note: invalid.join("; "),
        });
    }
    out.notices.extend(failures.iter().map(|e| Notice {
        warning: true,
        reason: e.reason(),
        note: e.to_string(),
    }));
    out.notices.extend(private_notice(plans));
    let not_pullable = plans.iter().find_map(|p| match &p.decision {
        Decision::BackupNotPullable { why } => Some(format!(
            "the nodes could not pull the copies, so not patched ({why}); to fix it, {}",
            pull::FIX
        )),
        _ => None,
    });
    let advices = [
        (
            reasons::GITOPS_MANAGED,
            "managed by GitOps, so not patched (its controller would revert it); commit these backup references to git".to_owned(),
        ),
        (
            reasons::IMMUTABLE,
            "a Job's pod template cannot change, so not patched; the images are in the backup registry".to_owned(),
        ),
        (
            reasons::BACKUP_NOT_PULLABLE,
            not_pullable.unwrap_or_default(),
        ),
    ];
    for (reason, advice) in advices {
        let copies: Vec<MirroredImage> = plans
            .iter()
            .filter(|p| copied_not_patched(&p.decision) == Some(reason))
            .filter_map(|p| {
                verified
                    .get(p.source.as_ref()?.canonical().as_ref())
                    .cloned()
            })
            .collect();
        if copies.is_empty() {
            continue;
        }
        if new_workload || copies.iter().any(|m| m.outcome == Outcome::Copied) {
            out.notices.push(Notice {
                warning: true,
                reason,
                note: format!("{advice}: {}", mapping(copies.iter())),
            });
        }
        out.cloned_only.extend(copies);
    }
    out
}

/// The Event about sources left alone because their registry serves them only with
/// credentials: a copy in a backup repository that may be public would leak them.
fn private_notice(plans: &[ContainerPlan]) -> Option<Notice> {
    let mut seen = BTreeSet::new();
    let images: Vec<&str> = plans
        .iter()
        .filter(|p| p.decision == Decision::PrivateSource)
        .map(|p| p.container.image.as_str())
        .filter(|i| seen.insert(*i))
        .collect();
    (!images.is_empty()).then(|| Notice {
        warning: true,
        reason: reasons::PRIVATE_SOURCE,
        note: format!(
            "not copied: served by its registry only with credentials, and a copy in the backup registry could make it public; list the registry in copy_private_sources to copy it anyway: {}",
            images.join(", ")
        ),
    })
}

/// Reasons whose Event would repeat at every retry of a workload, though nothing changed:
/// published once, then not again until a reconcile of that workload no longer meets them.
pub const ONCE_PER_EPISODE: &[&str] = &[
    reasons::RATE_LIMITED,
    reasons::PULL_BUDGET_RESERVE,
    reasons::PRIVATE_SOURCE,
];

/// Of this reconcile's `notices`, those to publish, given the once-per-episode reasons
/// already published for the workload; and the once-per-episode reasons met now (what to
/// remember for the next reconcile).
/// What holds the workload back from its copies by decision rather than by failure — a private
/// source, copies the nodes could not pull — as an Event reason and a note: the first such
/// container's, for the coverage report.
pub fn held_back(plans: &[ContainerPlan]) -> Option<(&'static str, String)> {
    plans.iter().find_map(|p| match &p.decision {
        Decision::PrivateSource => Some((
            reasons::PRIVATE_SOURCE,
            format!(
                "{}: served only with credentials, and copy_private_sources does not allow its registry",
                p.container.image
            ),
        )),
        Decision::BackupNotPullable { why } => Some((reasons::BACKUP_NOT_PULLABLE, why.clone())),
        _ => None,
    })
}

pub fn once_per_episode(
    notices: Vec<Notice>,
    published: &BTreeSet<&'static str>,
) -> (Vec<Notice>, BTreeSet<&'static str>) {
    let mut met = BTreeSet::new();
    let keep = notices
        .into_iter()
        .filter(|n| {
            if !ONCE_PER_EPISODE.contains(&n.reason) {
                return true;
            }
            // Also one per reason within this reconcile (two images, one rate limit).
            met.insert(n.reason) && !published.contains(n.reason)
        })
        .collect();
    (keep, met)
}

/// The Event reason of a decision that copies without patching.
fn copied_not_patched(decision: &Decision) -> Option<&'static str> {
    match decision {
        Decision::GitOpsManaged { .. } => Some(reasons::GITOPS_MANAGED),
        Decision::Immutable => Some(reasons::IMMUTABLE),
        Decision::BackupNotPullable { .. } => Some(reasons::BACKUP_NOT_PULLABLE),
        _ => None,
    }
}

/// The Event of a patch that went through.
pub fn patched_notice(changes: &[crate::reconcile::patch::ImageChange]) -> Notice {
    // Written into one string: through `format!` for each change and a `join`, the note of one
    // change was ~1,300 instructions (2,000 of them in a cold run).
    let length = changes.iter().map(|c| c.from.len() + c.to.len() + 7).sum();
    let mut note = String::with_capacity(length);
    for (i, c) in changes.iter().enumerate() {
        if i > 0 {
            note.push_str("; ");
        }
        note.push_str(&c.from);
        note.push_str(" → ");
        note.push_str(&c.to);
    }
    Notice {
        warning: false,
        reason: reasons::CLONED,
        note,
    }
}

/// What a patch rejected by the API server means, from the workload read back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterRejection {
    /// Someone changed what the patch tested: plan again from the fresh object.
    Replan,
    /// Nothing the patch tested changed: the server refused the patch itself.
    Refused,
}

/// What the patch `test`ed: the images, our annotations, the pull secrets, and (when it added
/// `imagePullSecrets`) the resourceVersion. Whatever else changed, a patch refused with all
/// of these unchanged was refused for itself.
pub fn after_rejection(before: &Workload, after: &Workload) -> AfterRejection {
    let annotation = |w: &Workload, key: &str| w.annotations.get(key).cloned();
    if before.containers == after.containers
        && annotation(before, ORIGINAL_IMAGES_ANNOTATION)
            == annotation(after, ORIGINAL_IMAGES_ANNOTATION)
        && annotation(before, PULL_SECRET_ANNOTATION) == annotation(after, PULL_SECRET_ANNOTATION)
        && before.pull_secrets == after.pull_secrets
        && (before.pull_secrets.is_some() || before.resource_version == after.resource_version)
    {
        AfterRejection::Refused
    } else {
        AfterRejection::Replan
    }
}

#[cfg(test)]
mod tests;
