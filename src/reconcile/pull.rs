//! Pure parts of "patched pods can pull their copies": how the pods of a namespace will pull
//! from the backup registry (the [`PullGate`] answers, before a namespace's patch), what
//! happens to the plan when they could not, and the JSON Patch ops that add the provisioned
//! pull secret to a pod template's `imagePullSecrets` and that `restore` uses to take exactly
//! that entry out again. No client, no I/O: the gate itself lives in `crate::pullsecret`.
//!
//! The patch records what it added in the workload's annotation [`PULL_SECRET_ANNOTATION`]
//! (comma-separated names), so `restore` removes that entry and never one a user added; an
//! entry that is already there is never added twice, nor recorded.

use std::collections::BTreeMap;

use futures::future::BoxFuture;
use serde_json::{Value, json};

use crate::reconcile::patch::{ORIGINAL_IMAGES_ANNOTATION, Op, set_annotation_ops};
use crate::reconcile::plan::{ContainerPlan, Decision};
use crate::workload::Workload;

/// Records the `imagePullSecrets` entries image-cloner added (comma-separated names), on the
/// workload's own metadata like the original images.
pub const PULL_SECRET_ANNOTATION: &str = "image-cloner.io/pull-secret";

/// What an operator can do when nodes could not pull the copies; named in every
/// `BackupNotPullable` Event, warning and `plan` row.
pub const FIX: &str = "set pull_secret (image-cloner then puts the backup registry's credentials in a Secret of that name in each namespace it patches), make the backup registry answer anonymous pulls, or set pull_check = off if the nodes have their own credentials for it";

/// How the pods of a namespace will pull the copies, as the [`PullGate`] found out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PullAccess {
    /// The provisioned pull secret of this name is in place: the patch adds it to the pod
    /// template's `imagePullSecrets`.
    Secret(String),
    /// The backup registry answers anonymous pulls.
    Anonymous,
    /// `pull_check = off`: the operator says the nodes have their own credentials (a kubelet
    /// credential provider, such as ECR's).
    NodeCredentials,
    /// The nodes could not pull the copies: copied, not patched. Says why.
    NotPullable { why: String },
    /// Not known now (the registry or the API server did not answer): not patched this time,
    /// tried again soon.
    Unknown { error: String },
}

impl PullAccess {
    /// The pull secret the patch adds, if any.
    pub fn secret(&self) -> Option<&str> {
        match self {
            PullAccess::Secret(name) => Some(name),
            _ => None,
        }
    }

    /// Whether the workload may be patched.
    pub fn pullable(&self) -> bool {
        matches!(
            self,
            PullAccess::Secret(_) | PullAccess::Anonymous | PullAccess::NodeCredentials
        )
    }
}

/// Finds out, before a namespace's patch, whether its pods could pull the copies (and puts the
/// pull secret in place when one is configured).
pub trait PullGate: Send + Sync {
    /// How the pods of `namespace` will pull `copy` (a verified backup reference).
    fn access<'a>(&'a self, namespace: &'a str, copy: &'a str) -> BoxFuture<'a, PullAccess>;

    /// A workload in `namespace` records that image-cloner added these `imagePullSecrets`
    /// entries: the ones this gate provisions are kept current when the docker config changes
    /// (also Secrets provisioned before a restart).
    fn in_use(&self, _namespace: &str, _secrets: &[String]) {}

    /// Whether [`PullGate::access`] may write (it provisions pull secrets): a dry run, which
    /// must have no side effects, does not ask it.
    fn provisions(&self) -> bool {
        false
    }
}

/// A gate that lets every patch through without a pull secret: what a context without a
/// configured gate does (the behaviour before pull secrets existed).
pub struct Ungated;

impl PullGate for Ungated {
    fn access<'a>(&'a self, _namespace: &'a str, _copy: &'a str) -> BoxFuture<'a, PullAccess> {
        Box::pin(async { PullAccess::NodeCredentials })
    }
}

/// The plan when the pods could not pull: every container that would be patched is copied
/// only.
pub fn hold(plans: Vec<ContainerPlan>, why: &str) -> Vec<ContainerPlan> {
    plans
        .into_iter()
        .map(|mut p| {
            if p.decision == Decision::Clone {
                p.decision = Decision::BackupNotPullable {
                    why: why.to_owned(),
                };
            }
            p
        })
        .collect()
}

/// The names the annotation says image-cloner added.
pub fn recorded(annotations: &BTreeMap<String, String>) -> Vec<String> {
    annotations
        .get(PULL_SECRET_ANNOTATION)
        .map(|v| {
            v.split(',')
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// Whether the workload's pod template names `secret` in `imagePullSecrets`.
pub fn uses(w: &Workload, secret: &str) -> bool {
    w.pull_secrets
        .as_ref()
        .is_some_and(|l| l.iter().any(|n| n == secret))
}

fn pointer(w: &Workload) -> String {
    format!("{}/imagePullSecrets", w.kind.pod_spec_pointer())
}

/// The list as the API server stores it (an empty name is omitted).
fn list_value(names: &[String]) -> Value {
    Value::Array(
        names
            .iter()
            .map(|n| {
                if n.is_empty() {
                    json!({})
                } else {
                    json!({ "name": n })
                }
            })
            .collect(),
    )
}

/// The ops adding `{name: secret}` to the pod template's `imagePullSecrets` and recording it,
/// for a patch that also sets the original-images annotation (so the annotations map exists
/// by the time these ops run); `None` when the entry is already there.
///
/// An existing list is `test`ed whole before the entry is appended. An absent list cannot be
/// `test`ed for absence (RFC 6902), so the object's `resourceVersion` is: any write since the
/// read makes the patch fail and the workload is planned again.
pub fn add_ops(w: &Workload, secret: &str) -> Option<Vec<Op>> {
    let path = pointer(w);
    let mut ops = match &w.pull_secrets {
        Some(list) if list.iter().any(|n| n == secret) => return None,
        Some(list) => vec![
            Op::Test {
                path: path.clone(),
                value: list_value(list),
            },
            Op::Add {
                path: format!("{path}/-"),
                value: json!({"name": secret}),
            },
        ],
        None => {
            let mut ops = Vec::new();
            if let Some(rv) = &w.resource_version {
                ops.push(Op::Test {
                    path: "/metadata/resourceVersion".to_owned(),
                    value: Value::String(rv.clone()),
                });
            }
            ops.push(Op::Add {
                path,
                value: json!([{ "name": secret }]),
            });
            ops
        }
    };
    let mut names = recorded(&w.annotations);
    names.push(secret.to_owned());
    // The original-images op of the same patch runs first: the map is there by now.
    let mut after = w.annotations.clone();
    after
        .entry(ORIGINAL_IMAGES_ANNOTATION.to_owned())
        .or_default();
    ops.extend(set_annotation_ops(
        &after,
        PULL_SECRET_ANNOTATION,
        Some(names.join(",")),
    ));
    Some(ops)
}

/// `restore`'s ops: the entries the annotation records are taken out of `imagePullSecrets`
/// (one occurrence each, the last: the one appended), the list is removed when nothing else is
/// left in it, and the annotation goes. The names removed come back with the ops.
pub fn remove_ops(w: &Workload) -> (Vec<Op>, Vec<String>) {
    if !w.annotations.contains_key(PULL_SECRET_ANNOTATION) {
        return (Vec::new(), Vec::new());
    }
    let mut kept = w.pull_secrets.clone().unwrap_or_default();
    let mut removed = Vec::new();
    for name in recorded(&w.annotations) {
        if let Some(i) = kept.iter().rposition(|n| *n == name) {
            kept.remove(i);
            removed.push(name);
        }
    }
    let mut ops = Vec::new();
    if !removed.is_empty() {
        let path = pointer(w);
        let before = w.pull_secrets.clone().unwrap_or_default();
        ops.push(Op::Test {
            path: path.clone(),
            value: list_value(&before),
        });
        if kept.is_empty() {
            ops.push(Op::Remove { path });
        } else {
            ops.push(Op::Replace {
                path,
                value: list_value(&kept),
            });
        }
    }
    ops.extend(set_annotation_ops(
        &w.annotations,
        PULL_SECRET_ANNOTATION,
        None,
    ));
    (ops, removed)
}
