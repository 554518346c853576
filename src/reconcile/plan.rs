//! Pure planning, step 1: a workload's view and the settings in, the decision per container
//! out — clone and patch, clone only (GitOps-managed, immutable pod template; the nodes could
//! not pull the copy, decided later by [`crate::reconcile::pull`]), or leave alone (already in
//! the backup registry, ignored namespace, opt-out, invalid reference, excluded by
//! `source_include`/`source_exclude`). Whether a source is private takes a registry request,
//! so that decision is made after: [`mark_private`] turns the answers into `private-source`. Its
//! [`to_mirror`] list is what the mirror is asked for. No client, no I/O: the rules that decide
//! what gets written into a production cluster are tested without one.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::image::naming::{BackupRegistry, Naming};
use crate::image::parsed::ParsedRefs;
use crate::image::reference::ImageRef;
use crate::source_policy::SourcePolicy;
use crate::workload::{
    APP_INSTANCE_LABEL, ARGOCD_INSTANCE_LABEL, Container, FLUX_HELM_LABEL, FLUX_KUSTOMIZE_LABEL,
    LAST_APPLIED, Workload, opted_out,
};

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
    /// Which sources are copied at all: filters, and whose private images.
    pub sources: SourcePolicy,
    /// The workloads' image references, each text parsed once (shared by the policy's clones).
    pub refs: ParsedRefs,
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
    /// Copied, not patched: the nodes could not pull the copy (a private backup registry, no
    /// pull secret, `pull_check` on). Says why.
    BackupNotPullable {
        why: String,
    },
    InvalidReference {
        error: String,
    },
    /// Not copied: `source_include` / `source_exclude` leave it out.
    Excluded {
        rule: String,
    },
    /// Not copied: its registry serves it only with credentials, and `copy_private_sources`
    /// does not allow that registry.
    PrivateSource,
}

impl Decision {
    /// Whether the image is copied.
    pub fn copies(&self) -> bool {
        matches!(
            self,
            Decision::Clone
                | Decision::GitOpsManaged { .. }
                | Decision::Immutable
                | Decision::BackupNotPullable { .. }
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
            Decision::BackupNotPullable { .. } => "backup not pullable",
            Decision::InvalidReference { .. } => "invalid reference",
            Decision::Excluded { .. } => "excluded",
            Decision::PrivateSource => "private-source",
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
        || labels.contains_key(ARGOCD_INSTANCE_LABEL)
        || (labels.contains_key(APP_INSTANCE_LABEL) && annotations.contains_key(LAST_APPLIED))
    {
        Some("Argo CD")
    } else if labels.contains_key(FLUX_KUSTOMIZE_LABEL) || labels.contains_key(FLUX_HELM_LABEL) {
        Some("Flux")
    } else {
        None
    }
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
                match policy.refs.parse(&c.image) {
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
                        let decision = if let Some(why) = policy.sources.excluded(&image) {
                            Decision::Excluded {
                                rule: why.to_string(),
                            }
                        } else if !workload.kind.pod_template_mutable() {
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
    let mut sources: Vec<ImageRef> = Vec::new();
    let copied = plans.iter().filter(|p| p.decision.copies());
    for source in copied.filter_map(|p| p.source.as_ref()) {
        // A pod has a handful of containers: looking through those kept costs less than a set
        // of owned canonical names (two allocations a source, twice a reconcile).
        let name = source.canonical();
        if !sources.iter().any(|s| s.canonical() == name) {
            sources.push(source.clone());
        }
    }
    sources
}

/// The distinct sources whose privacy decides whether they are copied: those the plan copies,
/// on registries whose private images `copy_private_sources` does not allow.
pub fn privacy_to_check(plans: &[ContainerPlan], policy: &Policy) -> Vec<ImageRef> {
    to_mirror(plans)
        .into_iter()
        .filter(|s| policy.sources.must_check_privacy(s))
        .collect()
}

/// Turns the decisions of the sources found private (canonical references) into
/// `private-source`: they are neither copied nor patched.
pub fn mark_private(plans: &mut [ContainerPlan], private: &BTreeSet<String>) {
    for p in plans.iter_mut() {
        let is_private = p
            .source
            .as_ref()
            .is_some_and(|s| private.contains(s.canonical().as_ref()));
        if is_private && p.decision.copies() {
            p.decision = Decision::PrivateSource;
        }
    }
}
