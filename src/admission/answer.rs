//! The AdmissionReview answer: its patch, and its bytes.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use kube::core::admission::AdmissionResponse;
use serde::ser::Error as _;

use crate::admission::AdmissionError;
use crate::reconcile::patch::Op;

/// `allowed` carrying `ops` as its JSON Patch: their JSON, written once, as the daemon's patch
/// sends them. kube's `with_patch` takes a `json_patch::Patch`; converting the operations into
/// one (through a `serde_json::Value`) for it to write again cost ~18,000 instructions an
/// answer, an eighth of it all (callgrind of `make bench`'s admission burst). `with_patch` of
/// no operations sets `patchType: JSONPatch`, a field kube keeps private.
pub(super) fn patched(
    allowed: AdmissionResponse,
    ops: &[Op],
) -> Result<AdmissionResponse, AdmissionError> {
    let bytes = serde_json::to_vec(ops).map_err(|e| AdmissionError::BuildPatch(e.to_string()))?;
    let mut response = allowed
        .with_patch(json_patch::Patch(Vec::new()))
        .map_err(|e| AdmissionError::BuildPatch(e.to_string()))?;
    response.patch = Some(bytes);
    Ok(response)
}

/// The AdmissionReview's JSON, its `patch` base64 as the API defines it (a Go `[]byte`):
/// kube's type would write a list of numbers, which kube-apiserver happens to accept too.
///
/// The rest is kube's serialization; the patch's base64 is appended after it. Going
/// through a `serde_json::Value` to swap the patch in (as this did) had serde_json scan every
/// character of the base64 for escapes, which its alphabet never needs: with building and
/// dropping the `Value`, a fifth of each answer's instructions (callgrind of `make bench`'s
/// admission burst: ~22,000 of ~160,000 per review).
pub(super) fn encode(mut response: AdmissionResponse) -> Result<Vec<u8>, serde_json::Error> {
    let patch = response.patch.take();
    let mut out = serde_json::to_vec(&response.into_review())?;
    let Some(patch) = patch else {
        return Ok(out);
    };
    // `{"apiVersion":…,"kind":…,"response":{"uid":…,…}}`: the response, never empty, is the
    // review's last field.
    if !out.ends_with(b"}}") {
        return Err(serde_json::Error::custom(
            "the AdmissionReview's JSON does not end with its response",
        ));
    }
    out.truncate(out.len() - 2);
    out.extend_from_slice(br#","patch":""#);
    out.extend_from_slice(STANDARD.encode(patch).as_bytes());
    out.extend_from_slice(br#""}}"#);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::DynamicObject;
    use kube::core::admission::{AdmissionRequest, AdmissionReview};
    use serde_json::{Value, json};

    fn request() -> AdmissionRequest<DynamicObject> {
        let review: AdmissionReview<DynamicObject> = serde_json::from_value(json!({
            "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "request": {
                "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
                "kind": {"group": "apps", "version": "v1", "kind": "Deployment"},
                "resource": {"group": "apps", "version": "v1", "resource": "deployments"},
                "operation": "CREATE", "userInfo": {"username": "admin"},
                "name": "web", "namespace": "shop",
                "object": {"apiVersion": "apps/v1", "kind": "Deployment",
                           "metadata": {"name": "web", "namespace": "shop"}},
                "oldObject": null, "dryRun": false
            }
        }))
        .unwrap();
        review.try_into().unwrap()
    }

    fn ops() -> Vec<Op> {
        vec![
            Op::Test {
                path: "/spec/template/spec/containers/0/image".to_owned(),
                value: json!("nginx:1.27"),
            },
            Op::Replace {
                path: "/spec/template/spec/containers/0/image".to_owned(),
                value: json!(format!(
                    "backup.example/docker.io_library_nginx:1.27@sha256:{}",
                    "a".repeat(64)
                )),
            },
            Op::Add {
                path: "/metadata/annotations/image-cloner~1original-images".to_owned(),
                value: json!("{\"web\":\"nginx:1.27\"}"),
            },
        ]
    }

    fn patch() -> json_patch::Patch {
        serde_json::from_value(json!([
            {"op": "test", "path": "/spec/template/spec/containers/0/image", "value": "nginx:1.27"},
            {"op": "replace", "path": "/spec/template/spec/containers/0/image",
             "value": "backup.example/docker.io_library_nginx:1.27@sha256:".to_owned() + &"a".repeat(64)},
            {"op": "add", "path": "/metadata/annotations/image-cloner~1original-images",
             "value": "{\"web\":\"nginx:1.27\"}"}
        ]))
        .unwrap()
    }

    /// What the API server reads: the answer parsed back.
    fn parsed(bytes: &[u8]) -> Value {
        serde_json::from_slice(bytes).expect("the answer is JSON")
    }

    /// The bytes of a parsed answer's patch, decoded from its base64.
    fn patch_in(answer: &Value) -> Vec<u8> {
        let text = answer["response"]["patch"].as_str();
        STANDARD
            .decode(text.expect("the patch is a string"))
            .expect("the patch is base64")
    }

    #[test]
    fn the_patch_is_the_base64_of_its_json_inside_the_response() {
        let response = AdmissionResponse::from(&request())
            .with_patch(patch())
            .unwrap();
        let answer = parsed(&encode(response).unwrap());
        assert_eq!(answer["apiVersion"], "admission.k8s.io/v1");
        assert_eq!(answer["kind"], "AdmissionReview");
        let r = &answer["response"];
        assert_eq!(r["uid"], "705ab4f5-6393-11e8-b7cc-42010a800002");
        assert_eq!(r["allowed"], true);
        assert_eq!(r["patchType"], "JSONPatch");
        let back: json_patch::Patch = serde_json::from_slice(&patch_in(&answer)).unwrap();
        assert_eq!(back, patch());
    }

    /// The same answer as kube's serialization with the patch swapped in as a string (the way
    /// this was written before): every other field, warnings and audit annotations included.
    #[test]
    fn the_answer_is_kubes_with_the_patch_as_a_string() {
        let mut response = AdmissionResponse::from(&request())
            .with_patch(patch())
            .unwrap();
        response.warnings = Some(vec!["image \"nginx:1.27\" not copied yet".to_owned()]);
        response
            .audit_annotations
            .insert("image-cloner/why".to_owned(), "pinned".to_owned());
        let mut expected = response.clone();
        let patch = expected.patch.take().unwrap();
        let mut expected = serde_json::to_value(expected.into_review()).unwrap();
        expected["response"]["patch"] = Value::String(STANDARD.encode(patch));
        assert_eq!(parsed(&encode(response).unwrap()), expected);
    }

    /// The operations as the API server reads them: a JSON Patch, typed `JSONPatch`, the same
    /// as kube's own `with_patch` of the same operations would answer.
    #[test]
    fn the_operations_are_the_answers_json_patch() {
        let response = patched(AdmissionResponse::from(&request()), &ops()).unwrap();
        let answer = parsed(&encode(response).unwrap());
        assert_eq!(answer["response"]["patchType"], "JSONPatch");
        let back: json_patch::Patch = serde_json::from_slice(&patch_in(&answer)).unwrap();
        assert_eq!(back, patch());
        let kubes = AdmissionResponse::from(&request())
            .with_patch(patch())
            .unwrap();
        assert_eq!(answer, parsed(&encode(kubes).unwrap()));
    }

    #[test]
    fn an_answer_without_a_patch_is_kubes_as_it_is() {
        let denied = AdmissionResponse::from(&request()).deny("not in the backup registry");
        let bytes = encode(denied.clone()).unwrap();
        assert_eq!(bytes, serde_json::to_vec(&denied.into_review()).unwrap());
        assert!(parsed(&bytes)["response"].get("patch").is_none());
    }

    #[test]
    fn an_empty_patch_is_an_empty_list() {
        let response = AdmissionResponse::from(&request())
            .with_patch(json_patch::Patch(Vec::new()))
            .unwrap();
        let answer = parsed(&encode(response).unwrap());
        assert_eq!(patch_in(&answer), b"[]");
    }
}
