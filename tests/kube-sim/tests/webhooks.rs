//! Admission webhooks: the same scenario against the simulator and the real kube-apiserver
//! 1.20 of envtest (when `KUBEBUILDER_ASSETS` is set), with a webhook server of the test's
//! own registered by `url:` and `caBundle`. Compared: what the webhooks were sent, the stored
//! objects after mutation, denials (code, reason, message, details), the warnings a client
//! receives (kube-rs and kubectl), failurePolicy with a stopped, slow, untrusted or broken webhook, and
//! the validation of configurations. On the simulator alone the expected values are asserted.

#![allow(clippy::unwrap_used)]

mod common;
mod webhook_kit;

use std::time::{Duration, Instant};

use common::{Cluster, project};
use serde_json::{Value, json};
use webhook_kit::WebhookServer;
use webhook_kit::fixtures::{
    MUTATING, configurations, deployment, invalid_configurations, workloads,
};
use webhook_kit::normalise::{as_1_20, real_normalised, request_essence};
use webhook_kit::requests::{Reply, reply_essence, send};

const DEPLOYMENTS: &str = "/apis/apps/v1/namespaces/hooks/deployments";
const JSON: &str = "application/json";

/// The scenario's state: a client, the live webhook, and what was observed, step by step.
struct Run {
    client: kube::Client,
    live: WebhookServer,
    out: Vec<(String, Value)>,
}

impl Run {
    /// The webhook requests since the last call.
    fn calls(&self) -> Value {
        let v: Vec<Value> = self.live.received().iter().map(request_essence).collect();
        self.live.clear();
        json!(v)
    }

    async fn step(
        &mut self,
        name: &str,
        method: &str,
        path: &str,
        ct: &str,
        body: Option<Value>,
    ) -> Reply {
        let r = send(&self.client, method, path, ct, body).await;
        let calls = self.calls();
        self.out.push((
            name.to_owned(),
            json!({"reply": reply_essence(&r), "calls": calls}),
        ));
        r
    }
}

/// The real server reads webhook configurations through an informer: they take effect a
/// moment after they are stored. Dry-run creates until every webhook answers.
async fn wait_until_effective(client: &kube::Client) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let dry = format!("{DEPLOYMENTS}?dryRun=All");
    loop {
        let probe = |labels: Value| Some(deployment("probe", labels, json!({})));
        let mutated = send(client, "POST", &dry, JSON, probe(json!({}))).await;
        let denied = send(client, "POST", &dry, JSON, probe(json!({"deny": "true"}))).await;
        let failed = send(
            client,
            "POST",
            &dry,
            JSON,
            probe(json!({"hook": "dead-fail"})),
        )
        .await;
        let chain = mutated.body["metadata"]["annotations"]["test/chain"]
            .as_str()
            .unwrap_or_default();
        if chain.contains("b2") && denied.code == 403 && failed.code == 500 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the webhooks did not take effect within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn scenario(c: &Cluster) -> Vec<(String, Value)> {
    let mut dead = WebhookServer::start().await;
    dead.stop();
    let mut run = Run {
        client: c.client().await,
        live: WebhookServer::start().await,
        out: Vec::new(),
    };
    for (name, labels) in [("hooks", json!({"webhooks": "on"})), ("quiet", json!({}))] {
        let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}});
        assert_eq!(
            send(&run.client, "POST", "/api/v1/namespaces", JSON, Some(ns))
                .await
                .code,
            201
        );
    }
    for (path, body) in configurations(&run.live, &dead) {
        let r = send(&run.client, "POST", path, JSON, Some(body)).await;
        run.out.push((
            format!("register {}", r.body["metadata"]["name"]),
            reply_essence(&r),
        ));
    }
    wait_until_effective(&run.client).await;
    run.live.clear();
    deployment_steps(&mut run).await;
    other_steps(
        &mut run,
        if c.is_sim() {
            "batch/v1"
        } else {
            "batch/v1beta1"
        },
    )
    .await;
    failure_steps(&mut run).await;
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        file.path(),
        serde_json::to_vec(&deployment("kubectl", json!({}), json!({}))).unwrap(),
    )
    .unwrap();
    let o = c.kubectl(&["create", "-n", "hooks", "-f", file.path().to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    let warnings: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("Warning:"))
        .collect();
    run.out.push(("kubectl create prints the warnings".into(),
        json!({"exit": o.status.code(), "stdout": String::from_utf8_lossy(&o.stdout), "warnings": warnings})));
    let o = c.kubectl(&[
        "get",
        "mutatingwebhookconfigurations,validatingwebhookconfigurations",
    ]);
    let table: Vec<String> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| l.split_whitespace().take(2).collect::<Vec<_>>().join(" "))
        .collect();
    run.out.push((
        "kubectl get the configurations: name and webhooks".into(),
        json!({"table": table}),
    ));
    // Server addresses and the CA differ from run to run.
    let text = serde_json::to_string(&run.out)
        .unwrap()
        .replace(&run.live.address.to_string(), "LIVE")
        .replace(&dead.address.to_string(), "DEAD")
        .replace(&run.live.ca_bundle(), "CA")
        .replace(&dead.ca_bundle(), "OTHER-CA");
    serde_json::from_str(&text).unwrap()
}

async fn deployment_steps(run: &mut Run) {
    let web = format!("{DEPLOYMENTS}/web");
    run.step(
        "create: three mutating webhooks in name order, then the validating one",
        "POST",
        DEPLOYMENTS,
        JSON,
        Some(deployment("web", json!({"tier": "front"}), json!({}))),
    )
    .await;
    run.step("the stored object", "GET", &web, JSON, None).await;
    run.step(
        "create where the namespaceSelector does not match",
        "POST",
        "/apis/apps/v1/namespaces/quiet/deployments",
        JSON,
        Some(deployment("web", json!({}), json!({}))),
    )
    .await;
    denial_steps(run).await;
    let mut obj = send(&run.client, "GET", &web, JSON, None).await.body;
    obj["spec"]["template"]["spec"]["containers"][0]["image"] = json!("busybox:1.36");
    run.step(
        "update (PUT): UPDATE with the old object, mutated",
        "PUT",
        &web,
        JSON,
        Some(obj),
    )
    .await;
    run.step(
        "merge patch adding deny=true: UPDATE, denied",
        "PATCH",
        &web,
        "application/merge-patch+json",
        Some(json!({"metadata": {"labels": {"deny": "true"}}})),
    )
    .await;
    run.step("strategic merge patch of an image: mutated", "PATCH", &web, "application/strategic-merge-patch+json",
        Some(json!({"spec": {"template": {"spec": {"containers": [{"name": "side", "image": "redis:8"}]}}}}))).await;
    run.step("json patch of an image: mutated", "PATCH", &web, "application/json-patch+json",
        Some(json!([{"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": "nginx:1.27"}]))).await;
    run.step(
        "the stored object after the updates",
        "GET",
        &web,
        JSON,
        None,
    )
    .await;
}

/// Denials, with each form of Status a webhook may answer.
async fn denial_steps(run: &mut Run) {
    let statuses = [
        ("deny: the webhook's 403 Forbidden", None),
        ("deny: no status", Some(json!(null))),
        ("deny: only a reason", Some(json!({"reason": "NotAllowed"}))),
        (
            "deny: code 200, Success",
            Some(json!({"code": 200, "status": "Success", "message": "looks fine"})),
        ),
        (
            "deny: 422 Invalid with causes",
            Some(
                json!({"code": 422, "reason": "Invalid", "message": "bad image",
            "details": {"causes": [{"field": "spec.template.spec.containers[0].image", "reason": "FieldValueInvalid", "message": "bad image"}]}}),
            ),
        ),
    ];
    for (i, (name, status)) in statuses.into_iter().enumerate() {
        let annotations = status.map_or(json!({}), |s| json!({"test/deny-status": s.to_string()}));
        run.step(
            name,
            "POST",
            DEPLOYMENTS,
            JSON,
            Some(deployment(
                &format!("denied{i}"),
                json!({"deny": "true"}),
                annotations,
            )),
        )
        .await;
    }
}

async fn other_steps(run: &mut Run, cronjobs: &str) {
    run.step(
        "dry-run create: dryRun true, nothing stored",
        "POST",
        &format!("{DEPLOYMENTS}?dryRun=All"),
        JSON,
        Some(deployment("dry", json!({}), json!({}))),
    )
    .await;
    run.step(
        "... nothing stored",
        "GET",
        &format!("{DEPLOYMENTS}/dry"),
        JSON,
        None,
    )
    .await;
    let apply = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: applied}\nspec:\n  selector: {matchLabels: {app: a}}\n  \
        template:\n    metadata: {labels: {app: a}}\n    spec: {containers: [{name: app, image: \"nginx:1.25\"}]}\n";
    let path = format!("{DEPLOYMENTS}/applied?fieldManager=test");
    let req = http::Request::builder()
        .method("PATCH")
        .uri(&path)
        .header("content-type", "application/apply-patch+yaml")
        .body(apply.as_bytes().to_vec())
        .unwrap();
    let resp = run
        .client
        .send(req.map(kube::client::Body::from))
        .await
        .expect("send");
    let code = resp.status().as_u16();
    let calls = run.calls();
    run.out.push((
        "server-side apply of a new object: CREATE".into(),
        json!({"code": code, "calls": calls}),
    ));
    let mut status = send(
        &run.client,
        "GET",
        &format!("{DEPLOYMENTS}/web/status"),
        JSON,
        None,
    )
    .await
    .body;
    status["status"] = json!({"observedGeneration": 1});
    run.step(
        "status subresource: rules naming deployments leave deployments/status out",
        "PUT",
        &format!("{DEPLOYMENTS}/web/status"),
        JSON,
        Some(status),
    )
    .await;
    for (kind, path, body) in workloads(cronjobs) {
        run.step(&format!("create a {kind}"), "POST", &path, JSON, Some(body))
            .await;
    }
}

async fn failure_steps(run: &mut Run) {
    for (name, label) in [
        (
            "failurePolicy Ignore, webhook stopped: created unchanged",
            "dead-ignore",
        ),
        (
            "failurePolicy Fail (the default), webhook stopped",
            "dead-fail",
        ),
        (
            "failurePolicy Fail, an answer that is no AdmissionReview",
            "garbage",
        ),
        (
            "failurePolicy Fail, timeoutSeconds 1, a webhook that takes 3 s",
            "slow",
        ),
        ("failurePolicy Fail, a caBundle of another CA", "untrusted"),
    ] {
        run.step(
            name,
            "POST",
            DEPLOYMENTS,
            JSON,
            Some(deployment(label, json!({"hook": label}), json!({}))),
        )
        .await;
    }
    for (name, broken) in invalid_configurations(&run.live) {
        run.step(name, "POST", MUTATING, JSON, Some(broken)).await;
    }
}

fn step<'a>(obs: &'a [(String, Value)], prefix: &str) -> &'a Value {
    &obs.iter()
        .find(|(n, _)| n.starts_with(prefix))
        .unwrap_or_else(|| panic!("no step {prefix:?}"))
        .1
}

/// What a user checks on the simulator alone: mutation, order, denial, warnings.
fn check_sim(obs: &[(String, Value)]) {
    let created = step(obs, "create: three");
    assert_eq!(created["reply"]["code"], 201);
    let uris: Vec<&str> = created["calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["uri"].as_str().unwrap())
        .collect();
    assert_eq!(
        uris,
        [
            "/mutate/images?timeout=10s",
            "/mutate/chain/b1?timeout=10s",
            "/mutate/chain/b2?timeout=10s",
            "/validate?timeout=10s"
        ]
    );
    let stored = &step(obs, "the stored object")["reply"]["body"];
    let containers = &stored["spec"]["template"]["spec"]["containers"];
    assert_eq!(
        (&containers[0]["image"], &containers[1]["image"]),
        (
            &json!("backup.local/nginx:1.25"),
            &json!("backup.local/redis:7")
        )
    );
    assert_eq!(
        stored["metadata"]["annotations"]["test/chain"],
        "b1 saw backup.local/nginx:1.25; b2 saw backup.local/nginx:1.25"
    );
    assert_eq!(
        created["reply"]["warnings"],
        json!([
            "299 - \"image \\\"nginx:1.25\\\" is served from backup.local/nginx:1.25\"",
            "299 - \"image \\\"redis:7\\\" is served from backup.local/redis:7\"",
            "299 - \"validated Deployment CREATE\""
        ])
    );
    assert_eq!(
        step(obs, "create where the namespaceSelector")["calls"],
        json!([])
    );
    let denied = &step(obs, "deny: the webhook's 403")["reply"];
    assert_eq!(
        (&denied["code"], &denied["body"]["reason"]),
        (&json!(403), &json!("Forbidden"))
    );
    assert_eq!(
        denied["body"]["message"],
        "admission webhook \"deny.kube-sim.test\" denied the request: the label deny=true is set"
    );
    let put = step(obs, "update (PUT)");
    assert_eq!(put["calls"][0]["operation"], "UPDATE");
    assert_eq!(
        put["reply"]["body"]["spec"]["template"]["spec"]["containers"][0]["image"],
        "backup.local/busybox:1.36"
    );
    assert_eq!(step(obs, "merge patch adding deny")["reply"]["code"], 403);
}

/// What a user checks on the simulator alone: failures and kubectl.
fn check_sim_failures(obs: &[(String, Value)]) {
    let ignored = &step(obs, "failurePolicy Ignore")["reply"];
    assert_eq!(
        (
            &ignored["code"],
            &ignored["body"]["spec"]["template"]["spec"]["containers"][0]["image"]
        ),
        (&json!(201), &json!("nginx:1.25"))
    );
    let failed = &step(obs, "failurePolicy Fail (the default)")["reply"]["body"];
    assert_eq!(
        (&failed["code"], &failed["reason"]),
        (&json!(500), &json!("InternalError"))
    );
    assert_eq!(
        failed["message"],
        "Internal error occurred: failed calling webhook \"stopped.kube-sim.test\": \
        Post \"https://DEAD/mutate/images?timeout=10s\": dial tcp DEAD: connect: connection refused"
    );
    let untrusted = &step(obs, "failurePolicy Fail, a caBundle")["reply"]["body"]["message"];
    assert!(
        untrusted
            .as_str()
            .unwrap()
            .ends_with("x509: certificate signed by unknown authority"),
        "{untrusted}"
    );
    let table = &step(obs, "kubectl get the configurations")["table"];
    assert!(
        table.as_array().unwrap().contains(&json!(
            "mutatingwebhookconfiguration.admissionregistration.k8s.io/b-chain 2"
        )),
        "{table}"
    );
    let kubectl = step(obs, "kubectl create");
    assert_eq!(
        kubectl["warnings"][0],
        "Warning: image \"nginx:1.25\" is served from backup.local/nginx:1.25"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_are_called_as_by_the_real_server() {
    let sim = Cluster::sim();
    let sim_obs = scenario(&sim).await;
    check_sim(&sim_obs);
    check_sim_failures(&sim_obs);
    drop(sim);
    let Some(real) = Cluster::envtest() else {
        return;
    };
    let real_obs = scenario(&real).await;
    let names = |o: &[(String, Value)]| o.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
    assert_eq!(names(&sim_obs), names(&real_obs));
    let mut differences = Vec::new();
    for ((name, sim_v), (_, real_v)) in sim_obs.iter().zip(&real_obs) {
        let sim_v = as_1_20(name, sim_v);
        let real_v = project(&real_normalised(name, real_v), &sim_v);
        if real_v != sim_v {
            differences.push(format!("== {name}\nsim:  {sim_v}\nreal: {real_v}"));
        }
    }
    assert!(
        differences.is_empty(),
        "{} steps differ:\n{}",
        differences.len(),
        differences.join("\n")
    );
}
