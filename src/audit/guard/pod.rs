//! The Pods the guard watches — only Pending ones (a field selector on the server), and of each
//! only what it reads: name, namespace, uid and controller owner; each container's name and
//! image; the waiting reason of the containers whose pull fails. A Pod that starts leaves the
//! selection (the server sends a deletion), so the cache holds the Pods that are stuck, not the
//! cluster's Pods.

use std::borrow::Cow;

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
use serde::{Deserialize, Serialize};

use crate::image::naming::BackupRegistry;
use crate::image::reference::ImageRef;
use crate::workload::partial::PodSpecImages;

/// The field selector of the watch.
pub const PENDING: &str = "status.phase=Pending";
/// The waiting reasons of a container whose image cannot be pulled.
pub const PULL_FAILURES: &[&str] = &["ErrImagePull", "ImagePullBackOff"];

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
pub struct Waiting {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
pub struct ContainerState {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting: Option<Waiting>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
pub struct ContainerStatus {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<ContainerState>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PodStatus {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub container_statuses: Vec<ContainerStatus>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub init_container_statuses: Vec<ContainerStatus>,
}

/// core/v1 Pod, as the guard caches it.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct PendingPod {
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<PodSpecImages>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<PodStatus>,
}

type FullPod = k8s_openapi::api::core::v1::Pod;

impl Resource for PendingPod {
    type DynamicType = ();
    type Scope = NamespaceResourceScope;

    fn kind(dt: &()) -> Cow<'_, str> {
        <FullPod as Resource>::kind(dt)
    }
    fn group(dt: &()) -> Cow<'_, str> {
        <FullPod as Resource>::group(dt)
    }
    fn version(dt: &()) -> Cow<'_, str> {
        <FullPod as Resource>::version(dt)
    }
    fn api_version(dt: &()) -> Cow<'_, str> {
        <FullPod as Resource>::api_version(dt)
    }
    fn plural(dt: &()) -> Cow<'_, str> {
        <FullPod as Resource>::plural(dt)
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

fn pull_failing(status: &ContainerStatus) -> bool {
    let reason = status
        .state
        .as_ref()
        .and_then(|s| s.waiting.as_ref())
        .and_then(|w| w.reason.as_deref());
    reason.is_some_and(|r| PULL_FAILURES.contains(&r))
}

/// Drops what the guard never reads, before the Pod enters the cache: labels, annotations,
/// managed fields, owners other than the controller, and the status of containers whose pull
/// does not fail.
pub fn trim(pod: &mut PendingPod) {
    let m = std::mem::take(&mut pod.metadata);
    let owner = m
        .owner_references
        .and_then(|o| o.into_iter().find(|r| r.controller == Some(true)));
    pod.metadata = ObjectMeta {
        name: m.name,
        namespace: m.namespace,
        uid: m.uid,
        resource_version: m.resource_version,
        owner_references: owner.map(|o| vec![o]),
        ..ObjectMeta::default()
    };
    if let Some(status) = pod.status.as_mut() {
        status.container_statuses.retain(pull_failing);
        status.init_container_statuses.retain(pull_failing);
    }
}

/// A container of a Pod that cannot pull its backup image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailingPull {
    pub container: String,
    pub image: String,
    pub reason: String,
    pub message: Option<String>,
}

/// The containers of `pod` that cannot pull an image under `backup` (pure).
pub fn failing_pulls(pod: &PendingPod, backup: &BackupRegistry) -> Vec<FailingPull> {
    let (Some(spec), Some(status)) = (&pod.spec, &pod.status) else {
        return Vec::new();
    };
    let specs = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten());
    let image_of = |name: &str| {
        specs
            .clone()
            .find(|c| c.name == name)
            .and_then(|c| c.image.clone())
    };
    status
        .container_statuses
        .iter()
        .chain(&status.init_container_statuses)
        .filter(|s| pull_failing(s))
        .filter_map(|s| {
            let image = image_of(&s.name)?;
            let ours = ImageRef::parse(&image).is_ok_and(|i| backup.contains(&i));
            let waiting = s.state.as_ref()?.waiting.as_ref()?;
            ours.then(|| FailingPull {
                container: s.name.clone(),
                image,
                reason: waiting.reason.clone().unwrap_or_default(),
                message: waiting.message.clone(),
            })
        })
        .collect()
}
