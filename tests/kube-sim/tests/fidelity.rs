//! Differential tests: the same requests against the simulator and the real kube-apiserver
//! of `../shared/envtest`, comparing what a client sees — status codes, reasons and causes,
//! the stored object (minus server noise and defaulted fields), generation and
//! resourceVersion movement, and the sequence of watch events. On the simulator alone (no
//! `KUBEBUILDER_ASSETS`) the scenario still runs and its expected values are asserted.

#![allow(clippy::unwrap_used)]

mod common;
mod protobuf;

use common::{Cluster, project, raw, raw_bytes, status_essence, without_noise};
use serde_json::{Value, json};

const NS: &str = "fidelity";
const DEPLOYMENTS: &str = "/apis/apps/v1/namespaces/fidelity/deployments";

fn pod_spec(images: &[(&str, &str)]) -> Value {
    let containers: Vec<Value> = images
        .iter()
        .map(|(n, i)| json!({"name": n, "image": i, "env": [{"name": "A", "value": "1"}]}))
        .collect();
    json!({"initContainers": [{"name": "init", "image": "busybox:1.36"}], "containers": containers})
}

fn deployment(name: &str, tier: &str) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "labels": {"tier": tier}},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                "spec": pod_spec(&[("app", "nginx:1.25"), ("side", "redis:7")])}}})
}

/// One request of the scenario.
enum Step {
    Req(
        &'static str,
        &'static str,
        String,
        &'static str,
        Option<Value>,
    ),
    /// GET, change, PUT back with the resourceVersion read, or a stale one when `stale`.
    Put(&'static str, String, fn(&mut Value), bool),
    /// A request with a body that is not JSON (protobuf): label, method, path, content type.
    Bytes(&'static str, &'static str, String, &'static str, Vec<u8>),
}

const JSON: &str = "application/json";
const MERGE: &str = "application/merge-patch+json";
const JSONPATCH: &str = "application/json-patch+json";
const STRATEGIC: &str = "application/strategic-merge-patch+json";
const APPLY: &str = "application/apply-patch+yaml";

fn scenario() -> Vec<Step> {
    use Step::*;
    let web = format!("{DEPLOYMENTS}/web");
    let mut steps = vec![
        Req(
            "create the namespace",
            "POST",
            "/api/v1/namespaces".into(),
            JSON,
            Some(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})),
        ),
        Req(
            "create in a missing namespace",
            "POST",
            "/apis/apps/v1/namespaces/nowhere/deployments".into(),
            JSON,
            Some(deployment("web", "front")),
        ),
        Req(
            "create a deployment",
            "POST",
            DEPLOYMENTS.into(),
            JSON,
            Some(deployment("web", "front")),
        ),
        Req(
            "create it again",
            "POST",
            DEPLOYMENTS.into(),
            JSON,
            Some(deployment("web", "front")),
        ),
        Req(
            "create one without images",
            "POST",
            DEPLOYMENTS.into(),
            JSON,
            Some({
                let mut d = deployment("bad", "x");
                d["spec"]["template"]["spec"]["containers"][0]
                    .as_object_mut()
                    .unwrap()
                    .remove("image");
                d
            }),
        ),
        Req("get it", "GET", web.clone(), JSON, None),
        Req(
            "get a missing one",
            "GET",
            format!("{DEPLOYMENTS}/missing"),
            JSON,
            None,
        ),
        Req(
            "label it (merge patch)",
            "PATCH",
            web.clone(),
            MERGE,
            Some(json!({"metadata": {"labels": {"x": "y"}}})),
        ),
        Req(
            "annotate it (merge patch)",
            "PATCH",
            web.clone(),
            MERGE,
            Some(json!({"metadata": {"annotations": {"a": "b"}}})),
        ),
        Req(
            "JSON patch with a passing test",
            "PATCH",
            web.clone(),
            JSONPATCH,
            Some(json!([
            {"op": "test", "path": "/spec/template/spec/containers/0/image", "value": "nginx:1.25"},
            {"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": "nginx:1.26"}])),
        ),
        Req(
            "JSON patch with a failing test",
            "PATCH",
            web.clone(),
            JSONPATCH,
            Some(json!([
            {"op": "test", "path": "/spec/template/spec/containers/0/image", "value": "nginx:1.25"},
            {"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": "nginx:9"}])),
        ),
        Req(
            "JSON patch of a missing path",
            "PATCH",
            web.clone(),
            JSONPATCH,
            Some(json!([
            {"op": "remove", "path": "/spec/nothing"}])),
        ),
        Req(
            "strategic patch of one container's image",
            "PATCH",
            web.clone(),
            STRATEGIC,
            Some(
                json!({"spec": {"template": {"spec": {"containers": [{"name": "side", "image": "redis:7.2"}]}}}}),
            ),
        ),
        Req(
            "strategic patch adding an env var",
            "PATCH",
            web.clone(),
            STRATEGIC,
            Some(
                json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "env": [{"name": "B", "value": "2"}]}]}}}}),
            ),
        ),
        Req(
            "strategic patch deleting a container",
            "PATCH",
            web.clone(),
            STRATEGIC,
            Some(
                json!({"spec": {"template": {"spec": {"containers": [{"name": "side", "$patch": "delete"}]}}}}),
            ),
        ),
        Req(
            "a patch that changes nothing",
            "PATCH",
            web.clone(),
            MERGE,
            Some(json!({"spec": {"replicas": 1}})),
        ),
        Req(
            "a resourceVersion precondition in a merge patch",
            "PATCH",
            web.clone(),
            MERGE,
            Some(json!({"metadata": {"resourceVersion": "1"}, "spec": {"replicas": 5}})),
        ),
        Put(
            "update with the current resourceVersion",
            web.clone(),
            |d| d["spec"]["replicas"] = json!(2),
            false,
        ),
        Put(
            "update with a stale resourceVersion",
            web.clone(),
            |d| d["spec"]["replicas"] = json!(3),
            true,
        ),
        Req(
            "change the selector",
            "PATCH",
            web.clone(),
            MERGE,
            Some(json!({"spec": {"selector": {"matchLabels": {"app": "other"}}}})),
        ),
        Req(
            "create b",
            "POST",
            DEPLOYMENTS.into(),
            JSON,
            Some(deployment("b", "back")),
        ),
        Req(
            "create c",
            "POST",
            DEPLOYMENTS.into(),
            JSON,
            Some(deployment("c", "front")),
        ),
        Req(
            "list page 1",
            "GET",
            format!("{DEPLOYMENTS}?limit=2"),
            JSON,
            None,
        ),
        Req(
            "list by set-based selector",
            "GET",
            format!("{DEPLOYMENTS}?labelSelector=tier%20in%20(front),x"),
            JSON,
            None,
        ),
        Req(
            "list by field selector",
            "GET",
            format!("{DEPLOYMENTS}?fieldSelector=metadata.name%3Dc"),
            JSON,
            None,
        ),
        Req(
            "list by an unknown field",
            "GET",
            format!("{DEPLOYMENTS}?fieldSelector=spec.replicas%3D1"),
            JSON,
            None,
        ),
        Req(
            "server-side apply creates",
            "PATCH",
            format!("/api/v1/namespaces/{NS}/configmaps/cfg?fieldManager=fidelity"),
            APPLY,
            Some(
                json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"}, "data": {"a": "1"}}),
            ),
        ),
        Req(
            "server-side apply merges",
            "PATCH",
            format!("/api/v1/namespaces/{NS}/configmaps/cfg?fieldManager=fidelity"),
            APPLY,
            Some(
                json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"}, "data": {"a": "2", "b": "3"}}),
            ),
        ),
        Req(
            "server-side apply without a name: the URL's",
            "PATCH",
            format!("/api/v1/namespaces/{NS}/configmaps/cfg?fieldManager=fidelity"),
            APPLY,
            Some(json!({"apiVersion": "v1", "kind": "ConfigMap", "data": {"a": "4", "b": "3"}})),
        ),
        Req(
            "a Job with restartPolicy Always",
            "POST",
            format!("/apis/batch/v1/namespaces/{NS}/jobs"),
            JSON,
            Some(
                json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "bad"},
                "spec": {"template": {"spec": {"containers": [{"name": "a", "image": "busybox:1.36"}]}}}}),
            ),
        ),
        Req(
            "create a Job",
            "POST",
            format!("/apis/batch/v1/namespaces/{NS}/jobs"),
            JSON,
            Some(
                json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "once"},
                "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "a", "image": "busybox:1.36"}]}}}}),
            ),
        ),
        Req(
            "patch the Job's pod template",
            "PATCH",
            format!("/apis/batch/v1/namespaces/{NS}/jobs/once"),
            MERGE,
            Some(
                json!({"spec": {"template": {"spec": {"containers": [{"name": "a", "image": "busybox:1.37"}]}}}}),
            ),
        ),
        Req(
            "label the Job",
            "PATCH",
            format!("/apis/batch/v1/namespaces/{NS}/jobs/once"),
            MERGE,
            Some(json!({"metadata": {"labels": {"l": "v"}}})),
        ),
        Req(
            "create a Pod",
            "POST",
            format!("/api/v1/namespaces/{NS}/pods"),
            JSON,
            Some(
                json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
                "spec": {"containers": [{"name": "a", "image": "busybox:1.36"}]}}),
            ),
        ),
        Req(
            "patch the Pod's image",
            "PATCH",
            format!("/api/v1/namespaces/{NS}/pods/p"),
            STRATEGIC,
            Some(json!({"spec": {"containers": [{"name": "a", "image": "busybox:1.37"}]}})),
        ),
        Req(
            "patch another Pod field",
            "PATCH",
            format!("/api/v1/namespaces/{NS}/pods/p"),
            MERGE,
            Some(json!({"spec": {"hostname": "h"}})),
        ),
        Req(
            "create a StatefulSet",
            "POST",
            format!("/apis/apps/v1/namespaces/{NS}/statefulsets"),
            JSON,
            Some(
                json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "s"},
                "spec": {"serviceName": "s", "selector": {"matchLabels": {"app": "s"}},
                    "template": {"metadata": {"labels": {"app": "s"}}, "spec": pod_spec(&[("app", "redis:7")])}}}),
            ),
        ),
        Req(
            "annotate the StatefulSet",
            "PATCH",
            format!("/apis/apps/v1/namespaces/{NS}/statefulsets/s"),
            MERGE,
            Some(json!({"metadata": {"annotations": {"a": "b"}}})),
        ),
        Req(
            "change a forbidden StatefulSet field",
            "PATCH",
            format!("/apis/apps/v1/namespaces/{NS}/statefulsets/s"),
            MERGE,
            Some(json!({"spec": {"serviceName": "other"}})),
        ),
        Req(
            "an Event through events.k8s.io/v1",
            "POST",
            format!("/apis/events.k8s.io/v1/namespaces/{NS}/events"),
            JSON,
            Some(
                json!({"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "e1"},
                "eventTime": "2026-01-01T00:00:00.000000Z", "reportingController": "fidelity", "reportingInstance": "fidelity-1",
                "action": "Clone", "reason": "Cloned", "type": "Normal", "note": "copied",
                "regarding": {"apiVersion": "apps/v1", "kind": "Deployment", "namespace": NS, "name": "web"}}),
            ),
        ),
        Req(
            "the same Event through core/v1",
            "GET",
            format!("/api/v1/namespaces/{NS}/events/e1"),
            JSON,
            None,
        ),
        Req(
            "delete a deployment",
            "DELETE",
            format!("{DEPLOYMENTS}/c"),
            JSON,
            None,
        ),
        Req(
            "delete it again",
            "DELETE",
            format!("{DEPLOYMENTS}/c"),
            JSON,
            None,
        ),
        Req(
            "delete the Pod",
            "DELETE",
            format!("/api/v1/namespaces/{NS}/pods/p"),
            JSON,
            None,
        ),
        Req(
            "no token needed for healthz? (version)",
            "GET",
            "/version".into(),
            JSON,
            None,
        ),
    ];
    steps.extend(protobuf::steps());
    steps
}

/// What a client sees of one answer.
#[derive(Debug)]
struct Seen {
    label: &'static str,
    code: u16,
    body: Value,
    rv: Option<u64>,
}

async fn run(cluster: &Cluster) -> (Vec<Seen>, Vec<(String, String, Value)>) {
    let client = cluster.client().await;
    let mut seen = Vec::new();
    let mut start_rv = None;
    for step in scenario() {
        let (label, code, body) = match step {
            Step::Req(label, method, path, ct, body) => {
                let (code, body) = raw(&client, method, &path, ct, body).await;
                (label, code, body)
            }
            Step::Bytes(label, method, path, ct, body) => {
                let (code, body) = raw_bytes(&client, method, &path, ct, JSON, body).await;
                (label, code, body)
            }
            Step::Put(label, path, change, stale) => {
                let (_, mut obj) = raw(&client, "GET", &path, JSON, None).await;
                change(&mut obj);
                if stale {
                    obj["metadata"]["resourceVersion"] = json!("1");
                }
                let (code, body) = raw(&client, "PUT", &path, JSON, Some(obj)).await;
                (label, code, body)
            }
        };
        let rv = body["metadata"]["resourceVersion"]
            .as_str()
            .and_then(|s| s.parse().ok());
        if label == "create the namespace" {
            start_rv = rv;
        }
        seen.push(Seen {
            label,
            code,
            body,
            rv,
        });
    }
    // Every change to the namespace's deployments since it was created, in order.
    let path = format!(
        "{DEPLOYMENTS}?watch=true&resourceVersion={}&timeoutSeconds=2",
        start_rv.unwrap_or(0)
    );
    let req = http::Request::builder()
        .uri(path)
        .body(kube::client::Body::empty())
        .unwrap();
    let resp = client.send(req).await.expect("watch");
    let text = resp.into_body().collect_bytes().await.expect("watch body");
    let events = String::from_utf8_lossy(&text)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .map(|e| {
            (
                e["type"].as_str().unwrap_or_default().to_owned(),
                e["object"]["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                e["object"]["metadata"]["generation"].clone(),
            )
        })
        .collect();
    (seen, events)
}

/// What is compared for one answer.
fn essence(s: &Seen) -> Value {
    if s.body["kind"] == "Status" {
        return status_essence(&s.body);
    }
    let mut v = without_noise(&s.body);
    // Lists: the names, and whether there is more.
    if let Some(items) = v["items"].as_array() {
        let names: Vec<Value> = items
            .iter()
            .map(|i| i["metadata"]["name"].clone())
            .collect();
        return json!({"kind": v["kind"], "names": names,
            "more": v["metadata"]["continue"].as_str().is_some_and(|c| !c.is_empty()),
            "remaining": v["metadata"]["remainingItemCount"]});
    }
    if s.label.starts_with("no token") {
        return json!({"major": v["major"]});
    }
    // Differences between 1.20 and current Kubernetes (README): the namespace name label
    // (1.21), and the Event fields the core/v1 view fills with empty values.
    let meta = v["metadata"].as_object_mut().unwrap();
    if let Some(labels) = meta.get_mut("labels").and_then(Value::as_object_mut) {
        labels.remove("kubernetes.io/metadata.name");
        labels.retain(|k, _| !k.starts_with("batch.kubernetes.io/"));
        for k in ["controller-uid"] {
            if labels.contains_key(k) {
                labels.insert(k.into(), json!("<uid>"));
            }
        }
        if labels.is_empty() {
            meta.remove("labels");
        }
    }
    // Access reviews: the simulator allows everything and says so in status.reason (README);
    // envtest's token is in system:masters, allowed without a reason.
    if v["kind"]
        .as_str()
        .is_some_and(|k| k.ends_with("AccessReview"))
    {
        v["status"].as_object_mut().unwrap().remove("reason");
    }
    // Jobs have had a generation since 1.21.
    if v["kind"] == "Job" {
        v["metadata"].as_object_mut().unwrap().remove("generation");
        let template = &mut v["spec"]["template"]["metadata"]["labels"];
        if let Some(labels) = template.as_object_mut() {
            labels.retain(|k, _| !k.starts_with("batch.kubernetes.io/"));
            labels.insert("controller-uid".into(), json!("<uid>"));
        }
        v["spec"]["selector"] = json!("<generated>");
    }
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_simulator_answers_as_the_real_api_server() {
    let sim = Cluster::sim();
    let (seen, events) = run(&sim).await;
    let code = |label: &str| seen.iter().find(|s| s.label == label).unwrap().code;
    let body = |label: &str| &seen.iter().find(|s| s.label == label).unwrap().body;
    // What the real server is known to answer (checked against kube-apiserver 1.20 below).
    assert_eq!(code("create a deployment"), 201);
    assert_eq!(code("create in a missing namespace"), 404);
    assert_eq!(body("create it again")["reason"], "AlreadyExists");
    assert_eq!(body("JSON patch with a failing test")["code"], 422);
    assert_eq!(
        body("update with a stale resourceVersion")["reason"],
        "Conflict"
    );
    assert_eq!(
        body("patch the Job's pod template")["details"]["causes"][0]["field"],
        "spec.template"
    );
    assert_eq!(body("patch another Pod field")["reason"], "Invalid");
    assert_eq!(code("create a Secret (protobuf)"), 201);
    assert_eq!(
        body("get the Secret")["data"],
        json!({"user": "YWRtaW4=", "token": "czNjcjN0"}),
        "stringData is written into data"
    );
    assert_eq!(body("get the Secret")["type"], "Opaque");
    assert_eq!(
        body("create it again (protobuf)")["reason"],
        "AlreadyExists"
    );
    assert_eq!(code("a protobuf body without the envelope"), 400);
    let can_i = body("kubectl auth can-i create pods (protobuf)");
    assert_eq!(can_i["status"]["allowed"], true);
    assert_eq!(can_i["spec"]["resourceAttributes"]["resource"], "pods");
    assert_eq!(code("list access reviews"), 405);
    let gens: Vec<i64> = seen
        .iter()
        .filter(|s| s.body["kind"] == "Deployment" && s.body["metadata"]["name"] == "web")
        .map(|s| s.body["metadata"]["generation"].as_i64().unwrap())
        .collect();
    assert!(
        gens.windows(2).all(|w| w[0] <= w[1]),
        "generation never goes back: {gens:?}"
    );
    assert!(!events.is_empty());

    let Some(real) = Cluster::envtest() else {
        return;
    };
    let (real_seen, real_events) = run(&real).await;
    let mut differences = Vec::new();
    let mut last_rv: std::collections::HashMap<String, (Option<u64>, Option<u64>)> =
        Default::default();
    for (s, r) in seen.iter().zip(&real_seen) {
        assert_eq!(s.label, r.label);
        if s.code != r.code {
            differences.push(format!(
                "{}: code {} (sim) vs {} (real): {}",
                s.label, s.code, r.code, r.body
            ));
            continue;
        }
        let (se, re) = (essence(s), essence(r));
        let re = if s.body["kind"] == "Status" || se.get("names").is_some() {
            re
        } else {
            project(&re, &se)
        };
        if se != re {
            differences.push(format!("{}:\n  sim:  {se}\n  real: {re}", s.label));
        }
        // resourceVersion movement: a write that changes nothing keeps it, others move it.
        let key = format!("{}/{}", s.body["kind"], s.body["metadata"]["name"]);
        if s.body["metadata"]["name"].is_string() && s.body["kind"] != "Status" {
            if let Some((ps, pr)) = last_rv.get(&key) {
                let (moved_s, moved_r) = (ps != &s.rv, pr != &r.rv);
                if moved_s != moved_r {
                    differences.push(format!(
                        "{}: resourceVersion moved on sim: {moved_s}, on real: {moved_r}",
                        s.label
                    ));
                }
            }
            last_rv.insert(key, (s.rv, r.rv));
        }
    }
    if events != real_events {
        differences.push(format!(
            "watch events:\n  sim:  {events:?}\n  real: {real_events:?}"
        ));
    }
    assert!(
        differences.is_empty(),
        "the simulator differs from kube-apiserver 1.20:\n{}",
        differences.join("\n")
    );
}

/// The columns of `kubectl get` (server-side printing), priority 0, per resource.
async fn table_columns(cluster: &Cluster) -> Vec<(String, Vec<String>)> {
    let client = cluster.client().await;
    let mut out = Vec::new();
    for path in [
        "/api/v1/namespaces",
        "/api/v1/pods",
        "/api/v1/configmaps",
        "/api/v1/secrets",
        "/api/v1/serviceaccounts",
        "/api/v1/services",
        "/api/v1/events",
        "/apis/apps/v1/deployments",
        "/apis/apps/v1/statefulsets",
        "/apis/apps/v1/daemonsets",
        "/apis/apps/v1/replicasets",
        "/apis/coordination.k8s.io/v1/leases",
        "/apis/rbac.authorization.k8s.io/v1/clusterroles",
        "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
    ] {
        let req = http::Request::builder()
            .uri(path)
            .header(
                "accept",
                "application/json;as=Table;v=v1;g=meta.k8s.io,application/json",
            )
            .body(kube::client::Body::empty())
            .unwrap();
        let resp = client.send(req).await.expect("list as a Table");
        let body: Value =
            serde_json::from_slice(&resp.into_body().collect_bytes().await.unwrap()).unwrap();
        assert_eq!(body["kind"], "Table", "[{}] {path}", cluster.name);
        let names = body["columnDefinitions"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["priority"] == 0)
            .map(|c| c["name"].as_str().unwrap().to_owned())
            .collect();
        out.push((path.to_owned(), names));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_get_prints_the_real_columns() {
    let sim = table_columns(&Cluster::sim()).await;
    assert_eq!(
        sim[7].1,
        ["Name", "Ready", "Up-to-date", "Available", "Age"]
    );
    let Some(real) = Cluster::envtest() else {
        return;
    };
    assert_eq!(sim, table_columns(&real).await);
}

/// What a client that asks for metadata-only answers (`Accept: application/json;
/// as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json`, as image-cloner's patches
/// and Events do) gets back from each write and a read: status code, kind, apiVersion, the
/// answer's top-level fields and the object's name and annotations.
async fn metadata_only_answers(cluster: &Cluster) -> Vec<(&'static str, u16, Value)> {
    const PARTIAL: &str =
        "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json";
    let client = cluster.client().await;
    let ns = "fidelity-partial";
    let deployments = format!("/apis/apps/v1/namespaces/{ns}/deployments");
    let web = format!("{deployments}/web");
    let namespace = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
    let (code, _) = raw(&client, "POST", "/api/v1/namespaces", JSON, Some(namespace)).await;
    assert_eq!(code, 201, "[{}] the namespace", cluster.name);
    let image = "/spec/template/spec/containers/0/image";
    let steps: Vec<(&str, &str, String, &str, &str, Value)> = vec![
        (
            "create",
            "POST",
            deployments.clone(),
            JSON,
            PARTIAL,
            deployment("web", "front"),
        ),
        (
            "JSON patch",
            "PATCH",
            web.clone(),
            JSONPATCH,
            PARTIAL,
            json!([{"op": "test", "path": image, "value": "nginx:1.25"},
                {"op": "replace", "path": image, "value": "nginx:1.26"},
                {"op": "add", "path": "/metadata/annotations", "value": {"cloned": "yes"}}]),
        ),
        (
            "JSON patch whose test fails",
            "PATCH",
            web.clone(),
            JSONPATCH,
            PARTIAL,
            json!([{"op": "test", "path": image, "value": "nginx:1.25"}]),
        ),
        (
            "merge patch, plain JSON first",
            "PATCH",
            web.clone(),
            MERGE,
            "application/json,application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1",
            json!({"metadata": {"labels": {"tier": "back"}}}),
        ),
        (
            "create an Event",
            "POST",
            format!("/apis/events.k8s.io/v1/namespaces/{ns}/events"),
            JSON,
            PARTIAL,
            json!({"apiVersion": "events.k8s.io/v1", "kind": "Event",
                "metadata": {"name": "web.1"}, "eventTime": "2026-12-01T10:00:00.000000Z",
                "reportingController": "image-cloner.io/image-cloner",
                "reportingInstance": "image-cloner", "action": "Patch", "reason": "Cloned",
                "type": "Normal", "note": "n",
                "regarding": {"apiVersion": "apps/v1", "kind": "Deployment",
                    "namespace": ns, "name": "web"}}),
        ),
    ];
    let mut out = Vec::new();
    for (label, method, path, content_type, accept, body) in steps {
        let bytes = serde_json::to_vec(&body).unwrap();
        let (code, answer) = raw_bytes(&client, method, &path, content_type, accept, bytes).await;
        out.push((label, code, answer_essence(&answer)));
    }
    let (code, answer) = raw_bytes(&client, "GET", &web, JSON, PARTIAL, Vec::new()).await;
    out.push(("get", code, answer_essence(&answer)));
    out
}

fn answer_essence(answer: &Value) -> Value {
    let mut fields: Vec<&String> = answer
        .as_object()
        .map(|m| m.keys().collect())
        .unwrap_or_default();
    fields.sort();
    json!({"kind": answer["kind"], "apiVersion": answer["apiVersion"], "fields": fields,
        "name": answer["metadata"]["name"], "annotations": answer["metadata"]["annotations"],
        "reason": answer["reason"]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_answer_with_metadata_alone_when_asked() {
    let sim = metadata_only_answers(&Cluster::sim()).await;
    let kinds: Vec<(&str, u16, &str)> = sim
        .iter()
        .map(|(l, c, a)| (*l, *c, a["kind"].as_str().unwrap_or_default()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("create", 201, "PartialObjectMetadata"),
            ("JSON patch", 200, "PartialObjectMetadata"),
            ("JSON patch whose test fails", 422, "Status"),
            ("merge patch, plain JSON first", 200, "Deployment"),
            ("create an Event", 201, "PartialObjectMetadata"),
            ("get", 200, "PartialObjectMetadata"),
        ]
    );
    assert_eq!(sim[1].2["annotations"], json!({"cloned": "yes"}), "{sim:?}");
    assert_eq!(
        sim[1].2["fields"],
        json!(["apiVersion", "kind", "metadata"])
    );
    let Some(real) = Cluster::envtest() else {
        return;
    };
    assert_eq!(sim, metadata_only_answers(&real).await);
}
