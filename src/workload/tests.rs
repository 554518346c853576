//! The workload views and what the caches keep, on real JSON of each kind.

use super::*;
use crate::workload::partial::{Deployment, Pod, ReplicaSet};

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
fn a_read_workload_keeps_what_planning_reads_and_nothing_else() {
    let d = deployment();
    let after = view(&d, false);
    assert_eq!(after.containers.len(), 3);
    assert_eq!(after.annotations["team"], "a");
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
        .insert(SKIP_ANNOTATION.into(), "true".into());
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
    let bare: Pod = serde_json::from_value(serde_json::json!({"metadata": {"name": "p"}})).unwrap();
    assert!(!bare.left_to_owner());
    assert!(!deployment().left_to_owner());
}

#[test]
fn the_view_reads_the_pull_secrets_and_the_resource_version() {
    assert_eq!(
        view(&deployment(), false).pull_secrets,
        None,
        "absent, not empty"
    );
    let mut with: Deployment = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "web", "namespace": "shop", "resourceVersion": "12"},
        "spec": {"template": {"spec": {
            "containers": [{"name": "app", "image": "nginx"}],
            "imagePullSecrets": [{"name": "team"}, {}]
        }}}
    }))
    .unwrap();
    let w = view(&with, false);
    assert_eq!(w.pull_secrets, Some(vec!["team".to_owned(), String::new()]));
    assert_eq!(w.resource_version.as_deref(), Some("12"));
    // Written back as the server stores it (an empty name omitted).
    let json = serde_json::to_value(&with).unwrap();
    assert_eq!(
        json["spec"]["template"]["spec"]["imagePullSecrets"],
        serde_json::json!([{"name": "team"}, {}])
    );
    // A change of the list wakes a reconcile.
    let before = relevant_state(&with);
    if let Some(spec) = with
        .spec
        .as_mut()
        .and_then(|s| s.template.as_mut())
        .and_then(|t| t.spec.as_mut())
    {
        spec.image_pull_secrets = None;
    }
    assert_ne!(before, relevant_state(&with));
}

#[test]
fn the_view_keeps_the_gitops_labels_alone() {
    let mut d = deployment();
    d.metadata.labels = Some(
        [
            ("app", "web"),
            ("team", "shop"),
            ("app.kubernetes.io/instance", "web"),
            ("kustomize.toolkit.fluxcd.io/name", "apps"),
            ("argocd.argoproj.io/instance-other", "x"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect(),
    );
    let w = view(&d, false);
    let kept: Vec<_> = w.labels.keys().map(String::as_str).collect();
    assert_eq!(
        kept,
        [
            "app.kubernetes.io/instance",
            "kustomize.toolkit.fluxcd.io/name"
        ]
    );
    assert_eq!(w.labels["kustomize.toolkit.fluxcd.io/name"], "apps");
    // Annotations are kept whole: a patch adds the whole map where there is none.
    assert_eq!(w.annotations.len(), 2);
    assert_eq!(
        crate::reconcile::plan::gitops_manager(&w.annotations, &w.labels),
        Some("Argo CD"),
        "app.kubernetes.io/instance with kubectl's last-applied annotation"
    );
}
