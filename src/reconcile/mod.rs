//! One workload through the pipeline: plan (pure) → mirror → verify → patch → event.
//!
//! Shared by the daemon's controllers and by `run --once`. The rules it enforces:
//! - a workload is only ever patched to copies the mirror verified; a failed copy leaves it as
//!   it is;
//! - every write goes through [`Context::write`], which counts them;
//! - a patch rejected by its `test` ops (someone edited the images since we read them) is not
//!   an error: the object is read again and planned again, and the edit is never overwritten.

pub mod plan;

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use futures::future::join_all;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::events::{Event, EventType, Recorder};
use kube::runtime::reflector::Store;
use kube::{Client, ResourceExt};
use thiserror::Error;

use self::plan::{Decision, ImageChange, Policy, Workload};
use crate::ops::metrics::Metrics;
use crate::registry::mirror::{Mirror, MirrorError, MirroredImage, Outcome};
use crate::workload::{self, WorkloadKind};

/// The field manager our patches are recorded under.
pub const FIELD_MANAGER: &str = "image-cloner";
/// How many times a workload is re-read and re-planned after concurrent edits before the
/// attempt is left to the next reconcile.
const MAX_REPLANS: usize = 3;
/// Kubernetes caps an Event's note at 1 kB.
const EVENT_NOTE_MAX: usize = 1000;

/// Event reasons, stable for alerting rules.
pub mod reasons {
    pub const CLONED: &str = "Cloned";
    pub const GITOPS_MANAGED: &str = "GitOpsManaged";
    pub const IMMUTABLE: &str = "ImmutablePodTemplate";
    pub const INVALID_REFERENCE: &str = "InvalidReference";
    pub const PATCH_REJECTED: &str = "PatchRejected";
}

/// Where opt-out annotations of namespaces are read from.
#[derive(Clone)]
pub enum Namespaces {
    /// The daemon's live cache.
    Store(Store<Namespace>),
    /// A one-off read (`plan`, `run --once`): the names of opted-out namespaces.
    Snapshot(Arc<BTreeSet<String>>),
}

impl Namespaces {
    fn opted_out(&self, name: &str) -> bool {
        match self {
            Namespaces::Store(store) => store
                .get(&kube::runtime::reflector::ObjectRef::new(name))
                .is_some_and(|ns| workload::namespace_opted_out(ns.annotations())),
            Namespaces::Snapshot(set) => set.contains(name),
        }
    }
}

/// Everything a reconcile needs, shared by every controller.
pub struct Context {
    pub client: Client,
    pub mirror: Mirror,
    pub policy: Policy,
    pub recorder: Recorder,
    pub namespaces: RwLock<Namespaces>,
    pub metrics: Arc<Metrics>,
    writes: AtomicU64,
    /// Workloads created after this are news even when their images were already copied.
    started_at: k8s_openapi::jiff::Timestamp,
}

impl Context {
    pub fn new(
        client: Client,
        mirror: Mirror,
        policy: Policy,
        recorder: Recorder,
        namespaces: Namespaces,
        metrics: Arc<Metrics>,
    ) -> Self {
        Context {
            client,
            mirror,
            policy,
            recorder,
            namespaces: RwLock::new(namespaces),
            metrics,
            writes: AtomicU64::new(0),
            // creationTimestamp has whole seconds: compare at that resolution.
            started_at: k8s_openapi::jiff::Timestamp::from_second(
                k8s_openapi::jiff::Timestamp::now().as_second(),
            )
            .unwrap_or_else(|_| k8s_openapi::jiff::Timestamp::now()),
        }
    }

    /// Workload writes made so far.
    pub fn writes(&self) -> u64 {
        self.writes.load(Ordering::Relaxed)
    }

    fn namespace_opted_out(&self, name: &str) -> bool {
        self.namespaces
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .opted_out(name)
    }

    /// The one function that writes a workload.
    pub async fn write<K: WorkloadKind>(
        &self,
        namespace: &str,
        name: &str,
        patch: &serde_json::Value,
    ) -> Result<K, kube::Error> {
        let patch: json_patch::Patch =
            serde_json::from_value(patch.clone()).map_err(kube::Error::SerdeError)?;
        self.writes.fetch_add(1, Ordering::Relaxed);
        Api::<K>::namespaced(self.client.clone(), namespace)
            .patch(
                name,
                &PatchParams {
                    field_manager: Some(FIELD_MANAGER.to_owned()),
                    ..PatchParams::default()
                },
                &Patch::Json::<()>(patch),
            )
            .await
    }

    async fn event<K: WorkloadKind>(&self, obj: &K, type_: EventType, reason: &str, note: String) {
        let mut note = note;
        if note.len() > EVENT_NOTE_MAX {
            let mut cut = EVENT_NOTE_MAX - 3;
            while !note.is_char_boundary(cut) {
                cut -= 1;
            }
            note.truncate(cut);
            note.push_str("...");
        }
        let event = Event {
            type_,
            reason: reason.to_owned(),
            note: Some(note),
            action: if reason == reasons::CLONED {
                "Patch".to_owned()
            } else {
                "Clone".to_owned()
            },
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&event, &obj.object_ref(&())).await {
            tracing::warn!(
                namespace = obj.namespace().unwrap_or_default(), name = obj.name_any(),
                reason, error = %e, "could not publish an Event"
            );
        }
    }
}

/// A failed reconcile.
#[derive(Debug, Error)]
pub enum ReconcileError {
    #[error("{kind} {namespace}/{name}: {failures} image(s) could not be mirrored: {first}")]
    Mirror {
        kind: plan::Kind,
        namespace: String,
        name: String,
        failures: usize,
        first: Box<MirrorError>,
        transient: bool,
    },
    #[error("{kind} {namespace}/{name}: patching: {source}")]
    Patch {
        kind: plan::Kind,
        namespace: String,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("{kind} {namespace}/{name}: re-reading after a rejected patch: {source}")]
    Reread {
        kind: plan::Kind,
        namespace: String,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error(
        "{kind} {namespace}/{name}: still being edited after {MAX_REPLANS} attempts; trying again later"
    )]
    Contended {
        kind: plan::Kind,
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
                kube_error_is_transient(source)
            }
            ReconcileError::Contended { .. } => true,
        }
    }

    /// A short label for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            ReconcileError::Mirror { first, .. } => first.reason(),
            ReconcileError::Patch { .. } => "PatchFailed",
            ReconcileError::Reread { .. } => "ReadFailed",
            ReconcileError::Contended { .. } => "Contended",
        }
    }
}

/// Network trouble, throttling, server errors and timeouts pass; 4xx answers do not.
pub fn kube_error_is_transient(e: &kube::Error) -> bool {
    match e {
        kube::Error::Api(s) => s.code == 429 || s.code >= 500 || s.code == 409,
        kube::Error::SerdeError(_) => false,
        _ => true,
    }
}

/// What a reconcile did, for `run --once`'s summary and the logs.
#[derive(Debug, Default)]
pub struct Reconciled {
    pub patched: Vec<ImageChange>,
    /// Images copied for a workload that is not patched (GitOps-managed, Job).
    pub cloned_only: Vec<MirroredImage>,
    pub invalid: usize,
}

fn is_patch_rejection(e: &kube::Error) -> bool {
    // A failed `test` op is answered 422 Invalid ("the server rejected our request due to an
    // error in our request", checked against kube-apiserver 1.20.2); 409 covers a conflicting
    // write. Whether it really was a concurrent edit is decided by reading the object again.
    matches!(e, kube::Error::Api(s) if s.code == 422 || s.code == 409)
}

fn mapping(items: impl Iterator<Item = (String, String)>) -> String {
    items
        .map(|(from, to)| format!("{from} → {to}"))
        .collect::<Vec<_>>()
        .join("; ")
}

fn log_decisions(w: &Workload, plans: &[plan::ContainerPlan]) {
    for p in plans {
        let (ns, kind, name, container, image) = (
            w.namespace.as_str(),
            w.kind.to_string(),
            w.name.as_str(),
            p.container.name.as_str(),
            p.container.image.as_str(),
        );
        let decision = p.decision.label();
        match &p.decision {
            Decision::AlreadyInBackup | Decision::IgnoredNamespace | Decision::OptOut => {
                tracing::debug!(namespace = ns, kind, name, container, image, decision)
            }
            Decision::InvalidReference { error } => {
                tracing::warn!(
                    namespace = ns,
                    kind,
                    name,
                    container,
                    image,
                    decision,
                    error
                )
            }
            _ => tracing::info!(namespace = ns, kind, name, container, image, decision),
        }
    }
}

/// Runs one workload through the pipeline.
pub async fn reconcile<K: WorkloadKind>(
    obj: &K,
    ctx: &Context,
) -> Result<Reconciled, ReconcileError> {
    let namespace = obj.namespace().unwrap_or_default();
    let name = obj.name_any();
    let mut current = obj.clone();
    let mut result = Reconciled::default();
    for _ in 0..MAX_REPLANS {
        if current.left_to_owner() {
            return Ok(result);
        }
        let w = workload::view(&current, ctx.namespace_opted_out(&namespace));
        let plans = plan::decide(&w, &ctx.policy);
        log_decisions(&w, &plans);
        let invalid: Vec<String> = plans
            .iter()
            .filter_map(|p| match &p.decision {
                Decision::InvalidReference { error } => Some(error.clone()),
                _ => None,
            })
            .collect();
        result.invalid = invalid.len();
        if !invalid.is_empty() {
            ctx.event(
                &current,
                EventType::Warning,
                reasons::INVALID_REFERENCE,
                invalid.join("; "),
            )
            .await;
        }
        let sources = plan::to_mirror(&plans);
        if sources.is_empty() {
            return Ok(result);
        }
        let outcomes = join_all(sources.iter().map(|s| ctx.mirror.ensure(s))).await;
        let mut verified: HashMap<String, MirroredImage> = HashMap::new();
        let mut failures = Vec::new();
        for (source, outcome) in sources.iter().zip(outcomes) {
            match outcome {
                Ok(m) => {
                    verified.insert(source.canonical(), m);
                }
                Err(e) => failures.push(e),
            }
        }
        for e in &failures {
            tracing::warn!(
                namespace, kind = %K::KIND, name, reason = e.reason(), error = %e,
                "image not mirrored; the workload keeps its image"
            );
            ctx.event(&current, EventType::Warning, e.reason(), e.to_string())
                .await;
        }
        // Copied but deliberately not patched: say where the copies are.
        let not_patched = |reason: &str| plans.iter().any(|p| p.decision.label() == reason);
        for (label, reason, advice) in [
            (
                "gitops-managed",
                reasons::GITOPS_MANAGED,
                "managed by GitOps, so not patched (its controller would revert it); commit these backup references to git",
            ),
            (
                "immutable",
                reasons::IMMUTABLE,
                "a Job's pod template cannot change, so not patched; the images are in the backup registry",
            ),
        ] {
            if !not_patched(label) {
                continue;
            }
            let copies: Vec<MirroredImage> = plans
                .iter()
                .filter(|p| p.decision.label() == label)
                .filter_map(|p| verified.get(&p.source.as_ref()?.canonical()).cloned())
                .collect();
            // Only news is an Event: a copy made now, or a workload created since the daemon
            // started. A converged workload seen again after a restart gets none, so a
            // restarted daemon writes nothing.
            let new_workload = current
                .meta()
                .creation_timestamp
                .as_ref()
                .is_some_and(|t| t.0 >= ctx.started_at);
            if !new_workload && !copies.iter().any(|m| m.outcome == Outcome::Copied) {
                result.cloned_only.extend(copies);
                continue;
            }
            let note = format!(
                "{advice}: {}",
                mapping(
                    copies
                        .iter()
                        .map(|m| (m.source.to_string(), m.backup_ref.clone()))
                )
            );
            tracing::info!(namespace, kind = %K::KIND, name, reason, "{note}");
            ctx.event(&current, EventType::Warning, reason, note).await;
            result.cloned_only.extend(copies);
        }

        let Some(patch) = plan::patch(&w, &plans, &|s| verified.get(&s.canonical()).cloned())
        else {
            return finish(result, failures, K::KIND, &namespace, &name);
        };
        match ctx.write::<K>(&namespace, &name, &patch.patch).await {
            Ok(_) => {
                let note = mapping(patch.changes.iter().map(|c| (c.from.clone(), c.to.clone())));
                for c in &patch.changes {
                    tracing::info!(
                        namespace, kind = %K::KIND, name, container = c.container,
                        from = c.from, to = c.to, "patched"
                    );
                }
                ctx.metrics.workloads_patched.inc();
                ctx.event(&current, EventType::Normal, reasons::CLONED, note)
                    .await;
                result.patched.extend(patch.changes);
                return finish(result, failures, K::KIND, &namespace, &name);
            }
            Err(e) if is_patch_rejection(&e) => {
                let fresh = Api::<K>::namespaced(ctx.client.clone(), &namespace)
                    .get(&name)
                    .await
                    .map_err(|source| ReconcileError::Reread {
                        kind: K::KIND,
                        namespace: namespace.clone(),
                        name: name.clone(),
                        source,
                    })?;
                let mut fresh = fresh;
                workload::trim(&mut fresh);
                let before = workload::view(&current, false).containers;
                let after = workload::view(&fresh, false).containers;
                if before == after
                    && fresh.annotations().get(plan::ORIGINAL_IMAGES_ANNOTATION)
                        == current.annotations().get(plan::ORIGINAL_IMAGES_ANNOTATION)
                {
                    // Nothing we tested changed: the server refused the patch itself.
                    ctx.event(
                        &current,
                        EventType::Warning,
                        reasons::PATCH_REJECTED,
                        e.to_string(),
                    )
                    .await;
                    return Err(ReconcileError::Patch {
                        kind: K::KIND,
                        namespace,
                        name,
                        source: e,
                    });
                }
                tracing::info!(
                    namespace, kind = %K::KIND, name,
                    "the workload changed since it was read; planning again"
                );
                current = fresh;
            }
            Err(source) => {
                return Err(ReconcileError::Patch {
                    kind: K::KIND,
                    namespace,
                    name,
                    source,
                });
            }
        }
    }
    Err(ReconcileError::Contended {
        kind: K::KIND,
        namespace,
        name,
    })
}

fn finish(
    result: Reconciled,
    mut failures: Vec<MirrorError>,
    kind: plan::Kind,
    namespace: &str,
    name: &str,
) -> Result<Reconciled, ReconcileError> {
    if failures.is_empty() {
        return Ok(result);
    }
    let transient = failures.iter().any(MirrorError::is_transient);
    let count = failures.len();
    Err(ReconcileError::Mirror {
        kind,
        namespace: namespace.to_owned(),
        name: name.to_owned(),
        failures: count,
        first: Box::new(failures.swap_remove(0)),
        transient,
    })
}
