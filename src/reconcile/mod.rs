//! One workload through the pipeline, as named steps:
//!
//! 1. [`plan`] (pure) — per container: clone and patch, clone only, or leave alone (the
//!    source filters included); then [`screen`] asks which of the sources to copy are private
//!    (`private-source`: left alone too);
//! 2. [`ensure_copies`] — the mirror copies and verifies each distinct image (shared with every
//!    other workload on the same image);
//! 3. [`pull_access`] — before the namespace's patch, how its pods will pull the copies (the
//!    pull secret put in place, an anonymous registry, or the nodes' own credentials); when
//!    they could not, the workload is copied, not patched ([`pull`]);
//! 4. [`report_unpatched`] — Events for what will not be patched, and why ([`report`], pure);
//! 5. [`write_patch`] — one JSON Patch ([`patch`], pure) with a `test` op on every image it
//!    replaces (and the pull secret added to `imagePullSecrets`); rejected because someone
//!    edited the workload meanwhile → read it again and plan again, never overwrite the edit;
//! 6. the `Cloned` Event.
//!
//! Shared by the daemon's controllers and by `run --once`. The rules it enforces: a workload is
//! only ever patched to copies the mirror verified (a failed copy leaves it as it is), and only
//! where its pods could pull them; nothing
//! is planned in a namespace whose opt-out is not known; every API call goes through
//! [`api::WorkloadApi`], bounded and counted.

pub mod api;
pub mod context;
pub mod error;
pub mod event_body;
pub mod events;
pub mod guard;
mod http1_answer;
pub(crate) mod json_text;
pub mod notices;
pub mod parking;
pub mod patch;
mod pipelined;
pub mod plan;
pub mod pull;
pub mod reasons;
pub mod report;
pub mod restore;
pub mod screen;
pub(crate) mod time_text;
pub mod writer;

#[cfg(test)]
mod api_tests;
#[cfg(test)]
mod defer_tests;
#[cfg(test)]
mod namespace_tests;
#[cfg(test)]
pub(crate) mod plan_tests;
#[cfg(test)]
mod properties;
#[cfg(test)]
mod pull_tests;
#[cfg(test)]
mod restore_tests;
#[cfg(test)]
mod span_tests;
#[cfg(test)]
mod writer_tests;

use std::time::Duration;

use kube::ResourceExt;
use kube::runtime::events::EventType;
use tracing::Instrument as _;

pub use self::context::Context;
use self::context::NamespaceOptOuts;
pub use self::error::{ApiError, MAX_REPLANS, ReconcileError};
use self::patch::ImageChange;
use self::plan::{ContainerPlan, Decision};
use self::pull::PullAccess;
use self::report::{AfterRejection, Notice, Verified};
use self::screen::Screened;
use crate::audit::WorkloadKey;
use crate::registry::mirror::{Ensured, MirrorError, MirroredImage};
use crate::workload::{self, Kind, Workload, WorkloadKind};

/// How long a reconcile waits for the namespace cache before it is retried later.
const NAMESPACE_WAIT: Duration = Duration::from_secs(30);
/// A workload whose pods could not pull its copies is looked at again after this long (the
/// registry may have been made public meanwhile).
pub const NOT_PULLABLE_RETRY: Duration = Duration::from_secs(600);

/// What a reconcile did, for `run --once`'s summary and the logs.
#[derive(Debug, Default)]
pub struct Reconciled {
    pub patched: Vec<ImageChange>,
    /// Images copied for a workload that is not patched (GitOps-managed, Job).
    pub cloned_only: Vec<MirroredImage>,
    pub invalid: usize,
    /// Look at the workload again after this long even if it does not change.
    pub requeue: Option<Duration>,
    /// Not on its copies by decision: an Event reason and its note ([`report::held_back`]).
    pub held_back: Option<(&'static str, String)>,
    /// Parked on copies still running ([`parking`]): nothing was written; it is reconciled
    /// again when they end.
    pub parked: bool,
    /// The `resourceVersion` the workload's patch wrote, when the API reads it
    /// ([`Context::reading_versions`]): the object this reconcile left it as.
    pub written_version: Option<String>,
}

/// The outcome of step 2: verified copies, and the images that could not be mirrored.
struct Copies {
    verified: Verified,
    failures: Vec<MirrorError>,
}

/// The outcome of step 4.
enum Written<K> {
    /// The changes, and the `resourceVersion` written when it was read.
    Patched(Vec<ImageChange>, Option<String>),
    NothingToPatch,
    Replan(K),
}

/// Runs one workload through the pipeline, in a span naming it.
pub async fn reconcile<K: WorkloadKind>(
    obj: &K,
    ctx: &Context,
) -> Result<Reconciled, ReconcileError> {
    pipeline(obj, ctx).instrument(span(obj)).await
}

/// The span every line about one workload's reconcile is logged in. Its fields borrow the
/// object's metadata: `namespace()` and `name_any()` cloned two strings a reconcile only for the
/// span to copy them again.
pub fn span<K: WorkloadKind>(obj: &K) -> tracing::Span {
    let meta = obj.meta();
    tracing::info_span!(
        "reconcile",
        namespace = meta.namespace.as_deref().unwrap_or_default(),
        kind = %K::KIND,
        name = meta
            .name
            .as_deref()
            .or(meta.generate_name.as_deref())
            .unwrap_or_default()
    )
}

async fn pipeline<K: WorkloadKind>(obj: &K, ctx: &Context) -> Result<Reconciled, ReconcileError> {
    // The workload as listed until a write is refused and the object read again: cloning it
    // (its metadata's maps, its containers) was ~1,800 instructions, and its drop ~900. The
    // fresh one is boxed: inline, it made every waiting reconcile 424 bytes larger.
    let mut fresh: Option<Box<K>> = None;
    let mut result = Reconciled::default();
    for _ in 0..MAX_REPLANS {
        let current = fresh.as_deref().unwrap_or(obj);
        if current.left_to_owner() {
            return Ok(result);
        }
        let w = planning_view(current, ctx).await?;
        let mut plans = plan::decide(&w, &ctx.policy);
        let screened = screen::privacy(&ctx.mirror, &ctx.policy, &plans).await;
        plan::mark_private(&mut plans, &screened.private);
        let Some(copies) = ensure_copies(ctx, &w, &plans, screened).await else {
            result.parked = true;
            return Ok(result);
        };
        log_decisions(&plans);
        if copies.failures.iter().any(MirrorError::is_not_leading) {
            return Err(not_leading(&w));
        }
        let (plans, access) = pull_access(ctx, &w, plans, &copies).await;
        // The steps after the copies are boxed, each when it runs: inline, their states (the
        // patch's request and its Event's, ~2 KB) sized every reconcile's, and `run --once`
        // holds 2,000 reconciles waiting on copies at once. Boxed, a waiting reconcile is
        // ~1.5 KB rather than ~3.5 KB, and the few writing at a time reuse the same memory.
        Box::pin(report_unpatched(ctx, current, &plans, &copies, &mut result)).await;
        if defer_patch(&copies.failures) {
            return finish(result, copies.failures, &w);
        }
        if let PullAccess::Unknown { error } = access {
            return Err(ReconcileError::PullUnknown {
                kind: w.kind,
                namespace: w.namespace,
                name: w.name,
                error,
            });
        }
        if let PullAccess::NotPullable { .. } = access {
            result.requeue = Some(NOT_PULLABLE_RETRY);
        }
        match Box::pin(write_patch(
            ctx,
            current,
            &w,
            &plans,
            &copies.verified,
            access.secret(),
        ))
        .await?
        {
            Written::Patched(changes, version) => {
                result.patched = changes;
                result.written_version = version;
                return finish(result, copies.failures, &w);
            }
            Written::NothingToPatch => return finish(result, copies.failures, &w),
            Written::Replan(reread) => fresh = Some(Box::new(reread)),
        }
    }
    let current = fresh.as_deref().unwrap_or(obj);
    Err(ReconcileError::Contended {
        kind: K::KIND,
        namespace: current.namespace().unwrap_or_default(),
        name: current.name_any(),
    })
}

/// Planning's view of the object, once its namespace's opt-out is known.
async fn planning_view<K: WorkloadKind>(
    obj: &K,
    ctx: &Context,
) -> Result<Workload, ReconcileError> {
    let namespace = obj.namespace().unwrap_or_default();
    let opted_out = known_opt_out(
        ctx.namespaces.as_ref(),
        K::KIND,
        &namespace,
        &obj.name_any(),
    )
    .await?;
    Ok(workload::view(obj, opted_out))
}

/// Whether `namespace` opts out, waiting a while for the namespace cache when it does not know
/// (before its first list, or while its watch is restarted); still unknown is an error, so the
/// workload is retried rather than taken as done.
async fn known_opt_out(
    namespaces: &dyn NamespaceOptOuts,
    kind: Kind,
    namespace: &str,
    name: &str,
) -> Result<bool, ReconcileError> {
    if namespaces.opted_out(namespace).is_none() {
        namespaces.wait_known(namespace, NAMESPACE_WAIT).await;
    }
    namespaces
        .opted_out(namespace)
        .ok_or_else(|| ReconcileError::NamespaceUnknown {
            kind,
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        })
}

/// Each container's decision. `clone` is at debug like the decisions that change nothing: the
/// `copied` and `patched` lines (or a failure's warning) follow it at info. At info it was one
/// more line per container of a cold start (2,000 lines in the cold bench).
fn log_decisions(plans: &[ContainerPlan]) {
    for p in plans {
        let (container, image) = (p.container.name.as_str(), p.container.image.as_str());
        let decision = p.decision.label();
        match &p.decision {
            Decision::AlreadyInBackup
            | Decision::IgnoredNamespace
            | Decision::OptOut
            | Decision::PrivateSource
            | Decision::Clone => tracing::debug!(container, image, decision),
            Decision::Excluded { rule } => tracing::debug!(container, image, decision, rule),
            Decision::InvalidReference { error } => {
                tracing::warn!(container, image, decision, error)
            }
            Decision::GitOpsManaged { .. }
            | Decision::Immutable
            | Decision::BackupNotPullable { .. } => {
                tracing::info!(container, image, decision)
            }
        }
    }
}

/// Step 2: every distinct image the plan copies, through the shared mirror; a source whose
/// privacy is unknown is not copied, and counts as failed. With [`parking`] (the daemon), a
/// workload some of whose copies are still running is parked on them (`None`) instead of
/// waiting here; the reconcile after the wake-up is handed the failures among them.
async fn ensure_copies(
    ctx: &Context,
    w: &Workload,
    plans: &[ContainerPlan],
    screened: Screened,
) -> Option<Copies> {
    let sources: Vec<_> = plan::to_mirror(plans)
        .into_iter()
        .filter(|s| !screened.unknown.contains_key(s.canonical().as_ref()))
        .collect();
    let parking = ctx.parking.as_ref().map(|p| (p, WorkloadKey::of(w)));
    let mut handed = parking
        .as_ref()
        .map(|(p, key)| p.handed(key))
        .unwrap_or_default();
    let mut outcomes = Vec::with_capacity(sources.len());
    let mut running = Vec::new();
    for source in &sources {
        let failed = handed.remove(source.canonical().as_ref()).map(Err);
        match failed.map_or_else(|| ctx.mirror.start(source), Ensured::Done) {
            Ensured::Done(outcome) => outcomes.push(Some(outcome)),
            Ensured::Running(copy) => {
                outcomes.push(None);
                running.push(copy);
            }
        }
    }
    if !running.is_empty() {
        if let Some((parking, key)) = parking {
            tracing::debug!(copies = running.len(), "waiting on copies still running");
            parking.park(key, running);
            return None;
        }
        // One after the other: the copies run in the mirror's tasks whatever waits on them, so
        // the last ends when it would under `join_all`, without its boxed set of futures.
        let mut running = running.into_iter();
        for slot in outcomes.iter_mut().filter(|o| o.is_none()) {
            if let Some(copy) = running.next() {
                *slot = Some(copy.outcome().await);
            }
        }
    }
    let mut copies = Copies {
        verified: Verified::default(),
        failures: screened.unknown.into_values().collect(),
    };
    for (source, outcome) in sources.iter().zip(outcomes) {
        // Every slot is filled above: a copy waited for inline fills the next empty one.
        let Some(outcome) = outcome else { continue };
        match outcome {
            Ok(m) => {
                copies.verified.insert(source.canonical().into_owned(), m);
            }
            Err(e) => {
                tracing::warn!(
                    reason = e.reason(), error = %e,
                    "image not mirrored; the workload keeps its image"
                );
                copies.failures.push(e);
            }
        }
    }
    Some(copies)
}

/// Whether to leave the workload unpatched for now: every image that could not be mirrored
/// failed for a reason that passes (a registry down, throttling), so the retry will soon
/// verify it, and patching the verified copies now would write — and roll — the workload
/// once more then. When a failure will not pass by itself (a source that is gone), the
/// verified copies are patched without waiting for it.
fn defer_patch(failures: &[MirrorError]) -> bool {
    !failures.is_empty() && failures.iter().all(MirrorError::is_transient)
}

/// Step 3: before the namespace's patch, whether (and how) its pods could pull the copies;
/// asked only when something is to be patched. When they could not, every container that
/// would be patched is copied only.
async fn pull_access(
    ctx: &Context,
    w: &Workload,
    plans: Vec<ContainerPlan>,
    copies: &Copies,
) -> (Vec<ContainerPlan>, PullAccess) {
    ctx.pull
        .in_use(&w.namespace, &pull::recorded(&w.annotations));
    let first_copy = plans
        .iter()
        .filter(|p| p.decision == Decision::Clone)
        .find_map(|p| copies.verified.get(p.source.as_ref()?.canonical().as_ref()));
    let Some(copy) = first_copy else {
        return (plans, PullAccess::NodeCredentials);
    };
    let access = ctx.pull.access(&w.namespace, &copy.backup_ref).await;
    match &access {
        PullAccess::NotPullable { why } => {
            tracing::warn!(
                reason = reasons::BACKUP_NOT_PULLABLE,
                "{why}: copied, not patched"
            );
            ctx.observer.workload_not_pullable();
            (pull::hold(plans, why), access)
        }
        _ => (plans, access),
    }
}

/// Step 4: Events for invalid references, failed copies, and copies not patched.
async fn report_unpatched<K: WorkloadKind>(
    ctx: &Context,
    obj: &K,
    plans: &[ContainerPlan],
    copies: &Copies,
    result: &mut Reconciled,
) {
    let new_workload = obj
        .meta()
        .creation_timestamp
        .as_ref()
        .is_some_and(|t| t.0 >= ctx.started_at);
    let unpatched = report::unpatched(plans, &copies.verified, &copies.failures, new_workload);
    let key = obj.uid().unwrap_or_else(|| {
        let ns = obj.namespace().unwrap_or_default();
        format!("{}/{ns}/{}", K::KIND, obj.name_any())
    });
    for notice in ctx.episodes.filter(&key, unpatched.notices) {
        publish(ctx, obj, notice).await;
    }
    result.invalid = unpatched.invalid;
    result.cloned_only = unpatched.cloned_only;
    result.held_back = report::held_back(plans);
}

async fn publish<K: WorkloadKind>(ctx: &Context, obj: &K, notice: Notice) {
    // Failures and invalid references were logged where they were found; what is copied but
    // not patched is only news here.
    if matches!(notice.reason, reasons::GITOPS_MANAGED | reasons::IMMUTABLE) {
        tracing::info!(reason = notice.reason, "{}", notice.note);
    }
    let type_ = if notice.warning {
        EventType::Warning
    } else {
        EventType::Normal
    };
    ctx.api.event(obj, type_, notice.reason, notice.note).await;
}

/// Step 5: the patch to the verified copies (and the pull secret, when one is in place),
/// unless the namespace opted out meanwhile; a patch rejected by a concurrent edit gives the
/// fresh object to plan again.
async fn write_patch<K: WorkloadKind>(
    ctx: &Context,
    obj: &K,
    w: &Workload,
    plans: &[ContainerPlan],
    verified: &Verified,
    pull_secret: Option<&str>,
) -> Result<Written<K>, ReconcileError> {
    let found = |s: &crate::image::reference::ImageRef| {
        verified
            .get(s.canonical().as_ref())
            .map(|m| m.backup_ref.clone())
    };
    let Some(planned) = patch::patch_pulling(w, plans, &found, pull_secret) else {
        return Ok(Written::NothingToPatch);
    };
    // Copies can take minutes: an opt-out added meanwhile still holds. A namespace watch
    // restarted meanwhile leaves the opt-out unknown: that is retried, not taken as done, or
    // the workload would wait for its next change to be patched.
    if known_opt_out(ctx.namespaces.as_ref(), w.kind, &w.namespace, &w.name).await? {
        tracing::info!("the namespace opted out while copying; not patched");
        return Ok(Written::NothingToPatch);
    }
    let patch_error = |source| ReconcileError::Patch {
        kind: w.kind,
        namespace: w.namespace.clone(),
        name: w.name.clone(),
        source,
    };
    match ctx
        .api
        .patch::<K>(&w.namespace, &w.name, &planned.patch)
        .await
    {
        Ok(version) => {
            for c in &planned.changes {
                tracing::info!(container = c.container, from = c.from, to = c.to, "patched");
            }
            for secret in &planned.pull_secrets {
                tracing::info!(secret, "pull secret added to imagePullSecrets");
            }
            ctx.observer.workload_patched();
            publish(ctx, obj, report::patched_notice(&planned.changes)).await;
            Ok(Written::Patched(planned.changes, version))
        }
        Err(e) if e.is_patch_rejection() => {
            let fresh = reread(ctx, w).await?;
            match report::after_rejection(w, &workload::view(&fresh, false)) {
                AfterRejection::Refused => {
                    let notice = Notice {
                        warning: true,
                        reason: reasons::PATCH_REJECTED,
                        note: e.to_string(),
                    };
                    publish(ctx, obj, notice).await;
                    Err(patch_error(e))
                }
                AfterRejection::Replan => {
                    tracing::info!("the workload changed since it was read; planning again");
                    Ok(Written::Replan(fresh))
                }
            }
        }
        Err(ApiError::NotLeading) => Err(not_leading(w)),
        Err(e) => Err(patch_error(e)),
    }
}

/// Leadership ended mid-way: the rest is the next leader's (no Event: it could not be sent).
fn not_leading(w: &Workload) -> ReconcileError {
    ReconcileError::NotLeading {
        kind: w.kind,
        namespace: w.namespace.clone(),
        name: w.name.clone(),
    }
}

async fn reread<K: WorkloadKind>(ctx: &Context, w: &Workload) -> Result<K, ReconcileError> {
    ctx.api
        .get::<K>(&w.namespace, &w.name)
        .await
        .map_err(|source| ReconcileError::Reread {
            kind: w.kind,
            namespace: w.namespace.clone(),
            name: w.name.clone(),
            source,
        })
}

/// The reconcile's result: an error when an image could not be mirrored, so that it is retried.
fn finish(
    result: Reconciled,
    mut failures: Vec<MirrorError>,
    w: &Workload,
) -> Result<Reconciled, ReconcileError> {
    if failures.is_empty() {
        return Ok(result);
    }
    Err(ReconcileError::Mirror {
        kind: w.kind,
        namespace: w.namespace.clone(),
        name: w.name.clone(),
        failures: failures.len(),
        transient: failures.iter().any(MirrorError::is_transient),
        first: Box::new(failures.swap_remove(0)),
    })
}
