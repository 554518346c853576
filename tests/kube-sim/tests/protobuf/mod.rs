//! The fidelity scenario's protobuf requests — bodies as client-go's typed clients send them
//! (`kubectl create namespace|secret|configmap`, `kubectl auth can-i`) — and access reviews,
//! run against both servers like the rest of the scenario; and what the simulator refuses
//! by design (a protobuf type it cannot read, a client that accepts only protobuf).

use k8s_pb::api::core::v1::{ConfigMap, Namespace, Secret};
use k8s_pb::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube_sim::protobuf::{MEDIA_TYPE, envelope};
use prost::Message as _;
use serde_json::json;

use super::{JSON, NS, Step};
use crate::common::{Cluster, raw_bytes};

const SSAR: &str = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews";
const SAR: &str = "/apis/authorization.k8s.io/v1/subjectaccessreviews";

fn meta(name: &str) -> Option<ObjectMeta> {
    Some(ObjectMeta {
        name: Some(name.into()),
        labels: [("app".into(), name.into())].into(),
        ..ObjectMeta::default()
    })
}

fn secret() -> Vec<u8> {
    let s = Secret {
        metadata: meta("pb-secret"),
        data: [("user".into(), b"admin".to_vec())].into(),
        // Merged into data by the server; no type, so it is defaulted to Opaque.
        string_data: [("token".into(), "s3cr3t".into())].into(),
        ..Secret::default()
    };
    envelope("v1", "Secret", s.encode_to_vec())
}

fn config_map() -> Vec<u8> {
    let c = ConfigMap {
        metadata: meta("pb-config"),
        immutable: Some(true),
        data: [("mode".into(), "fast".into())].into(),
        binary_data: [("blob".into(), vec![0, 1, 255])].into(),
    };
    envelope("v1", "ConfigMap", c.encode_to_vec())
}

fn namespace() -> Vec<u8> {
    let n = Namespace {
        metadata: meta("fidelity-pb"),
        ..Namespace::default()
    };
    envelope("v1", "Namespace", n.encode_to_vec())
}

/// Appended to the scenario, after its namespace exists.
pub fn steps() -> Vec<Step> {
    use Step::*;
    let secrets = format!("/api/v1/namespaces/{NS}/secrets");
    let config_maps = format!("/api/v1/namespaces/{NS}/configmaps");
    // What `kubectl auth can-i create pods -n protons` sent (kubectl 1.32).
    let can_i = include_bytes!("../../src/protobuf/testdata/self-subject-access-review.pb");
    vec![
        Bytes(
            "create a Secret (protobuf)",
            "POST",
            secrets.clone(),
            MEDIA_TYPE,
            secret(),
        ),
        Req(
            "get the Secret",
            "GET",
            format!("{secrets}/pb-secret"),
            JSON,
            None,
        ),
        Bytes(
            "create it again (protobuf)",
            "POST",
            secrets.clone(),
            MEDIA_TYPE,
            secret(),
        ),
        Bytes(
            "create a ConfigMap (protobuf)",
            "POST",
            config_maps.clone(),
            MEDIA_TYPE,
            config_map(),
        ),
        Bytes(
            "create a namespace (protobuf)",
            "POST",
            "/api/v1/namespaces".into(),
            MEDIA_TYPE,
            namespace(),
        ),
        Bytes(
            "a protobuf Secret sent to configmaps",
            "POST",
            config_maps,
            MEDIA_TYPE,
            secret(),
        ),
        Bytes(
            "a protobuf body without the envelope",
            "POST",
            secrets,
            MEDIA_TYPE,
            secret()[4..].to_vec(),
        ),
        Bytes(
            "kubectl auth can-i create pods (protobuf)",
            "POST",
            SSAR.into(),
            MEDIA_TYPE,
            can_i.to_vec(),
        ),
        Req(
            "a SelfSubjectAccessReview in JSON",
            "POST",
            SSAR.into(),
            JSON,
            Some(
                json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
                "spec": {"nonResourceAttributes": {"path": "/healthz", "verb": "get"}}}),
            ),
        ),
        Req(
            "an access review without attributes",
            "POST",
            SSAR.into(),
            JSON,
            Some(
                json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview", "spec": {}}),
            ),
        ),
        Req(
            "a SubjectAccessReview without a user",
            "POST",
            SAR.into(),
            JSON,
            Some(
                json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
                "spec": {"resourceAttributes": {"verb": "get", "resource": "pods"}}}),
            ),
        ),
        Req("list access reviews", "GET", SSAR.into(), JSON, None),
    ]
}

/// The simulator's own limits, answered with the type or media type named (the real server
/// reads every protobuf type and answers in protobuf: nothing to compare).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protobuf_the_simulator_cannot_serve_is_refused_by_name() {
    let sim = Cluster::sim();
    let client = sim.client().await;
    let robot = k8s_pb::api::core::v1::ServiceAccount {
        metadata: meta("robot"),
        ..Default::default()
    };
    let body = envelope("v1", "ServiceAccount", robot.encode_to_vec());
    let path = "/api/v1/namespaces/default/serviceaccounts";
    let (code, answer) = raw_bytes(&client, "POST", path, MEDIA_TYPE, JSON, body).await;
    assert_eq!(
        (code, &answer["reason"]),
        (415, &json!("UnsupportedMediaType"))
    );
    let message = answer["message"].as_str().unwrap_or_default();
    assert!(message.contains("not of v1 ServiceAccount"), "{message}");

    let secrets = "/api/v1/namespaces/default/secrets";
    let (code, answer) =
        raw_bytes(&client, "POST", secrets, MEDIA_TYPE, MEDIA_TYPE, secret()).await;
    assert_eq!((code, &answer["reason"]), (406, &json!("NotAcceptable")));
    let (code, _) = raw_bytes(
        &client,
        "GET",
        &format!("{secrets}/pb-secret"),
        JSON,
        JSON,
        vec![],
    )
    .await;
    assert_eq!(
        code, 404,
        "a request refused for its Accept creates nothing"
    );
}
