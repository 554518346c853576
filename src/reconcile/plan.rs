//! Pure planning: a workload's pod spec and the settings in, the decision per container and the
//! JSON Patch out. No client, no I/O: everything here is a function of its arguments, so the
//! rules that decide what gets written into a production cluster are tested without one.
//!
//! Two steps, because the copies happen in between:
//! 1. [`decide`] — per container: clone and patch, clone only (GitOps-managed, immutable pod
//!    template), or leave alone (already in the backup registry, ignored namespace, opt-out,
//!    invalid reference). Its [`to_mirror`] list is what the mirror is asked for.
//! 2. [`patch`] — given the verified copies, one RFC 6902 patch: a `test` op on every image it
//!    replaces (a concurrent edit makes the whole patch fail instead of being overwritten), the
//!    `replace` ops, and the annotation recording the originals for `restore`.
//!
//! [`restore`] plans the way back from that annotation, with the same `test` discipline.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::image::naming::{BackupRegistry, Naming};
use crate::image::reference::ImageRef;
use crate::registry::mirror::MirroredImage;

/// Where the original images are recorded, on the workload's own metadata (not the pod
/// template, so recording them does not roll the pods a second time).
pub const ORIGINAL_IMAGES_ANNOTATION: &str = "image-cloner.io/original-images";
/// `"true"` on a workload or its namespace: image-cloner leaves it alone.
pub const SKIP_ANNOTATION: &str = "image-cloner.io/skip";

/// The workload kinds image-cloner reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Kind {
    Deployment,
    StatefulSet,
    DaemonSet,
    ReplicaSet,
    CronJob,
    Job,
    Pod,
}

impl Kind {
    pub const ALL: [Kind; 7] = [
        Kind::Deployment,
        Kind::StatefulSet,
        Kind::DaemonSet,
        Kind::ReplicaSet,
        Kind::CronJob,
        Kind::Job,
        Kind::Pod,
    ];

    /// JSON pointer of the pod spec inside the object.
    pub fn pod_spec_pointer(self) -> &'static str {
        match self {
            Kind::CronJob => "/spec/jobTemplate/spec/template/spec",
            Kind::Pod => "/spec",
            _ => "/spec/template/spec",
        }
    }

    /// A Job's pod template is immutable once created: its images are cloned, never patched.
    pub fn pod_template_mutable(self) -> bool {
        self != Kind::Job
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self, f)
    }
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
    fn list(&self) -> &'static str {
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
    pub annotations: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
    /// `containers` then `initContainers`; ephemeral containers are never included.
    pub containers: Vec<Container>,
    /// The namespace carries the opt-out annotation.
    pub namespace_opted_out: bool,
}

/// The settings planning depends on.
#[derive(Debug, Clone)]
pub struct Policy {
    pub backup: BackupRegistry,
    pub naming: Naming,
    /// Already includes `kube-system` and the daemon's own namespace.
    pub ignored_namespaces: BTreeSet<String>,
    /// When not empty, every other namespace counts as ignored.
    pub only_namespaces: BTreeSet<String>,
    /// Patch workloads managed by Argo CD or Flux anyway.
    pub patch_gitops_managed: bool,
}

/// What happens to one container, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "decision", rename_all = "kebab-case")]
pub enum Decision {
    /// Copy the image and patch the container to the copy.
    Clone,
    /// The image already is in the backup registry (a converged workload).
    AlreadyInBackup,
    IgnoredNamespace,
    OptOut,
    /// Copied, not patched: the GitOps tool would revert the patch.
    #[serde(rename = "gitops-managed")]
    GitOpsManaged {
        tool: String,
    },
    /// Copied, not patched: the pod template cannot change (a Job).
    Immutable,
    InvalidReference {
        error: String,
    },
}

impl Decision {
    /// Whether the image is copied.
    pub fn copies(&self) -> bool {
        matches!(
            self,
            Decision::Clone | Decision::GitOpsManaged { .. } | Decision::Immutable
        )
    }

    /// A short label for tables and logs.
    pub fn label(&self) -> &'static str {
        match self {
            Decision::Clone => "clone",
            Decision::AlreadyInBackup => "already in backup",
            Decision::IgnoredNamespace => "ignored namespace",
            Decision::OptOut => "opt-out",
            Decision::GitOpsManaged { .. } => "gitops-managed",
            Decision::Immutable => "immutable",
            Decision::InvalidReference { .. } => "invalid reference",
        }
    }
}

/// One container's plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerPlan {
    pub container: Container,
    pub decision: Decision,
    /// The parsed image, for every decision but `InvalidReference` and the skips.
    pub source: Option<ImageRef>,
}

/// Which GitOps tool manages the workload, from the marks each tool leaves.
///
/// - Argo CD: the `argocd.argoproj.io/tracking-id` annotation (annotation tracking, the default
///   since Argo CD 3.0), the `argocd.argoproj.io/instance` label (the documented custom
///   tracking label), or the `app.kubernetes.io/instance` label (label tracking, the default
///   before 3.0) together with kubectl's last-applied annotation — the label alone is also set
///   by every Helm chart and would mark half a cluster.
/// - Flux: the `kustomize.toolkit.fluxcd.io/name` and `helm.toolkit.fluxcd.io/name` labels
///   that kustomize-controller and helm-controller put on what they apply.
pub fn gitops_manager(
    annotations: &BTreeMap<String, String>,
    labels: &BTreeMap<String, String>,
) -> Option<&'static str> {
    if annotations.contains_key("argocd.argoproj.io/tracking-id")
        || labels.contains_key("argocd.argoproj.io/instance")
        || (labels.contains_key("app.kubernetes.io/instance")
            && annotations.contains_key("kubectl.kubernetes.io/last-applied-configuration"))
    {
        Some("Argo CD")
    } else if labels.contains_key("kustomize.toolkit.fluxcd.io/name")
        || labels.contains_key("helm.toolkit.fluxcd.io/name")
    {
        Some("Flux")
    } else {
        None
    }
}

fn opted_out(annotations: &BTreeMap<String, String>) -> bool {
    annotations
        .get(SKIP_ANNOTATION)
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
}

/// Decides, per container, what happens to its image.
pub fn decide(workload: &Workload, policy: &Policy) -> Vec<ContainerPlan> {
    let outside =
        !policy.only_namespaces.is_empty() && !policy.only_namespaces.contains(&workload.namespace);
    let workload_skip = if outside || policy.ignored_namespaces.contains(&workload.namespace) {
        Some(Decision::IgnoredNamespace)
    } else if workload.namespace_opted_out || opted_out(&workload.annotations) {
        Some(Decision::OptOut)
    } else {
        None
    };
    let gitops = gitops_manager(&workload.annotations, &workload.labels)
        .filter(|_| !policy.patch_gitops_managed);
    workload
        .containers
        .iter()
        .map(|c| {
            let (decision, source) = if let Some(skip) = &workload_skip {
                (skip.clone(), None)
            } else {
                match ImageRef::parse(&c.image) {
                    Err(e) => (
                        Decision::InvalidReference {
                            error: e.to_string(),
                        },
                        None,
                    ),
                    Ok(image) if policy.backup.contains(&image) => {
                        (Decision::AlreadyInBackup, Some(image))
                    }
                    Ok(image) => {
                        let decision = if !workload.kind.pod_template_mutable() {
                            Decision::Immutable
                        } else if let Some(tool) = gitops {
                            Decision::GitOpsManaged {
                                tool: tool.to_owned(),
                            }
                        } else {
                            Decision::Clone
                        };
                        (decision, Some(image))
                    }
                }
            };
            ContainerPlan {
                container: c.clone(),
                decision,
                source,
            }
        })
        .collect()
}

/// The distinct images to copy, in first-seen order.
pub fn to_mirror(plans: &[ContainerPlan]) -> Vec<ImageRef> {
    let mut seen = BTreeSet::new();
    plans
        .iter()
        .filter(|p| p.decision.copies())
        .filter_map(|p| p.source.clone())
        .filter(|s| seen.insert(s.canonical()))
        .collect()
}

/// One container image replaced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImageChange {
    pub container: String,
    pub init: bool,
    pub from: String,
    pub to: String,
}

/// A workload's patch, ready for `Patch::Json`.
#[derive(Debug, Clone, PartialEq)]
pub struct PatchPlan {
    pub changes: Vec<ImageChange>,
    /// RFC 6902 operations.
    pub patch: Value,
}

/// What the annotation records per container: the image before and after, so that `restore`
/// puts back the original only where the image is still the one image-cloner wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recorded {
    pub original: String,
    pub backup: String,
}

/// The annotation's content: container name → images. Container names are unique across
/// `containers` and `initContainers` in a pod, so the name alone identifies one.
pub type OriginalImages = BTreeMap<String, Recorded>;

/// Parses the annotation; `None` when absent or not ours (then it is never used to restore).
pub fn original_images(annotations: &BTreeMap<String, String>) -> Option<OriginalImages> {
    serde_json::from_str(annotations.get(ORIGINAL_IMAGES_ANNOTATION)?).ok()
}

/// JSON pointer escaping (RFC 6901) of one reference token.
fn escape(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

fn image_pointer(kind: Kind, c: &Container) -> String {
    format!("{}/{}/{}/image", kind.pod_spec_pointer(), c.list(), c.index)
}

/// Ops that set the annotation to `value`, guarded by a `test` of the current value.
fn annotation_ops(annotations: &BTreeMap<String, String>, value: Option<String>) -> Vec<Value> {
    let key = format!(
        "/metadata/annotations/{}",
        escape(ORIGINAL_IMAGES_ANNOTATION)
    );
    let current = annotations.get(ORIGINAL_IMAGES_ANNOTATION);
    match (current, value) {
        (None, None) => vec![],
        (Some(old), None) => vec![
            json!({"op": "test", "path": key, "value": old}),
            json!({"op": "remove", "path": key}),
        ],
        (Some(old), Some(new)) => vec![
            json!({"op": "test", "path": key, "value": old}),
            json!({"op": "replace", "path": key, "value": new}),
        ],
        (None, Some(new)) if annotations.is_empty() => vec![json!({
            "op": "add",
            "path": "/metadata/annotations",
            "value": {ORIGINAL_IMAGES_ANNOTATION: new}
        })],
        (None, Some(new)) => vec![json!({"op": "add", "path": key, "value": new})],
    }
}

/// The patch pointing every `Clone` container at its verified copy. Containers whose image has
/// no verified copy in `mirrored` are left as they are; `None` when nothing changes.
pub fn patch(
    workload: &Workload,
    plans: &[ContainerPlan],
    mirrored: &dyn Fn(&ImageRef) -> Option<MirroredImage>,
) -> Option<PatchPlan> {
    let mut tests = Vec::new();
    let mut replaces = Vec::new();
    let mut changes = Vec::new();
    let mut recorded = original_images(&workload.annotations).unwrap_or_default();
    for plan in plans {
        if plan.decision != Decision::Clone {
            continue;
        }
        let Some(copy) = plan.source.as_ref().and_then(mirrored) else {
            continue;
        };
        let c = &plan.container;
        let path = image_pointer(workload.kind, c);
        tests.push(json!({"op": "test", "path": path, "value": c.image}));
        replaces.push(json!({"op": "replace", "path": path, "value": copy.backup_ref}));
        recorded.insert(
            c.name.clone(),
            Recorded {
                original: c.image.clone(),
                backup: copy.backup_ref.clone(),
            },
        );
        changes.push(ImageChange {
            container: c.name.clone(),
            init: c.init,
            from: c.image.clone(),
            to: copy.backup_ref,
        });
    }
    if changes.is_empty() {
        return None;
    }
    let value = serde_json::to_string(&recorded).unwrap_or_default();
    let mut ops = tests;
    ops.extend(replaces);
    ops.extend(annotation_ops(&workload.annotations, Some(value)));
    Some(PatchPlan {
        changes,
        patch: Value::Array(ops),
    })
}

/// A container `restore` leaves alone, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Kept {
    pub container: String,
    pub reason: String,
}

/// The way back: every recorded container whose image is still the backup image gets its
/// original back; the annotation goes. `None` when the workload has no annotation of ours.
pub fn restore(workload: &Workload) -> Option<(PatchPlan, Vec<Kept>)> {
    let recorded = original_images(&workload.annotations)?;
    let mut tests = Vec::new();
    let mut replaces = Vec::new();
    let mut changes = Vec::new();
    let mut kept = Vec::new();
    for (name, images) in &recorded {
        match workload.containers.iter().find(|c| &c.name == name) {
            Some(c) if c.image == images.backup => {
                let path = image_pointer(workload.kind, c);
                tests.push(json!({"op": "test", "path": path, "value": c.image}));
                replaces.push(json!({"op": "replace", "path": path, "value": images.original}));
                changes.push(ImageChange {
                    container: name.clone(),
                    init: c.init,
                    from: c.image.clone(),
                    to: images.original.clone(),
                });
            }
            Some(c) => kept.push(Kept {
                container: name.clone(),
                reason: format!(
                    "its image was changed since image-cloner set it (now {}), so that change is kept",
                    c.image
                ),
            }),
            None => kept.push(Kept {
                container: name.clone(),
                reason: "the container no longer exists".into(),
            }),
        }
    }
    let mut ops = tests;
    ops.extend(replaces);
    ops.extend(annotation_ops(&workload.annotations, None));
    Some((
        PatchPlan {
            changes,
            patch: Value::Array(ops),
        },
        kept,
    ))
}

#[cfg(test)]
mod tests;
