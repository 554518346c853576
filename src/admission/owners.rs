//! Whose template a Pod comes from, and so whether the webhooks judge the Pod itself.
//!
//! A Pod is rewritten only when nobody will put the copy into its template: a bare Pod, a Pod of
//! a Job (immutable template, CronJob-made or not), of a GitOps-managed workload (the tool would
//! revert a patch of the template), or of a controller image-cloner does not read. A Pod of a
//! ReplicaSet whose Deployment the daemon patches is left alone: the Deployment's template will
//! carry the copy, and a Pod that differs from its template would only confuse a rollout.
//!
//! [`pod_plans`] is the pure rule; [`chain`] reads the owners (one bounded GET per level).

use std::collections::BTreeMap;
use std::time::Duration;

use futures::future::BoxFuture;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::ResourceExt as _;

use crate::admission::error::AdmissionError;
use crate::reconcile::Context;
use crate::reconcile::plan::{self, ContainerPlan, Decision, Policy};
use crate::workload::{Kind, KindVisitor, SKIP_ANNOTATION, Workload, WorkloadKind, opted_out};

/// Controller owners followed up from a Pod: Pod → ReplicaSet → Deployment, Pod → Job →
/// CronJob. A third level is not a shape Kubernetes makes.
const MAX_DEPTH: usize = 3;

/// The metadata of one owner that planning reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnerMeta {
    pub kind: Kind,
    pub name: String,
    pub annotations: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
}

/// A Pod's controller owners.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owners {
    /// No controller owner: a bare Pod.
    Bare,
    /// Owners of kinds image-cloner reads, the Pod's own first, its top owner last.
    Known(Vec<OwnerMeta>),
    /// An owner of a kind image-cloner does not read (an Argo Rollout, a KubeVirt VM, ...):
    /// nobody patches its template.
    Foreign { kind: String },
}

/// The Pod's plans, and whether its owner's template will carry the copies instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodPlans {
    /// As [`plan::decide`] plans, with the Pod as what gets rewritten: an image whose owner
    /// cannot carry the copy (`Immutable`, `GitOpsManaged` at the owner) is `Clone` here.
    pub plans: Vec<ContainerPlan>,
    /// The daemon patches the owner's template: the Pod is left alone, its copies still queued.
    pub left_to_owner: bool,
}

/// Plans a Pod's containers from its owners' metadata. Opt-outs hold at every level (the Pod's,
/// each owner's); ignored namespaces are the Pod's own; the GitOps rule reads the top owner.
pub fn pod_plans(pod: &Workload, owners: &Owners, policy: &Policy) -> PodPlans {
    let chain = match owners {
        Owners::Bare | Owners::Foreign { .. } => {
            return PodPlans {
                plans: plan::decide(pod, policy),
                left_to_owner: false,
            };
        }
        Owners::Known(chain) => chain,
    };
    let Some(top) = chain.last() else {
        return pod_plans(pod, &Owners::Bare, policy);
    };
    let immutable = chain.iter().any(|o| !o.kind.pod_template_mutable());
    let mut annotations = top.annotations.clone();
    if opted_out(&pod.annotations) || chain.iter().any(|o| opted_out(&o.annotations)) {
        annotations.insert(SKIP_ANNOTATION.to_owned(), "true".to_owned());
    }
    let as_owner = Workload {
        kind: if immutable { Kind::Job } else { top.kind },
        annotations,
        labels: top.labels.clone(),
        ..pod.clone()
    };
    let mut plans = plan::decide(&as_owner, policy);
    let left_to_owner = plans.iter().any(|p| p.decision == Decision::Clone);
    for p in &mut plans {
        if matches!(
            p.decision,
            Decision::Immutable | Decision::GitOpsManaged { .. }
        ) {
            p.decision = Decision::Clone;
        }
    }
    PodPlans {
        plans,
        left_to_owner,
    }
}

/// An owner reference as far as following it goes.
#[derive(Debug, Clone)]
struct Reference {
    api_version: String,
    kind: String,
    name: String,
}

fn controller_of(meta: &ObjectMeta) -> Option<Reference> {
    meta.owner_references
        .as_ref()?
        .iter()
        .find(|r| r.controller == Some(true))
        .map(|r| Reference {
            api_version: r.api_version.clone(),
            kind: r.kind.clone(),
            name: r.name.clone(),
        })
}

/// The kind image-cloner reads under this group and kind name (any version: a 1.20 server's
/// Jobs are owned by `batch/v1beta1` CronJobs).
pub fn kind_named(group: &str, kind: &str) -> Option<Kind> {
    Kind::ALL.iter().copied().find(|k| {
        let api_version = k.facts().api_version;
        let own_group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
        own_group == group && k.to_string() == kind
    })
}

fn group_of(api_version: &str) -> &str {
    api_version.rsplit_once('/').map_or("", |(g, _)| g)
}

/// Reads one owner: its metadata and its own controller owner.
struct Read<'a> {
    ctx: &'a Context,
    namespace: &'a str,
    name: &'a str,
    timeout: Duration,
}

impl<'a> KindVisitor for Read<'a> {
    type Output = BoxFuture<'a, Result<(OwnerMeta, Option<Reference>), AdmissionError>>;
    fn visit<K: WorkloadKind>(self) -> Self::Output {
        Box::pin(async move {
            let failed = |reason: String| AdmissionError::ReadOwner {
                kind: K::KIND,
                namespace: self.namespace.to_owned(),
                name: self.name.to_owned(),
                reason,
            };
            let call = self.ctx.api.get::<K>(self.namespace, self.name);
            let obj: K = match tokio::time::timeout(self.timeout, call).await {
                Ok(Ok(obj)) => obj,
                Ok(Err(e)) => return Err(failed(e.to_string())),
                Err(_) => return Err(failed(format!("no answer within {:?}", self.timeout))),
            };
            let meta = OwnerMeta {
                kind: K::KIND,
                name: obj.name_any(),
                annotations: obj.annotations().clone(),
                labels: obj.labels().clone(),
            };
            Ok((meta, controller_of(obj.meta())))
        })
    }
}

/// Follows a Pod's controller owners up, one bounded GET per level.
pub async fn chain(
    ctx: &Context,
    namespace: &str,
    pod: &ObjectMeta,
    timeout: Duration,
) -> Result<Owners, AdmissionError> {
    let Some(mut next) = controller_of(pod) else {
        return Ok(Owners::Bare);
    };
    let mut known = Vec::new();
    for _ in 0..MAX_DEPTH {
        let Some(kind) = kind_named(group_of(&next.api_version), &next.kind) else {
            return Ok(Owners::Foreign { kind: next.kind });
        };
        let read = Read {
            ctx,
            namespace,
            name: &next.name,
            timeout,
        };
        let (meta, up) = crate::workload::dispatch(kind, read).await?;
        known.push(meta);
        match up {
            Some(r) => next = r,
            None => break,
        }
    }
    Ok(Owners::Known(known))
}
