//! The workload kinds: the [`Kind`] table, the trait each kind's type implements, the partial
//! types the caches hold, planning's view of a workload and which changes wake a reconcile.
//!
//! The controller caches every workload of the cluster; at 10,000 workloads the fields planning
//! never reads (managedFields, status, env, volumes, probes, ...) are most of the memory. The
//! kinds are the partial types of [`partial`], which only read each container's name and image
//! (in their original order, which the JSON Patch indexes need) besides the metadata, which is
//! read without what planning never reads (`metadata`).

mod cache;
mod kind;
mod kinds;
mod metadata;
pub mod partial;
mod view;

pub use cache::relevant_state;
pub use kind::{Kind, KindFacts, KindVisitor, dispatch};
pub use kinds::WorkloadKind;
pub use metadata::LAST_APPLIED;
pub use view::{
    APP_INSTANCE_LABEL, ARGOCD_INSTANCE_LABEL, Container, FLUX_HELM_LABEL, FLUX_KUSTOMIZE_LABEL,
    GITOPS_LABELS, SKIP_ANNOTATION, Workload, opted_out, view,
};

#[cfg(test)]
mod tests;
