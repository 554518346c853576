//! The decoder against request bodies kubectl 1.32 really sent (`testdata/*.pb`, captured
//! from `kubectl -v=9`'s request dumps), each expected to become the JSON that
//! `kubectl create ... --dry-run=client -o json` prints for the same command.

use k8s_pb::api::core::v1::{ConfigMap, Namespace, NamespaceSpec, Secret};
use k8s_pb::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use prost::Message as _;
use serde_json::json;

use super::*;

fn decoded(body: &[u8]) -> Value {
    decode(body).expect("a body kubectl sent decodes")
}

#[test]
fn kubectl_create_namespace() {
    assert_eq!(
        decoded(include_bytes!("testdata/namespace.pb")),
        json!({"kind": "Namespace", "apiVersion": "v1",
            "metadata": {"name": "protons", "creationTimestamp": null},
            "spec": {}, "status": {}})
    );
}

#[test]
fn kubectl_create_secret_generic_from_literals() {
    // --from-literal=user=admin --from-literal=token=s3cr3t
    assert_eq!(
        decoded(include_bytes!("testdata/secret-generic.pb")),
        json!({"kind": "Secret", "apiVersion": "v1",
            "metadata": {"name": "plain", "namespace": "protons", "creationTimestamp": null},
            "data": {"token": "czNjcjN0", "user": "YWRtaW4="}})
    );
}

#[test]
fn kubectl_create_secret_docker_registry() {
    // --docker-server=registry.example:5000 --docker-username=puller --docker-password=pull-pass
    assert_eq!(
        decoded(include_bytes!("testdata/secret-docker-registry.pb")),
        json!({"kind": "Secret", "apiVersion": "v1",
            "metadata": {"name": "regcred", "namespace": "protons", "creationTimestamp": null},
            "data": {".dockerconfigjson": "eyJhdXRocyI6eyJyZWdpc3RyeS5leGFtcGxlOjUwMDAiOnsidXNlcm5hbWUiOiJwdWxsZXIiLCJwYXNzd29yZCI6InB1bGwtcGFzcyIsImF1dGgiOiJjSFZzYkdWeU9uQjFiR3d0Y0dGemN3PT0ifX19"},
            "type": "kubernetes.io/dockerconfigjson"})
    );
}

#[test]
fn kubectl_create_secret_of_a_type_from_a_file() {
    // --type=kubernetes.io/dockerconfigjson --from-file=.dockerconfigjson=FILE
    assert_eq!(
        decoded(include_bytes!("testdata/secret-from-file.pb")),
        json!({"kind": "Secret", "apiVersion": "v1",
            "metadata": {"name": "fromfile", "namespace": "protons", "creationTimestamp": null},
            "data": {".dockerconfigjson": "eyJhdXRocyI6eyJyZWdpc3RyeS5leGFtcGxlOjUwMDAiOnsiYXV0aCI6ImNIVnNiR1Z5T25CMWJHd3RjR0Z6Y3c9PSJ9fX0="},
            "type": "kubernetes.io/dockerconfigjson"})
    );
}

#[test]
fn kubectl_create_configmap() {
    assert_eq!(
        decoded(include_bytes!("testdata/configmap.pb")),
        json!({"kind": "ConfigMap", "apiVersion": "v1",
            "metadata": {"name": "settings", "namespace": "protons", "creationTimestamp": null},
            "data": {"mode": "fast"}})
    );
}

#[test]
fn kubectl_auth_can_i() {
    // `can-i create pods -n protons`; then `can-i list secrets --as=bob`, whose impersonation
    // travels in a header, not in the body.
    let review = |ns: &str, verb: &str, resource: &str| {
        json!({"kind": "SelfSubjectAccessReview", "apiVersion": "authorization.k8s.io/v1",
            "metadata": {"creationTimestamp": null},
            "spec": {"resourceAttributes": {"namespace": ns, "verb": verb, "resource": resource}},
            "status": {"allowed": false}})
    };
    assert_eq!(
        decoded(include_bytes!("testdata/self-subject-access-review.pb")),
        review("protons", "create", "pods")
    );
    assert_eq!(
        decoded(include_bytes!("testdata/self-subject-access-review-as.pb")),
        review("default", "list", "secrets")
    );
}

#[test]
fn a_type_without_a_converter_is_named_in_a_415() {
    // `kubectl create serviceaccount robot`
    let e = decode(include_bytes!("testdata/serviceaccount.pb")).expect_err("not read");
    assert!(matches!(&e, ProtobufError::FindConverter { kind, .. } if kind == "ServiceAccount"));
    let answer = api_error("ServiceAccount", &e);
    assert_eq!(answer.code, 415);
    assert_eq!(answer.reason(), "UnsupportedMediaType");
    assert!(
        answer.message().contains("not of v1 ServiceAccount"),
        "{}",
        answer.message()
    );
    assert!(
        answer.message().contains("v1 Secret"),
        "{}",
        answer.message()
    );
}

#[test]
fn a_body_that_is_not_the_envelope_is_a_400_as_on_the_real_server() {
    let namespace = include_bytes!("testdata/namespace.pb");
    for (body, what) in [
        (&b"garbage"[..], "no magic"),
        (&namespace[4..], "the envelope without its magic"),
        (&namespace[..40], "cut short"),
        (&b""[..], "empty"),
    ] {
        let e = decode(body).expect_err(what);
        let answer = api_error("Namespace", &e);
        assert_eq!(
            (answer.code, answer.reason()),
            (400, "BadRequest"),
            "{what}"
        );
        assert!(
            answer
                .message()
                .starts_with("the object provided is unrecognized (must be of type Namespace)"),
            "{what}: {}",
            answer.message()
        );
    }
    let mut gzip = Unknown::decode(&namespace[4..]).expect("the envelope");
    gzip.content_encoding = Some("gzip".into());
    let body = [MAGIC, &gzip.encode_to_vec()].concat();
    assert!(matches!(decode(&body), Err(ProtobufError::ReadEncoding(e)) if e == "gzip"));
}

#[test]
fn every_field_of_the_supported_types_is_carried() {
    let meta = || {
        Some(ObjectMeta {
            name: Some("x".into()),
            ..ObjectMeta::default()
        })
    };
    let secret = Secret {
        metadata: meta(),
        immutable: Some(true),
        data: [("bin".into(), vec![0, 255])].into(),
        string_data: [("plain".into(), "text".into())].into(),
        r#type: Some("Opaque".into()),
    };
    assert_eq!(
        decoded(&envelope("v1", "Secret", secret.encode_to_vec())),
        json!({"kind": "Secret", "apiVersion": "v1",
            "metadata": {"name": "x", "creationTimestamp": null}, "immutable": true,
            "data": {"bin": "AP8="}, "stringData": {"plain": "text"}, "type": "Opaque"})
    );
    let config_map = ConfigMap {
        metadata: meta(),
        immutable: Some(false),
        data: [("a".into(), "b".into())].into(),
        binary_data: [("c".into(), b"d".to_vec())].into(),
    };
    assert_eq!(
        decoded(&envelope("v1", "ConfigMap", config_map.encode_to_vec())),
        json!({"kind": "ConfigMap", "apiVersion": "v1",
            "metadata": {"name": "x", "creationTimestamp": null}, "immutable": false,
            "data": {"a": "b"}, "binaryData": {"c": "ZA=="}})
    );
    let namespace = Namespace {
        metadata: meta(),
        spec: Some(NamespaceSpec {
            finalizers: vec!["kubernetes".into()],
        }),
        status: None,
    };
    assert_eq!(
        decoded(&envelope("v1", "Namespace", namespace.encode_to_vec()))["spec"],
        json!({"finalizers": ["kubernetes"]})
    );
}

#[test]
fn subject_access_reviews_carry_the_subject() {
    use k8s_pb::api::authorization::v1::{
        ExtraValue, NonResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
    };
    let review = SubjectAccessReview {
        metadata: None,
        spec: Some(SubjectAccessReviewSpec {
            resource_attributes: None,
            non_resource_attributes: Some(NonResourceAttributes {
                path: Some("/healthz".into()),
                verb: Some("get".into()),
            }),
            user: Some("bob".into()),
            groups: vec!["devs".into()],
            extra: [(
                "scopes".into(),
                ExtraValue {
                    items: vec!["a".into()],
                },
            )]
            .into(),
            uid: Some(String::new()),
        }),
        status: None,
    };
    let body = envelope(
        "authorization.k8s.io/v1",
        "SubjectAccessReview",
        review.encode_to_vec(),
    );
    assert_eq!(
        decoded(&body)["spec"],
        json!({"nonResourceAttributes": {"path": "/healthz", "verb": "get"},
            "user": "bob", "groups": ["devs"], "extra": {"scopes": ["a"]}})
    );
}

#[test]
fn answers_are_json_unless_the_client_accepts_only_binary() {
    for accept in [
        "",
        "application/json",
        "application/vnd.kubernetes.protobuf,application/json",
        "application/json;as=Table;v=v1;g=meta.k8s.io,application/json",
        "*/*",
    ] {
        assert!(check_accept(accept).is_ok(), "{accept}");
    }
    for accept in [
        "application/vnd.kubernetes.protobuf",
        "application/vnd.kubernetes.protobuf;stream=watch",
        "application/cbor",
    ] {
        let e = check_accept(accept).expect_err(accept);
        assert_eq!((e.code, e.reason()), (406, "NotAcceptable"));
    }
}
