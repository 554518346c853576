//! What the simulator and kube-apiserver 1.20 are compared on: the essentials of the
//! AdmissionReviews a webhook received, and the differences that are known and documented
//! (README: 1.20 against current Kubernetes).

use serde_json::{Value, json};

use super::Received;
use crate::common::without_noise;

/// What of an AdmissionReview request two servers must agree on.
pub fn request_essence(r: &Received) -> Value {
    let req = &r.review["request"];
    let mut keys: Vec<&String> = req
        .as_object()
        .map(|m| m.keys().collect())
        .unwrap_or_default();
    keys.sort();
    // The metadata fields set (a map, so that a projection checks the simulator's ⊆ the real's).
    let meta = req["object"]["metadata"].as_object();
    let meta_keys: serde_json::Map<String, Value> = meta
        .into_iter()
        .flatten()
        .filter(|(_, v)| !v.is_null())
        .map(|(k, _)| (k.clone(), json!(true)))
        .collect();
    json!({
        "uri": r.uri, "contentType": r.content_type, "apiVersion": r.review["apiVersion"], "reviewKind": r.review["kind"],
        "keys": keys, "kind": req["kind"], "resource": req["resource"], "subResource": req["subResource"],
        "requestKind": req["requestKind"], "requestResource": req["requestResource"],
        "requestSubResource": req["requestSubResource"], "name": req["name"], "namespace": req["namespace"],
        "operation": req["operation"], "userInfo": req["userInfo"], "dryRun": req["dryRun"], "options": req["options"],
        "oldObject": without_noise(&req["oldObject"]), "objectMetadataKeys": meta_keys, "object": without_noise(&req["object"]),
    })
}

/// The simulator follows current Kubernetes where 1.20 differs: the object the mutating
/// webhooks see on CREATE has `metadata.namespace` (later servers set it from the request
/// before admission); Jobs and CronJobs have a generation, Jobs the `batch.kubernetes.io/`
/// labels (README). Go's error texts for a broken answer and its details on a certificate
/// differ from ours: only their start is compared.
pub fn as_1_20(name: &str, v: &Value) -> Value {
    let mut v = v.clone();
    for c in v["calls"].as_array_mut().into_iter().flatten() {
        if c["operation"] == "CREATE" && c["objectMetadataKeys"].get("uid").is_none() {
            c["object"]["metadata"]
                .as_object_mut()
                .unwrap()
                .remove("namespace");
            c["objectMetadataKeys"]
                .as_object_mut()
                .unwrap()
                .remove("namespace");
        }
    }
    if name == "create a Job" || name == "create a CronJob" {
        if v["reply"]["body"]["kind"] != "Status" {
            job_as_1_20(&mut v["reply"]["body"]);
        }
        for c in v["calls"].as_array_mut().into_iter().flatten() {
            job_as_1_20(&mut c["object"]);
            c["objectMetadataKeys"]
                .as_object_mut()
                .unwrap()
                .remove("generation");
        }
    }
    let detail = if name.contains("no AdmissionReview") {
        Some("json parse error: ")
    } else if name.contains("another CA") {
        Some(" (possibly because")
    } else {
        None
    };
    if let Some(detail) = detail {
        let m = v["reply"]["body"]["message"].as_str().unwrap();
        let cut = m.split(detail).next().unwrap().to_owned();
        v["reply"]["body"]["message"] = json!(cut);
        v["reply"]["body"]["details"] = Value::Null;
    }
    v
}

fn job_as_1_20(o: &mut Value) {
    let Some(meta) = o["metadata"].as_object_mut() else {
        return;
    };
    meta.remove("generation");
    for ptr in ["/metadata/labels", "/spec/template/metadata/labels"] {
        if let Some(l) = o.pointer_mut(ptr).and_then(Value::as_object_mut) {
            l.retain(|k, _| !k.starts_with("batch.kubernetes.io/"));
            if l.contains_key("controller-uid") {
                l.insert("controller-uid".into(), json!("<uid>"));
            }
        }
    }
    // 1.20 copies the template's labels to the Job's while defaulting, before the selector's
    // labels are added to the template; the simulator after.
    if let Some(l) = o
        .pointer_mut("/metadata/labels")
        .and_then(Value::as_object_mut)
    {
        l.retain(|k, _| k != "controller-uid" && k != "job-name");
    }
    if o["spec"]["selector"].is_object() {
        o["spec"]["selector"] = json!("<generated>");
    }
}

/// kube-apiserver 1.20 runs admission twice for an update that fails (it retries once with
/// data read from etcd instead of its cache; later servers retry only when the cache was
/// stale); CronJobs are batch/v1beta1.
pub fn real_normalised(name: &str, v: &Value) -> Value {
    let mut v = as_1_20(name, v);
    if let Some(calls) = v["calls"].as_array_mut() {
        let half = calls.len() / 2;
        if half > 0 && calls.len() % 2 == 0 && calls[..half] == calls[half..] {
            calls.truncate(half);
        }
    }
    if name == "create a CronJob" {
        v = serde_json::from_str(&serde_json::to_string(&v).unwrap().replace("v1beta1", "v1"))
            .unwrap();
    }
    v
}
