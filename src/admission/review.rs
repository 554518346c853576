//! The object under review, as the daemon would plan it: its kind, planning's view of it (the
//! namespace from the request: a 1.20 server leaves `metadata.namespace` out on CREATE), the
//! namespace's opt-out, for a Pod its owners, the daemon's privacy screen, and the verified
//! copies of what it runs. Shared by both webhooks, so that they judge exactly what the daemon
//! would patch.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::core::admission::{AdmissionRequest, Operation};
use serde_json::Value;

use crate::admission::Admission;
use crate::admission::copies::{self, Privacy, Verified};
use crate::admission::error::AdmissionError;
use crate::admission::owners::{self, Owners, PodPlans};
use crate::reconcile::plan::{self, ContainerPlan, Decision, Policy};
use crate::workload::{self, Kind, KindVisitor, Workload, WorkloadKind};

/// An object the webhooks judge, planned.
#[derive(Debug)]
pub struct Assessment {
    pub workload: Workload,
    pub plans: Vec<ContainerPlan>,
    /// On UPDATE: the old object's images, container name → image.
    pub old_images: Option<BTreeMap<String, String>>,
    /// Copies verified, of sources the screen let through.
    pub verified: Verified,
    /// Sources whose privacy could not be told in time: not judged (canonical references).
    pub unsettled: BTreeSet<String>,
}

/// Why a review is answered "allowed, unchanged" without planning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    Operation,
    NotAWorkload,
    PodUpdate,
    NoObject,
    IgnoredNamespace,
    NamespaceUnknown,
    /// Its owner's template is what the daemon patches (an owned ReplicaSet or Job, a Pod of a
    /// Deployment the daemon patches).
    LeftToOwner,
}

impl Skip {
    pub fn label(self) -> &'static str {
        match self {
            Skip::Operation => "not a create or update",
            Skip::NotAWorkload => "not a workload kind",
            Skip::PodUpdate => "a Pod update",
            Skip::NoObject => "no object",
            Skip::IgnoredNamespace => "ignored namespace",
            Skip::NamespaceUnknown => "namespace opt-out not known yet",
            Skip::LeftToOwner => "left to its owner",
        }
    }
}

/// Planning's view of an object of `kind`, whether an owner manages it, and its metadata.
pub struct Decoded {
    pub workload: Workload,
    pub left_to_owner: bool,
    pub meta: ObjectMeta,
}

/// Planning's view of `obj` in `namespace`. Pure.
pub fn decoded<K: WorkloadKind>(obj: &K, namespace: &str, namespace_opted_out: bool) -> Decoded {
    let mut w = workload::view(obj, namespace_opted_out);
    namespace.clone_into(&mut w.namespace);
    Decoded {
        workload: w,
        left_to_owner: obj.left_to_owner(),
        meta: obj.meta().clone(),
    }
}

struct Decode<'a> {
    object: &'a Value,
    namespace: &'a str,
    namespace_opted_out: bool,
}

impl KindVisitor for Decode<'_> {
    type Output = Result<Decoded, AdmissionError>;
    fn visit<K: WorkloadKind>(self) -> Self::Output {
        let obj = K::deserialize(self.object).map_err(|e| AdmissionError::DecodeObject {
            kind: K::KIND,
            reason: e.to_string(),
        })?;
        Ok(decoded(&obj, self.namespace, self.namespace_opted_out))
    }
}

/// Decodes an object of `kind` from JSON as the daemon's caches would hold it. Pure.
pub fn decode(
    kind: Kind,
    object: &Value,
    namespace: &str,
    namespace_opted_out: bool,
) -> Result<Decoded, AdmissionError> {
    workload::dispatch(
        kind,
        Decode {
            object,
            namespace,
            namespace_opted_out,
        },
    )
}

/// Whether planning ignores `namespace` whatever the object says.
fn ignored(policy: &Policy, namespace: &str) -> bool {
    policy.ignored_namespaces.contains(namespace)
        || (!policy.only_namespaces.is_empty() && !policy.only_namespaces.contains(namespace))
}

/// The review's object and namespace, or why it is not judged.
fn subject<K: WorkloadKind>(req: &AdmissionRequest<K>) -> Result<(&K, String), Skip> {
    if !matches!(req.operation, Operation::Create | Operation::Update) {
        return Err(Skip::Operation);
    }
    if K::KIND == Kind::Pod && req.operation == Operation::Update {
        return Err(Skip::PodUpdate);
    }
    let object = req.object.as_ref().ok_or(Skip::NoObject)?;
    let namespace = req
        .namespace
        .clone()
        .or_else(|| object.meta().namespace.clone())
        .unwrap_or_default();
    Ok((object, namespace))
}

/// Plans the object under review; `Ok(Err(skip))` when it is not judged.
pub async fn assess<K: WorkloadKind>(
    adm: &Admission,
    req: &AdmissionRequest<K>,
) -> Result<Result<Assessment, Skip>, AdmissionError> {
    let (object, namespace) = match subject(req) {
        Ok(s) => s,
        Err(skip) => return Ok(Err(skip)),
    };
    let ctx = &adm.ctx;
    if ignored(&ctx.policy, &namespace) {
        return Ok(Err(Skip::IgnoredNamespace));
    }
    let Some(ns_opted_out) = namespace_opt_out(adm, &namespace).await else {
        return Ok(Err(Skip::NamespaceUnknown));
    };
    let decoded = decoded(object, &namespace, ns_opted_out);
    let mut plans = if K::KIND == Kind::Pod {
        let owners = owners::chain(ctx, &namespace, &decoded.meta, adm.limits.owner).await?;
        let PodPlans {
            plans,
            left_to_owner,
        } = owners::pod_plans(&decoded.workload, &owners, &ctx.policy);
        if left_to_owner {
            return Ok(Err(Skip::LeftToOwner));
        }
        log_owner(&owners);
        plans
    } else if decoded.left_to_owner {
        return Ok(Err(Skip::LeftToOwner));
    } else {
        let mut plans = plan::decide(&decoded.workload, &ctx.policy);
        if req.operation == Operation::Create {
            at_creation(&mut plans, &decoded.workload, &ctx.policy);
        }
        plans
    };
    let old_images = match (&req.old_object, &req.operation) {
        (Some(old), Operation::Update) => Some(old_images(old)),
        _ => None,
    };
    let sources = plan::to_mirror(&plans);
    let (verified, privacy) = tokio::join!(
        copies::verified(&ctx.mirror, &sources, adm.limits.lookup),
        copies::screened(&ctx.mirror, &ctx.policy, &plans, adm.limits.lookup),
    );
    let (verified, to_queue) = settle(&mut plans, verified, &privacy);
    if !req.dry_run {
        copies::queue(&ctx.mirror, &to_queue, &adm.copies);
    }
    Ok(Ok(Assessment {
        workload: decoded.workload,
        plans,
        old_images,
        verified,
        unsettled: privacy.unsettled,
    }))
}

/// Applies the privacy screen as the daemon does: private sources become `private-source`
/// (neither copied nor patched); unsettled ones lose their verified copy (not rewritten).
/// Returns the verified copies left and the sources to queue: neither private, unsettled, nor
/// verified. Pure.
pub fn settle(
    plans: &mut [ContainerPlan],
    mut verified: Verified,
    privacy: &Privacy,
) -> (Verified, Vec<crate::image::reference::ImageRef>) {
    plan::mark_private(plans, &privacy.private);
    let to_mirror = plan::to_mirror(plans);
    let copied: BTreeSet<String> = to_mirror
        .iter()
        .map(|s| s.canonical().into_owned())
        .collect();
    verified.retain(|source, _| copied.contains(source) && !privacy.unsettled.contains(source));
    let to_queue = to_mirror
        .into_iter()
        .filter(|s| {
            let c = s.canonical();
            !privacy.unsettled.contains(c.as_ref()) && !verified.contains_key(c.as_ref())
        })
        .collect();
    (verified, to_queue)
}

/// A Job's pod template is immutable once the Job exists, not while it is created: at CREATE
/// its images are planned as any other workload's (the GitOps rule included), so that a Job
/// created after its image was copied runs the copy. Pure.
pub fn at_creation(plans: &mut [ContainerPlan], w: &Workload, policy: &Policy) {
    let gitops =
        plan::gitops_manager(&w.annotations, &w.labels).filter(|_| !policy.patch_gitops_managed);
    for p in plans
        .iter_mut()
        .filter(|p| p.decision == Decision::Immutable)
    {
        p.decision = match gitops {
            Some(tool) => Decision::GitOpsManaged {
                tool: tool.to_owned(),
            },
            None => Decision::Clone,
        };
    }
}

fn log_owner(owners: &Owners) {
    if let Owners::Foreign { kind } = owners {
        tracing::debug!(
            owner = kind,
            "a Pod of a controller image-cloner does not read"
        );
    }
}

fn old_images<K: WorkloadKind>(old: &K) -> BTreeMap<String, String> {
    workload::view(old, false)
        .containers
        .into_iter()
        .map(|c| (c.name, c.image))
        .collect()
}

/// The namespace's opt-out from the daemon's namespace cache, waiting a little for a namespace
/// it has not seen yet (created together with the object).
async fn namespace_opt_out(adm: &Admission, namespace: &str) -> Option<bool> {
    let cache = &adm.ctx.namespaces;
    if let Some(known) = cache.opted_out(namespace) {
        return Some(known);
    }
    cache.wait_known(namespace, adm.limits.namespace_wait).await;
    cache.opted_out(namespace)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admission::owners::kind_named;
    use serde_json::json;

    #[test]
    fn the_namespace_comes_from_the_request_and_owned_objects_are_left_to_their_owners() {
        let rs = json!({
            "apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": "web-1", "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": "u", "controller": true}]},
            "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "nginx:1.27"}], "initContainers": [{"name": "i", "image": "busybox:1"}]}}}
        });
        let d = decode(Kind::ReplicaSet, &rs, "shop", false).expect("decodes");
        assert_eq!(d.workload.namespace, "shop");
        assert!(d.left_to_owner);
        let images: Vec<(&str, bool, usize)> = d
            .workload
            .containers
            .iter()
            .map(|c| (c.image.as_str(), c.init, c.index))
            .collect();
        assert_eq!(images, [("nginx:1.27", false, 0), ("busybox:1", true, 0)]);
        let bad = json!({"metadata": {"name": "x"}, "spec": {"template": "not an object"}});
        assert!(decode(Kind::Deployment, &bad, "shop", false).is_err());
    }

    /// Copies to `b.example/m`, flat names, nothing excluded.
    fn policy() -> Policy {
        Policy {
            backup: crate::image::naming::BackupRegistry::parse("b.example/m").expect("valid"),
            naming: crate::image::naming::Naming::Flat,
            ignored_namespaces: Default::default(),
            only_namespaces: Default::default(),
            patch_gitops_managed: false,
            sources: Default::default(),
            refs: Default::default(),
        }
    }

    #[test]
    fn a_job_is_planned_as_any_workload_while_it_is_created() {
        let policy = policy();
        let job = |annotations: Value| {
            json!({"metadata": {"name": "report", "annotations": annotations},
                   "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "nginx:1.27"}]}}}})
        };
        let d = decode(Kind::Job, &job(json!({})), "shop", false).expect("decodes");
        let mut plans = plan::decide(&d.workload, &policy);
        assert_eq!(plans[0].decision, Decision::Immutable, "once created");
        at_creation(&mut plans, &d.workload, &policy);
        assert_eq!(plans[0].decision, Decision::Clone, "while created");

        let managed = job(json!({"argocd.argoproj.io/tracking-id": "a:batch/Job:shop/report"}));
        let d = decode(Kind::Job, &managed, "shop", false).expect("decodes");
        let mut plans = plan::decide(&d.workload, &policy);
        at_creation(&mut plans, &d.workload, &policy);
        assert!(matches!(plans[0].decision, Decision::GitOpsManaged { .. }));
    }

    /// The daemon's privacy screen, applied to what the webhooks judge: a private source is
    /// neither rewritten nor queued; one whose privacy is not known in time is not judged at
    /// all; the rest is rewritten when verified and queued when not.
    #[test]
    fn private_and_unsettled_sources_are_neither_rewritten_nor_queued() {
        let policy = policy();
        let images = [
            "nginx:1.27",
            "redis:7.4",
            "private.example/app:1",
            "slow.example/app:1",
        ];
        let containers: Vec<Value> = images
            .iter()
            .enumerate()
            .map(|(i, image)| json!({"name": format!("c{i}"), "image": image}))
            .collect();
        let obj = json!({"metadata": {"name": "web"},
                         "spec": {"template": {"spec": {"containers": containers}}}});
        let d = decode(Kind::Deployment, &obj, "shop", false).expect("decodes");
        let mut plans = plan::decide(&d.workload, &policy);
        let canonical = |i: &str| {
            crate::image::reference::ImageRef::parse(i)
                .expect("valid")
                .canonical()
                .into_owned()
        };
        let verified: Verified = images
            .iter()
            .filter(|i| **i != "redis:7.4")
            .map(|i| (canonical(i), format!("b.example/m/copy-of-{i}")))
            .collect();
        let privacy = Privacy {
            private: BTreeSet::from([canonical("private.example/app:1")]),
            unsettled: BTreeSet::from([canonical("slow.example/app:1")]),
        };
        let (verified, queued) = settle(&mut plans, verified, &privacy);
        let mut rewritten: Vec<&String> = verified.keys().collect();
        rewritten.sort();
        assert_eq!(rewritten, [&canonical("nginx:1.27")]);
        let queued: Vec<String> = queued.iter().map(|s| s.canonical().into_owned()).collect();
        assert_eq!(queued, [canonical("redis:7.4")]);
        assert_eq!(plans[2].decision, Decision::PrivateSource);
        assert_eq!(
            plans[3].decision,
            Decision::Clone,
            "unsettled: left to the daemon"
        );
    }

    #[test]
    fn kinds_are_matched_by_group_and_name_in_any_version() {
        assert_eq!(kind_named("apps", "Deployment"), Some(Kind::Deployment));
        assert_eq!(kind_named("batch", "CronJob"), Some(Kind::CronJob));
        assert_eq!(kind_named("", "Pod"), Some(Kind::Pod));
        assert_eq!(kind_named("", "Deployment"), None);
        assert_eq!(kind_named("argoproj.io", "Rollout"), None);
    }
}
