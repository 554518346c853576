//! The workload kinds behind one trait: where each keeps its pod spec, whether an owner manages
//! it, and whether it is read at all by default.

use std::fmt::Debug;

use k8s_openapi::NamespaceResourceScope;
use kube::Resource;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::workload::kind::Kind;
use crate::workload::partial::{
    CronJob, DaemonSet, Deployment, Job, Pod, PodSpecImages, ReplicaSet, StatefulSet,
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
    /// JSON pointer of the pod spec inside the object.
    const POD_SPEC_POINTER: &'static str = "/spec/template/spec";
    /// Whether the pod template may change after creation (not a Job's).
    const POD_TEMPLATE_MUTABLE: bool = true;
    /// Read only when a setting asks for it.
    const OPT_IN: bool = false;
    /// The full k8s-openapi type: its `Resource` consts name the API group, version and plural.
    type Full: k8s_openapi::Resource;

    fn pod_spec(&self) -> Option<&PodSpecImages>;

    /// Whether another controller owns this object and would undo or repeat our change: owned
    /// ReplicaSets (Deployments), Pods (ReplicaSets, Jobs, ...) and Jobs (CronJobs) are left to
    /// their owners, which image-cloner patches instead.
    fn left_to_owner(&self) -> bool {
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
    type Full = k8s_openapi::api::apps::v1::Deployment;
    fn pod_spec(&self) -> Option<&PodSpecImages> {
        self.spec.as_ref()?.template.as_ref()?.spec.as_ref()
    }
}

impl WorkloadKind for StatefulSet {
    const KIND: Kind = Kind::StatefulSet;
    type Full = k8s_openapi::api::apps::v1::StatefulSet;
    fn pod_spec(&self) -> Option<&PodSpecImages> {
        self.spec.as_ref()?.template.as_ref()?.spec.as_ref()
    }
}

impl WorkloadKind for DaemonSet {
    const KIND: Kind = Kind::DaemonSet;
    type Full = k8s_openapi::api::apps::v1::DaemonSet;
    fn pod_spec(&self) -> Option<&PodSpecImages> {
        self.spec.as_ref()?.template.as_ref()?.spec.as_ref()
    }
}

impl WorkloadKind for ReplicaSet {
    const KIND: Kind = Kind::ReplicaSet;
    type Full = k8s_openapi::api::apps::v1::ReplicaSet;
    fn pod_spec(&self) -> Option<&PodSpecImages> {
        self.spec.as_ref()?.template.as_ref()?.spec.as_ref()
    }
    fn left_to_owner(&self) -> bool {
        has_controller_owner(self)
    }
}

impl WorkloadKind for CronJob {
    const KIND: Kind = Kind::CronJob;
    const POD_SPEC_POINTER: &'static str = "/spec/jobTemplate/spec/template/spec";
    type Full = k8s_openapi::api::batch::v1::CronJob;
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
    const POD_TEMPLATE_MUTABLE: bool = false;
    type Full = k8s_openapi::api::batch::v1::Job;
    fn pod_spec(&self) -> Option<&PodSpecImages> {
        self.spec.as_ref()?.template.as_ref()?.spec.as_ref()
    }
    fn left_to_owner(&self) -> bool {
        has_controller_owner(self)
    }
}

impl WorkloadKind for Pod {
    const KIND: Kind = Kind::Pod;
    const POD_SPEC_POINTER: &'static str = "/spec";
    const OPT_IN: bool = true;
    type Full = k8s_openapi::api::core::v1::Pod;
    fn pod_spec(&self) -> Option<&PodSpecImages> {
        self.spec.as_ref()
    }
    fn left_to_owner(&self) -> bool {
        has_controller_owner(self)
    }
}
