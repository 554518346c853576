//! Planning's view of a workload: kind, name, metadata and each container's name and image, in
//! the order the JSON Patch indexes need. Built from the cached object, handed to the pure plan.

use std::collections::BTreeMap;

use kube::ResourceExt;

use crate::workload::kind::Kind;
use crate::workload::kinds::WorkloadKind;
use crate::workload::partial::ContainerImage;

/// `"true"` on a workload or its namespace: image-cloner leaves it alone.
pub const SKIP_ANNOTATION: &str = "image-cloner.io/skip";

/// Argo CD's documented custom tracking label.
pub const ARGOCD_INSTANCE_LABEL: &str = "argocd.argoproj.io/instance";
/// The label Argo CD tracked by before 3.0, also set by every Helm chart.
pub const APP_INSTANCE_LABEL: &str = "app.kubernetes.io/instance";
/// What Flux's kustomize-controller puts on what it applies.
pub const FLUX_KUSTOMIZE_LABEL: &str = "kustomize.toolkit.fluxcd.io/name";
/// What Flux's helm-controller puts on what it applies.
pub const FLUX_HELM_LABEL: &str = "helm.toolkit.fluxcd.io/name";
/// Every label planning reads (`plan::gitops_manager`); a view keeps these alone.
pub const GITOPS_LABELS: [&str; 4] = [
    ARGOCD_INSTANCE_LABEL,
    APP_INSTANCE_LABEL,
    FLUX_KUSTOMIZE_LABEL,
    FLUX_HELM_LABEL,
];

/// Whether these annotations (of a workload or of a namespace) opt out of image-cloner. The one
/// place this rule lives.
pub fn opted_out(annotations: &BTreeMap<String, String>) -> bool {
    annotations
        .get(SKIP_ANNOTATION)
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
}

/// A container as planning sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Container {
    pub name: String,
    pub image: String,
    /// From `initContainers` rather than `containers`.
    pub init: bool,
    /// Its index in that list (the JSON Patch path uses it).
    pub index: usize,
}

impl Container {
    /// The pod spec field holding it.
    pub fn list(&self) -> &'static str {
        if self.init {
            "initContainers"
        } else {
            "containers"
        }
    }
}

/// What planning needs of a workload; the rest of the object never reaches it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workload {
    pub kind: Kind,
    pub namespace: String,
    pub name: String,
    /// All of the object's annotations: a patch adds the whole map where the object has none,
    /// so the view must know whether it has any.
    pub annotations: BTreeMap<String, String>,
    /// Only the [`GITOPS_LABELS`] the object carries: no patch touches labels, and a copy of
    /// every label (an `app` label is one map and two strings) was kept by each reconcile.
    pub labels: BTreeMap<String, String>,
    /// `containers` then `initContainers`; ephemeral containers are never included.
    pub containers: Vec<Container>,
    /// The namespace carries the opt-out annotation.
    pub namespace_opted_out: bool,
    /// The names in the pod spec's `imagePullSecrets`, in order; `None` when the field is
    /// absent (the patch then adds the whole list, which a `test` op cannot guard).
    pub pull_secrets: Option<Vec<String>>,
    /// The object's `metadata.resourceVersion`, which guards a patch that adds a field a `test`
    /// op cannot check the absence of.
    pub resource_version: Option<String>,
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
    let spec = obj.pod_spec();
    let (main, init) = spec.map_or((&[][..], &[][..]), |s| {
        (
            &s.containers[..],
            s.init_containers.as_deref().unwrap_or(&[]),
        )
    });
    let pull_secrets = spec
        .and_then(|s| s.image_pull_secrets.as_ref())
        .map(|list| list.iter().map(|r| r.name.clone()).collect());
    Workload {
        kind: K::KIND,
        namespace: obj.namespace().unwrap_or_default(),
        name: obj.name_any(),
        annotations: obj.annotations().clone(),
        labels: obj
            .labels()
            .iter()
            .filter(|(key, _)| GITOPS_LABELS.contains(&key.as_str()))
            .map(|(key, value)| (key.clone(), value.clone()))
            .collect(),
        containers: containers(main, false)
            .chain(containers(init, true))
            .collect(),
        namespace_opted_out,
        pull_secrets,
        resource_version: obj.resource_version(),
    }
}
