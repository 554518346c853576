//! One workload through the pipeline, as named steps:
//!
//! 1. [`plan`] (pure) — per container: clone and patch, clone only, or leave alone;
//! 2. [`ensure_copies`] — the mirror copies and verifies each distinct image (shared with every
//!    other workload on the same image);
//! 3. [`report_unpatched`] — Events for what will not be patched, and why ([`report`], pure);
//! 4. [`write_patch`] — one JSON Patch ([`patch`], pure) with a `test` op on every image it
//!    replaces; rejected because someone edited the workload meanwhile → read it again and
//!    plan again, never overwrite the edit;
//! 5. the `Cloned` Event.
//!
//! Shared by the daemon's controllers and by `run --once`. The rules it enforces: a workload is
//! only ever patched to copies the mirror verified (a failed copy leaves it as it is); nothing
//! is planned in a namespace whose opt-out is not known; every API call goes through
//! [`api::WorkloadApi`], bounded and counted.

pub mod api;
pub mod context;
pub mod error;
pub mod guard;
pub mod patch;
pub mod plan;
pub mod reasons;
pub mod report;
pub mod restore;

#[cfg(test)]
mod plan_tests;
#[cfg(test)]
mod restore_tests;

use std::time::Duration;

use futures::future::join_all;
use kube::ResourceExt;
use kube::runtime::events::EventType;
use tracing::Instrument as _;

pub use self::context::Context;
pub use self::error::{ApiError, MAX_REPLANS, ReconcileError};
use self::patch::ImageChange;
use self::plan::{ContainerPlan, Decision};
use self::report::{AfterRejection, Notice, Verified};
use crate::registry::mirror::{MirrorError, MirroredImage};
use crate::workload::{self, Workload, WorkloadKind};

/// How long a reconcile waits for the namespace cache before it is retried later.
const NAMESPACE_WAIT: Duration = Duration::from_secs(30);

/// What a reconcile did, for `run --once`'s summary and the logs.
#[derive(Debug, Default)]
pub struct Reconciled {
    pub patched: Vec<ImageChange>,
    /// Images copied for a workload that is not patched (GitOps-managed, Job).
    pub cloned_only: Vec<MirroredImage>,
    pub invalid: usize,
}

/// The outcome of step 2: verified copies, and the images that could not be mirrored.
struct Copies {
    verified: Verified,
    failures: Vec<MirrorError>,
}

/// The outcome of step 4.
enum Written<K> {
    Patched(Vec<ImageChange>),
    NothingToPatch,
    Replan(K),
}

/// Runs one workload through the pipeline, in a span naming it.
pub async fn reconcile<K: WorkloadKind>(
    obj: &K,
    ctx: &Context,
) -> Result<Reconciled, ReconcileError> {
    let span = tracing::info_span!(
        "reconcile",
        namespace = obj.namespace().unwrap_or_default(),
        kind = %K::KIND,
        name = obj.name_any()
    );
    pipeline(obj, ctx).instrument(span).await
}

async fn pipeline<K: WorkloadKind>(obj: &K, ctx: &Context) -> Result<Reconciled, ReconcileError> {
    let mut current = obj.clone();
    let mut result = Reconciled::default();
    for _ in 0..MAX_REPLANS {
        if current.left_to_owner() {
            return Ok(result);
        }
        let w = planning_view(&current, ctx).await?;
        let plans = plan::decide(&w, &ctx.policy);
        log_decisions(&plans);
        let copies = ensure_copies(ctx, &plans).await;
        if copies.failures.iter().any(MirrorError::is_not_leading) {
            return Err(not_leading(&w));
        }
        report_unpatched(ctx, &current, &plans, &copies, &mut result).await;
        match write_patch(ctx, &current, &w, &plans, &copies.verified).await? {
            Written::Patched(changes) => {
                result.patched = changes;
                return finish(result, copies.failures, &w);
            }
            Written::NothingToPatch => return finish(result, copies.failures, &w),
            Written::Replan(fresh) => current = fresh,
        }
    }
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
    if ctx.namespaces.opted_out(&namespace).is_none() {
        ctx.namespaces.wait_known(&namespace, NAMESPACE_WAIT).await;
    }
    match ctx.namespaces.opted_out(&namespace) {
        Some(opted_out) => Ok(workload::view(obj, opted_out)),
        None => Err(ReconcileError::NamespaceUnknown {
            kind: K::KIND,
            namespace,
            name: obj.name_any(),
        }),
    }
}

fn log_decisions(plans: &[ContainerPlan]) {
    for p in plans {
        let (container, image) = (p.container.name.as_str(), p.container.image.as_str());
        let decision = p.decision.label();
        match &p.decision {
            Decision::AlreadyInBackup | Decision::IgnoredNamespace | Decision::OptOut => {
                tracing::debug!(container, image, decision)
            }
            Decision::InvalidReference { error } => {
                tracing::warn!(container, image, decision, error)
            }
            Decision::Clone | Decision::GitOpsManaged { .. } | Decision::Immutable => {
                tracing::info!(container, image, decision)
            }
        }
    }
}

/// Step 2: every distinct image the plan copies, through the shared mirror.
async fn ensure_copies(ctx: &Context, plans: &[ContainerPlan]) -> Copies {
    let sources = plan::to_mirror(plans);
    let outcomes = join_all(sources.iter().map(|s| ctx.mirror.ensure(s))).await;
    let mut copies = Copies {
        verified: Verified::new(),
        failures: Vec::new(),
    };
    for (source, outcome) in sources.iter().zip(outcomes) {
        match outcome {
            Ok(m) => {
                copies.verified.insert(source.canonical(), m);
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
    copies
}

/// Step 3: Events for invalid references, failed copies, and copies not patched.
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
    for notice in unpatched.notices {
        publish(ctx, obj, notice).await;
    }
    result.invalid = unpatched.invalid;
    result.cloned_only = unpatched.cloned_only;
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

/// Step 4: the patch to the verified copies, unless the namespace opted out meanwhile; a patch
/// rejected by a concurrent edit gives the fresh object to plan again.
async fn write_patch<K: WorkloadKind>(
    ctx: &Context,
    obj: &K,
    w: &Workload,
    plans: &[ContainerPlan],
    verified: &Verified,
) -> Result<Written<K>, ReconcileError> {
    let Some(planned) = patch::patch(w, plans, &|s| {
        verified.get(&s.canonical()).map(|m| m.backup_ref.clone())
    }) else {
        return Ok(Written::NothingToPatch);
    };
    // Copies can take minutes: an opt-out added meanwhile still holds.
    if ctx.namespaces.opted_out(&w.namespace) != Some(false) {
        tracing::info!("the namespace opted out (or is not known) while copying; not patched");
        return Ok(Written::NothingToPatch);
    }
    let patch_error = |source| ReconcileError::Patch {
        kind: w.kind,
        namespace: w.namespace.clone(),
        name: w.name.clone(),
        source,
    };
    let operations = planned
        .operations()
        .map_err(|e| patch_error(ApiError::Kube(kube::Error::SerdeError(e))))?;
    match ctx.api.patch::<K>(&w.namespace, &w.name, operations).await {
        Ok(_) => {
            for c in &planned.changes {
                tracing::info!(container = c.container, from = c.from, to = c.to, "patched");
            }
            ctx.observer.workload_patched();
            publish(ctx, obj, report::patched_notice(&planned.changes)).await;
            Ok(Written::Patched(planned.changes))
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
    let mut fresh = ctx
        .api
        .get::<K>(&w.namespace, &w.name)
        .await
        .map_err(|source| ReconcileError::Reread {
            kind: w.kind,
            namespace: w.namespace.clone(),
            name: w.name.clone(),
            source,
        })?;
    workload::trim(&mut fresh);
    Ok(fresh)
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
