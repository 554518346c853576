//! `metav1.ObjectMeta` from protobuf to the JSON the simulator stores.

use k8s_pb::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use serde_json::Value;

use super::json::{Obj, time};

/// Every field of ObjectMeta but `managedFields`: field ownership is not simulated (README),
/// and no kubectl command that sends protobuf sets them. `creationTimestamp` is always
/// written (`null` when zero), as Go writes it; the store replaces it anyway.
pub fn object_meta(m: Option<&ObjectMeta>) -> Value {
    let default = ObjectMeta::default();
    let m = m.unwrap_or(&default);
    Obj::new()
        .str("name", &m.name)
        .str("generateName", &m.generate_name)
        .str("namespace", &m.namespace)
        .str("selfLink", &m.self_link)
        .str("uid", &m.uid)
        .str("resourceVersion", &m.resource_version)
        .int("generation", m.generation)
        .always("creationTimestamp", time(m.creation_timestamp.as_ref()))
        .some(
            "deletionTimestamp",
            m.deletion_timestamp.as_ref().map(|t| time(Some(t))),
        )
        .int_ptr(
            "deletionGracePeriodSeconds",
            m.deletion_grace_period_seconds,
        )
        .str_map("labels", &m.labels)
        .str_map("annotations", &m.annotations)
        .list("ownerReferences", &m.owner_references, owner_reference)
        .strings("finalizers", &m.finalizers)
        .done()
}

fn owner_reference(o: &OwnerReference) -> Value {
    let text = |s: &Option<String>| Value::from(s.clone().unwrap_or_default());
    Obj::new()
        .always("apiVersion", text(&o.api_version))
        .always("kind", text(&o.kind))
        .always("name", text(&o.name))
        .always("uid", text(&o.uid))
        .bool_ptr("controller", o.controller)
        .bool_ptr("blockOwnerDeletion", o.block_owner_deletion)
        .done()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_pb::apimachinery::pkg::apis::meta::v1::Time;
    use serde_json::json;
    use std::collections::BTreeMap;

    #[test]
    fn kubectls_empty_fields_vanish_and_set_ones_are_kept() {
        // What Go's encoder sends for `metadata: {name: web}`: every string, zero generation,
        // an empty creationTimestamp.
        let sent = ObjectMeta {
            name: Some("web".into()),
            generate_name: Some(String::new()),
            namespace: Some(String::new()),
            self_link: Some(String::new()),
            uid: Some(String::new()),
            resource_version: Some(String::new()),
            generation: Some(0),
            creation_timestamp: Some(Time::default()),
            ..ObjectMeta::default()
        };
        assert_eq!(
            object_meta(Some(&sent)),
            json!({"name": "web", "creationTimestamp": null})
        );
        let full = ObjectMeta {
            name: Some("web".into()),
            namespace: Some("kc".into()),
            resource_version: Some("42".into()),
            labels: BTreeMap::from([("app".into(), "web".into())]),
            annotations: BTreeMap::from([("a".into(), "b".into())]),
            finalizers: vec!["x/y".into()],
            deletion_grace_period_seconds: Some(0),
            owner_references: vec![OwnerReference {
                api_version: Some("apps/v1".into()),
                kind: Some("ReplicaSet".into()),
                name: Some("web-1".into()),
                uid: Some("u-1".into()),
                controller: Some(true),
                block_owner_deletion: None,
            }],
            ..ObjectMeta::default()
        };
        assert_eq!(
            object_meta(Some(&full)),
            json!({"name": "web", "namespace": "kc", "resourceVersion": "42",
                "creationTimestamp": null, "deletionGracePeriodSeconds": 0,
                "labels": {"app": "web"}, "annotations": {"a": "b"}, "finalizers": ["x/y"],
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                    "name": "web-1", "uid": "u-1", "controller": true}]})
        );
        assert_eq!(object_meta(None), json!({"creationTimestamp": null}));
    }
}
