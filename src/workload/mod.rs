//! The workload kinds behind one trait: where each keeps its pod spec, whether an owner manages
//! it, and how to trim it before it enters a cache.
//!
//! The controller caches every workload of the cluster; at 10,000 workloads the fields planning
//! never reads (managedFields, status, env, volumes, probes, ...) are most of the memory. The
//! kinds are the partial types of [`crate::workload::partial`], which only read each container's name and
//! image (in their original order, which the JSON Patch indexes need) besides the metadata;
//! [`trim`] drops from the metadata what is left that planning never reads.

pub mod partial;

use std::collections::BTreeMap;
use std::fmt::Debug;

use k8s_openapi::NamespaceResourceScope;
use kube::Resource;
use kube::ResourceExt;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::reconcile::plan::{Container, Kind, Workload};
use crate::workload::partial::{
    ContainerImage, CronJob, DaemonSet, Deployment, Job, Pod, PodSpecImages, ReplicaSet,
    StatefulSet,
};

/// A kind of workload image-cloner reads (and, but for Job, patches).
pub trait WorkloadKind:
    Resource<Scope = NamespaceResourceScope, DynamicType = ()>
    + Clone
    + Debug
    + DeserializeOwned
    + Serialize
    + Send
    + Sync
    + 'static
{
    const KIND: Kind;

    fn pod_spec(&self) -> Option<&PodSpecImages>;

    /// Whether another controller owns this object and would undo or repeat our change: owned
    /// ReplicaSets (Deployments), Pods (ReplicaSets, Jobs, ...) and Jobs (CronJobs) are left to
    /// their owners, which image-cloner patches instead.
    fn left_to_owner(&self) -> bool {
        false
    }

    /// Kinds the daemon only reads when a setting asks for them.
    fn opt_in() -> bool {
        false
    }
}

fn has_controller_owner<K: Resource>(obj: &K) -> bool {
    obj.meta()
        .owner_references
        .as_ref()
        .is_some_and(|o| o.iter().any(|r| r.controller == Some(true)))
}

impl WorkloadKind for Deployment {
    const KIND: Kind = Kind::Deployment;
    fn pod_spec(&self) -> Option<&PodSpecImages> {
        self.spec.as_ref()?.template.as_ref()?.spec.as_ref()
    }
}

impl WorkloadKind for StatefulSet {
    const KIND: Kind = Kind::StatefulSet;
    fn pod_spec(&self) -> Option<&PodSpecImages> {
        self.spec.as_ref()?.template.as_ref()?.spec.as_ref()
    }
}

impl WorkloadKind for DaemonSet {
    const KIND: Kind = Kind::DaemonSet;
    fn pod_spec(&self) -> Option<&PodSpecImages> {
        self.spec.as_ref()?.template.as_ref()?.spec.as_ref()
    }
}

impl WorkloadKind for ReplicaSet {
    const KIND: Kind = Kind::ReplicaSet;
    fn pod_spec(&self) -> Option<&PodSpecImages> {
        self.spec.as_ref()?.template.as_ref()?.spec.as_ref()
    }
    fn left_to_owner(&self) -> bool {
        has_controller_owner(self)
    }
}

impl WorkloadKind for CronJob {
    const KIND: Kind = Kind::CronJob;
    fn pod_spec(&self) -> Option<&PodSpecImages> {
        self.spec
            .as_ref()?
            .job_template
            .as_ref()?
            .spec
            .as_ref()?
            .template
            .as_ref()?
            .spec
            .as_ref()
    }
}

impl WorkloadKind for Job {
    const KIND: Kind = Kind::Job;
    fn pod_spec(&self) -> Option<&PodSpecImages> {
        self.spec.as_ref()?.template.as_ref()?.spec.as_ref()
    }
    fn left_to_owner(&self) -> bool {
        has_controller_owner(self)
    }
}

impl WorkloadKind for Pod {
    const KIND: Kind = Kind::Pod;
    fn pod_spec(&self) -> Option<&PodSpecImages> {
        self.spec.as_ref()
    }
    fn left_to_owner(&self) -> bool {
        has_controller_owner(self)
    }
    fn opt_in() -> bool {
        true
    }
}

fn containers(list: &[ContainerImage], init: bool) -> impl Iterator<Item = Container> + '_ {
    list.iter().enumerate().map(move |(index, c)| Container {
        name: c.name.clone(),
        image: c.image.clone().unwrap_or_default(),
        init,
        index,
    })
}

/// Planning's view of a workload. `namespace_opted_out` comes from the namespace, which the
/// object does not carry.
pub fn view<K: WorkloadKind>(obj: &K, namespace_opted_out: bool) -> Workload {
    let (main, init) = obj.pod_spec().map_or((&[][..], &[][..]), |s| {
        (
            &s.containers[..],
            s.init_containers.as_deref().unwrap_or(&[]),
        )
    });
    Workload {
        kind: K::KIND,
        namespace: obj.namespace().unwrap_or_default(),
        name: obj.name_any(),
        annotations: obj.annotations().clone(),
        labels: obj.labels().clone(),
        containers: containers(main, false)
            .chain(containers(init, true))
            .collect(),
        namespace_opted_out,
    }
}

/// kubectl's copy of the whole object: only its presence matters to planning (GitOps
/// detection), so its value is dropped from the cache.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Drops from `obj` everything planning does not read, in place.
pub fn trim<K: WorkloadKind>(obj: &mut K) {
    let meta = obj.meta_mut();
    meta.managed_fields = None;
    if let Some(a) = meta.annotations.as_mut()
        && let Some(v) = a.get_mut(LAST_APPLIED)
    {
        v.clear();
        v.shrink_to_fit();
    }
}

/// A hash of what planning reads (generation, labels, annotations, container images), so that
/// the controllers reconcile on those changes and not on every status update (a running Job
/// changes its status constantly).
pub fn relevant_state<K: WorkloadKind>(obj: &K) -> Option<u64> {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    let meta = obj.meta();
    meta.generation.hash(&mut h);
    meta.labels.hash(&mut h);
    meta.annotations.hash(&mut h);
    meta.owner_references
        .as_ref()
        .map(|o| o.iter().map(|r| r.uid.clone()).collect::<Vec<_>>())
        .hash(&mut h);
    if let Some(spec) = obj.pod_spec() {
        for c in spec
            .containers
            .iter()
            .chain(spec.init_containers.iter().flatten())
        {
            (&c.name, &c.image).hash(&mut h);
        }
    }
    Some(h.finish())
}

/// Labels and annotations of a namespace, as far as opting out goes.
pub fn namespace_opted_out(annotations: &BTreeMap<String, String>) -> bool {
    annotations
        .get(crate::reconcile::plan::SKIP_ANNOTATION)
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment() -> Deployment {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {
                "name": "web", "namespace": "shop",
                "annotations": {LAST_APPLIED: "{\"big\":true}", "team": "a"},
                "managedFields": [{"manager": "kubectl", "operation": "Apply"}]
            },
            "spec": {
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {
                        "containers": [
                            {"name": "app", "image": "nginx:1.27", "env": [{"name": "A", "value": "1"}]},
                            {"name": "side", "image": "redis:7"}
                        ],
                        "initContainers": [{"name": "init", "image": "busybox"}],
                        "ephemeralContainers": [{"name": "debug", "image": "debian"}],
                        "volumes": [{"name": "v", "emptyDir": {}}]
                    }
                }
            }
        }))
        .unwrap()
    }

    #[test]
    fn the_view_lists_containers_then_init_containers_with_their_indexes() {
        let w = view(&deployment(), false);
        let got: Vec<_> = w
            .containers
            .iter()
            .map(|c| (c.name.as_str(), c.init, c.index))
            .collect();
        assert_eq!(
            got,
            [("app", false, 0), ("side", false, 1), ("init", true, 0)]
        );
        assert_eq!(w.kind, Kind::Deployment);
        assert_eq!((w.namespace.as_str(), w.name.as_str()), ("shop", "web"));
    }

    #[test]
    fn trimming_keeps_what_planning_reads_and_nothing_else() {
        let mut d = deployment();
        let before = view(&d, false);
        trim(&mut d);
        let after = view(&d, false);
        assert_eq!(before.containers, after.containers);
        assert_eq!(before.labels, after.labels);
        assert!(after.annotations.contains_key(LAST_APPLIED));
        assert_eq!(after.annotations[LAST_APPLIED], "");
        assert!(d.metadata.managed_fields.is_none());
        // Ephemeral containers, env, volumes: never read into the cache at all.
        let cached = serde_json::to_value(&d).unwrap();
        let spec = &cached["spec"]["template"]["spec"];
        assert!(spec.get("volumes").is_none());
        assert!(spec.get("ephemeralContainers").is_none());
        assert!(spec["containers"][0].get("env").is_none());
        assert_eq!(spec["containers"][1]["image"], "redis:7");
    }

    #[test]
    fn status_changes_do_not_count_as_changes() {
        let d = deployment();
        let mut with_status = d.clone();
        with_status.metadata.resource_version = Some("99".into());
        assert_eq!(relevant_state(&d), relevant_state(&with_status));
        let mut edited = d.clone();
        edited
            .spec
            .as_mut()
            .and_then(|s| s.template.as_mut())
            .and_then(|t| t.spec.as_mut())
            .unwrap()
            .containers[0]
            .image = Some("nginx:1.28".into());
        assert_ne!(relevant_state(&d), relevant_state(&edited));
        let mut annotated = d.clone();
        annotated
            .metadata
            .annotations
            .get_or_insert_default()
            .insert(
                crate::reconcile::plan::SKIP_ANNOTATION.into(),
                "true".into(),
            );
        assert_ne!(relevant_state(&d), relevant_state(&annotated));
    }

    #[test]
    fn owned_replicasets_pods_and_jobs_are_left_to_their_owners() {
        let owner = serde_json::json!([{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": "u", "controller": true}]);
        let rs: ReplicaSet = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web-1", "namespace": "shop", "ownerReferences": owner},
        }))
        .unwrap();
        assert!(rs.left_to_owner());
        let bare: Pod =
            serde_json::from_value(serde_json::json!({"metadata": {"name": "p"}})).unwrap();
        assert!(!bare.left_to_owner());
        assert!(!deployment().left_to_owner());
    }
}
