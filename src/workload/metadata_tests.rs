use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use proptest::prelude::*;
use serde_json::{Value, json};

use super::*;
use crate::workload::partial::Deployment;

/// What k8s-openapi reads of `metadata`, with what the caches drop taken out.
fn as_k8s_openapi_reads_it(metadata: &Value) -> ObjectMeta {
    let mut m: ObjectMeta = serde_json::from_value(metadata.clone()).expect("k8s-openapi reads it");
    m.managed_fields = None;
    m.self_link = None;
    if let Some(v) = m.annotations.as_mut().and_then(|a| a.get_mut(LAST_APPLIED)) {
        v.clear();
    }
    m
}

fn read_value(metadata: &Value) -> ObjectMeta {
    read(metadata.clone()).expect("read")
}

/// Metadata as kube-apiserver 1.20 serves a Deployment applied with kubectl and adopted by a
/// ReplicaSet-owning controller: every kind of field, managedFields and last-applied included.
fn served() -> Value {
    json!({
        "name": "web",
        "namespace": "shop",
        "uid": "0c9d6e4a-1b2f-4c3d-9e8f-7a6b5c4d3e2f",
        "resourceVersion": "4711",
        "generation": 3,
        "creationTimestamp": "2026-11-30T12:00:00Z",
        "deletionTimestamp": "2026-12-01T08:00:00Z",
        "deletionGracePeriodSeconds": 30,
        "generateName": "web-",
        "selfLink": "/apis/apps/v1/namespaces/shop/deployments/web",
        "finalizers": ["example.com/keep"],
        "labels": {"app": "web", "app.kubernetes.io/instance": "shop"},
        "annotations": {
            "deployment.kubernetes.io/revision": "3",
            LAST_APPLIED: "{\"apiVersion\":\"apps/v1\",\"kind\":\"Deployment\",\"metadata\":{\"name\":\"web\"}}\n",
            "image-cloner.io/skip": "false"
        },
        "ownerReferences": [{
            "apiVersion": "example.com/v1", "kind": "App", "name": "web",
            "uid": "1d2e3f40-5a6b-7c8d-9e0f-a1b2c3d4e5f6", "controller": true,
            "blockOwnerDeletion": true
        }],
        "managedFields": [{
            "manager": "kubectl-client-side-apply", "operation": "Update",
            "apiVersion": "apps/v1", "time": "2026-11-30T12:00:00Z", "fieldsType": "FieldsV1",
            "fieldsV1": {"f:metadata": {"f:annotations": {".": {}, "f:kubectl.kubernetes.io/last-applied-configuration": {}}},
                         "f:spec": {"f:replicas": {}, "f:template": {"f:spec": {"f:containers": {"k:{\"name\":\"app\"}": {".": {}, "f:image": {}}}}}}}
        }]
    })
}

#[test]
fn every_kept_field_is_read_as_k8s_openapi_reads_it() {
    let metadata = served();
    let read = read_value(&metadata);
    assert_eq!(read, as_k8s_openapi_reads_it(&metadata));
    assert_eq!(read.managed_fields, None);
    assert_eq!(read.self_link, None);
    let annotations = read.annotations.as_ref().expect("annotations");
    assert_eq!(annotations.get(LAST_APPLIED).map(String::as_str), Some(""));
    assert_eq!(annotations.len(), 3);
    assert_eq!(read.owner_references.as_ref().map(Vec::len), Some(1));
    assert_eq!(read.generation, Some(3));
}

#[test]
fn absent_null_and_empty_fields_are_read_as_k8s_openapi_reads_them() {
    for metadata in [
        json!({}),
        json!({"name": "web"}),
        json!({"name": null, "annotations": null, "labels": null, "managedFields": null}),
        json!({"annotations": {}, "labels": {}, "finalizers": [], "ownerReferences": []}),
        json!({"annotations": {LAST_APPLIED: "", "a": "b"}}),
    ] {
        assert_eq!(
            read_value(&metadata),
            as_k8s_openapi_reads_it(&metadata),
            "{metadata}"
        );
    }
}

#[test]
fn a_field_of_the_wrong_type_is_an_error_as_it_was() {
    for metadata in [
        json!({"name": 3}),
        json!({"annotations": {"a": 1}}),
        json!({"annotations": ["a"]}),
        json!({"generation": "three"}),
    ] {
        assert!(read(metadata.clone()).is_err(), "{metadata}");
        assert!(
            serde_json::from_value::<ObjectMeta>(metadata.clone()).is_err(),
            "{metadata}"
        );
    }
}

/// A listed Deployment is read with this metadata: its containers as before, managedFields and
/// the last-applied copy not kept.
#[test]
fn a_workload_is_read_with_this_metadata() {
    let d: Deployment = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": served(),
        "spec": {"template": {"spec": {"containers": [{"name": "app", "image": "nginx:1.27"}]}}}
    }))
    .expect("a Deployment");
    assert_eq!(d.metadata, as_k8s_openapi_reads_it(&served()));
    let missing: Deployment =
        serde_json::from_value(json!({"apiVersion": "apps/v1", "kind": "Deployment"}))
            .expect("a Deployment without metadata");
    assert_eq!(missing.metadata, ObjectMeta::default());
}

proptest! {
    #[test]
    fn any_annotations_and_labels_are_read_as_k8s_openapi_reads_them(
        annotations in prop::collection::btree_map(
            prop_oneof![Just(LAST_APPLIED.to_owned()), "[a-z./-]{1,12}"],
            "\\PC{0,30}",
            0..6,
        ),
        labels in prop::collection::btree_map("[a-z./-]{1,12}", "[a-z0-9.-]{0,12}", 0..4),
    ) {
        let metadata = json!({"name": "x", "annotations": annotations, "labels": labels});
        prop_assert_eq!(read_value(&metadata), as_k8s_openapi_reads_it(&metadata));
    }
}
