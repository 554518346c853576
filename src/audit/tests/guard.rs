//! The rollout guard's pure parts: which Pods fail on a backup image, what is cached of them,
//! and where their owners lead.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::json;

use super::BACKUP;
use crate::audit::act::{Restoring, note};
use crate::audit::guard::owner::{Hop, above, hop};
use crate::audit::guard::pod::{PendingPod, failing_pulls, trim};
use crate::audit::guard::sweep_period;
use crate::image::naming::BackupRegistry;
use crate::reconcile::patch::ImageChange;
use crate::workload::Kind;

fn pod(statuses: serde_json::Value) -> PendingPod {
    serde_json::from_value(json!({
        "metadata": {
            "name": "web-7d4-x", "namespace": "shop", "uid": "u1",
            "labels": {"app": "web"}, "annotations": {"a": "b"},
            "ownerReferences": [
                {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-7d4", "uid": "rs1", "controller": true},
                {"apiVersion": "v1", "kind": "ConfigMap", "name": "other", "uid": "cm1"}
            ]
        },
        "spec": {"containers": [
            {"name": "app", "image": format!("{BACKUP}/docker.io_library_nginx:1.27@sha256:{}", "a".repeat(64))},
            {"name": "sidecar", "image": "docker.io/library/envoy:1"}
        ]},
        "status": {"phase": "Pending", "containerStatuses": statuses}
    }))
    .expect("a Pod")
}

fn waiting(name: &str, reason: &str) -> serde_json::Value {
    json!({"name": name, "ready": false, "restartCount": 0, "image": "x", "imageID": "",
           "state": {"waiting": {"reason": reason, "message": "pull access denied"}}})
}

#[test]
fn only_a_failing_pull_of_a_backup_image_counts() {
    let backup = BackupRegistry::parse(BACKUP).expect("valid");
    let failing = pod(json!([
        waiting("app", "ImagePullBackOff"),
        waiting("sidecar", "ErrImagePull")
    ]));
    let pulls = failing_pulls(&failing, &backup);
    assert_eq!(pulls.len(), 1, "the sidecar's image is not a backup copy");
    assert_eq!(pulls[0].container, "app");
    assert_eq!(pulls[0].reason, "ImagePullBackOff");
    assert_eq!(pulls[0].message.as_deref(), Some("pull access denied"));
    let creating = pod(json!([waiting("app", "ContainerCreating")]));
    assert!(failing_pulls(&creating, &backup).is_empty());
}

#[test]
fn the_cache_keeps_the_controller_and_the_failing_containers() {
    let mut p = pod(json!([
        waiting("app", "ErrImagePull"),
        waiting("sidecar", "ContainerCreating")
    ]));
    trim(&mut p);
    assert_eq!(p.metadata.labels, None);
    assert_eq!(p.metadata.annotations, None);
    let owners = p.metadata.owner_references.clone().expect("kept");
    assert_eq!(owners.len(), 1);
    assert_eq!(owners[0].kind, "ReplicaSet");
    let statuses = &p.status.as_ref().expect("kept").container_statuses;
    assert_eq!(statuses.len(), 1);
    assert_eq!(statuses[0].name, "app");
}

#[test]
fn owners_lead_to_the_workload_image_cloner_patched() {
    assert_eq!(hop("ReplicaSet"), Some(Hop::Through(Kind::ReplicaSet)));
    assert_eq!(hop("StatefulSet"), Some(Hop::Workload(Kind::StatefulSet)));
    assert_eq!(hop("Rollout"), None);
    let owned: ObjectMeta = serde_json::from_value(json!({
        "name": "web-7d4",
        "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": "d1", "controller": true}]
    }))
    .expect("meta");
    assert_eq!(
        above(Kind::ReplicaSet, &owned),
        Some((Kind::Deployment, "web".to_owned()))
    );
    let bare: ObjectMeta = serde_json::from_value(json!({"name": "old"})).expect("meta");
    assert_eq!(
        above(Kind::ReplicaSet, &bare),
        Some((Kind::ReplicaSet, "old".to_owned()))
    );
    let rollout: ObjectMeta = serde_json::from_value(json!({
        "name": "x",
        "ownerReferences": [{"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "name": "r", "uid": "r1", "controller": true}]
    }))
    .expect("meta");
    assert_eq!(above(Kind::ReplicaSet, &rollout), None);
}

#[test]
fn the_note_says_what_was_done() {
    let change = ImageChange {
        container: "app".into(),
        init: false,
        from: "backup/x:1@sha256:…".into(),
        to: "nginx:1.27".into(),
    };
    let done = note("Pod p could not pull", &Restoring::Done(vec![change]));
    assert!(
        done.contains("restored the original images (app: backup/x:1@sha256:… → nginx:1.27)"),
        "{done}"
    );
    assert!(done.contains("image-cloner.io/skip=true"), "{done}");
    let skipped = note(
        "gone",
        &Restoring::Skipped("its original nginx:1.27 no longer exists either".into()),
    );
    assert_eq!(
        skipped,
        "gone; not restored: its original nginx:1.27 no longer exists either"
    );
    assert_eq!(
        sweep_period(Duration::from_secs(300)),
        Duration::from_secs(15)
    );
    assert_eq!(
        sweep_period(Duration::from_secs(1)),
        Duration::from_millis(250)
    );
}
