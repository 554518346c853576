//! The workload kinds as image-cloner caches them: metadata and each container's name and
//! image, nothing else.
//!
//! The daemon caches every workload of the cluster. With the full `k8s-openapi` types a
//! Deployment costs a few KiB even after trimming (every optional field of a PodSpec and a
//! Container is inline in the struct), and 10,000 of them miss the 64 MiB target of a warm
//! restart. These types read the same JSON from the same endpoints (serde skips the fields they
//! do not name) and answer to the same `Resource` metadata as the full types, so lists, watches,
//! patches and Events are unchanged.

use std::borrow::Cow;

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
use serde::{Deserialize, Serialize};

/// A container as planning sees it.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq, Hash)]
pub struct ContainerImage {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
}

/// An entry of a pod spec's `imagePullSecrets` (a `LocalObjectReference`): only its name, which
/// the API server omits when empty.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq, Hash)]
pub struct SecretName {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
}

/// The containers of a pod spec; ephemeral containers are not read (never patched). Its
/// `imagePullSecrets` are read too: the patch adds the provisioned pull secret there.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PodSpecImages {
    #[serde(default)]
    pub containers: Vec<ContainerImage>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init_containers: Option<Vec<ContainerImage>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_secrets: Option<Vec<SecretName>>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
pub struct PodTemplate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<PodSpecImages>,
}

/// The spec of the kinds that hold a pod template at `spec.template`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
pub struct TemplateSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<PodTemplate>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
pub struct JobTemplate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<TemplateSpec>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct CronJobSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_template: Option<JobTemplate>,
}

macro_rules! partial {
    ($(#[$doc:meta])* $name:ident, $full:ty, $spec:ty) => {
        $(#[$doc])*
        #[derive(Clone, Debug, Default, Deserialize, Serialize)]
        pub struct $name {
            #[serde(default, deserialize_with = "super::metadata::read")]
            pub metadata: ObjectMeta,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub spec: Option<$spec>,
        }

        impl Resource for $name {
            type DynamicType = ();
            type Scope = NamespaceResourceScope;

            fn kind(dt: &()) -> Cow<'_, str> {
                <$full as Resource>::kind(dt)
            }
            fn group(dt: &()) -> Cow<'_, str> {
                <$full as Resource>::group(dt)
            }
            fn version(dt: &()) -> Cow<'_, str> {
                <$full as Resource>::version(dt)
            }
            fn api_version(dt: &()) -> Cow<'_, str> {
                <$full as Resource>::api_version(dt)
            }
            fn plural(dt: &()) -> Cow<'_, str> {
                <$full as Resource>::plural(dt)
            }
            fn meta(&self) -> &ObjectMeta {
                &self.metadata
            }
            fn meta_mut(&mut self) -> &mut ObjectMeta {
                &mut self.metadata
            }
        }
    };
}

partial!(
    /// apps/v1 Deployment.
    Deployment, k8s_openapi::api::apps::v1::Deployment, TemplateSpec
);
partial!(
    /// apps/v1 StatefulSet.
    StatefulSet, k8s_openapi::api::apps::v1::StatefulSet, TemplateSpec
);
partial!(
    /// apps/v1 DaemonSet.
    DaemonSet, k8s_openapi::api::apps::v1::DaemonSet, TemplateSpec
);
partial!(
    /// apps/v1 ReplicaSet.
    ReplicaSet, k8s_openapi::api::apps::v1::ReplicaSet, TemplateSpec
);
partial!(
    /// batch/v1 Job.
    Job, k8s_openapi::api::batch::v1::Job, TemplateSpec
);
partial!(
    /// batch/v1 CronJob.
    CronJob, k8s_openapi::api::batch::v1::CronJob, CronJobSpec
);
partial!(
    /// core/v1 Pod.
    Pod, k8s_openapi::api::core::v1::Pod, PodSpecImages
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_only_what_planning_needs_and_names_the_real_resource() {
        let d: Deployment = serde_json::from_value(serde_json::json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "shop", "labels": {"app": "web"}},
            "spec": {"replicas": 3, "template": {"spec": {
                "containers": [{"name": "app", "image": "nginx:1.27", "env": [{"name": "A"}]}],
                "initContainers": [{"name": "init", "image": "busybox"}],
                "volumes": [{"name": "v", "emptyDir": {}}]}}}
        }))
        .expect("a Deployment");
        let spec = d
            .spec
            .as_ref()
            .and_then(|s| s.template.as_ref())
            .and_then(|t| t.spec.as_ref());
        let spec = spec.expect("a pod spec");
        assert_eq!(spec.containers[0].image.as_deref(), Some("nginx:1.27"));
        assert_eq!(spec.init_containers.as_ref().map(Vec::len), Some(1));
        assert_eq!(Deployment::plural(&()), "deployments");
        assert_eq!(Deployment::api_version(&()), "apps/v1");
        assert_eq!(CronJob::group(&()), "batch");
        assert_eq!(Pod::kind(&()), "Pod");
        assert_eq!(d.meta().name.as_deref(), Some("web"));
    }
}
