//! The `kube-sim serve` command line as a script uses it (seed, kubeconfig file, 401 without
//! the token, clean exit) and the fault injection and counters over `/__sim/`.

#![allow(clippy::unwrap_used)]

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Cluster, raw};
use serde_json::json;

#[test]
fn serve_seeds_writes_a_kubeconfig_and_demands_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let seed = dir.path().join("seed");
    std::fs::create_dir(&seed).unwrap();
    std::fs::write(
        seed.join("shop.yaml"),
        "apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: app, image: 'nginx:1.27'}]}
---
apiVersion: v1
kind: Namespace
metadata: {name: shop}
",
    )
    .unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    let mut child = Command::new(env!("CARGO_BIN_EXE_kube-sim"))
        .args(["serve", "--listen", "127.0.0.1:0", "--seed"])
        .arg(&seed)
        .arg("--kubeconfig-out")
        .arg(&kubeconfig)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !kubeconfig.exists() {
        assert!(Instant::now() < deadline, "no kubeconfig written");
        std::thread::sleep(Duration::from_millis(50));
    }
    let kubectl = |args: &[&str]| {
        Command::new("kubectl")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", dir.path())
            .env("KUBECONFIG", &kubeconfig)
            .args(args)
            .output()
            .unwrap()
    };
    let got = kubectl(&["get", "deployments", "-n", "shop", "-o", "name"]);
    assert_eq!(
        String::from_utf8_lossy(&got.stdout).trim(),
        "deployment.apps/web"
    );
    let denied = kubectl(&["--token", "not-the-token", "get", "namespaces"]);
    assert!(!denied.status.success());
    assert!(
        String::from_utf8_lossy(&denied.stderr).contains("Unauthorized"),
        "{}",
        String::from_utf8_lossy(&denied.stderr)
    );
    // A bad seed names the file and the document.
    let bad = dir.path().join("bad");
    std::fs::create_dir(&bad).unwrap();
    std::fs::write(
        bad.join("x.yaml"),
        "apiVersion: v9\nkind: Gadget\nmetadata: {name: g}\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_kube-sim"))
        .args(["serve", "--seed"])
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("x.yaml: document 1") && err.contains("Gadget"),
        "{err}"
    );

    Command::new("kill")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(child.wait().unwrap().success(), "exits 0 on SIGTERM");
    assert!(!kubeconfig.exists(), "the kubeconfig goes with the server");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_and_counters_over_http() {
    let c = Cluster::sim();
    let client = c.client().await;
    let ns =
        |name: &str| json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
    raw(
        &client,
        "POST",
        "/api/v1/namespaces",
        "application/json",
        Some(ns("f")),
    )
    .await;
    let (code, _) = raw(
        &client,
        "POST",
        "/__sim/reset-counters",
        "application/json",
        None,
    )
    .await;
    assert_eq!(code, 200);

    // 429 with Retry-After, twice, on lists of configmaps only: kube's client retries 429s
    // itself (its RetryPolicy), so the caller sees the third answer; the log shows all three.
    let rule = json!({"verb": "list", "resource": "configmaps", "count": 2, "status": 429, "retry_after": 1});
    let (code, _) = raw(
        &client,
        "POST",
        "/__sim/fail",
        "application/json",
        Some(rule),
    )
    .await;
    assert_eq!(code, 200);
    let req = || {
        http::Request::builder()
            .uri("/api/v1/namespaces/f/configmaps")
            .body(kube::client::Body::empty())
            .unwrap()
    };
    assert_eq!(client.send(req()).await.unwrap().status().as_u16(), 200);
    // A 500 is not retried: the Status and the header as sent.
    let rule = json!({"verb": "list", "resource": "configmaps", "count": 1, "status": 500, "retry_after": 3});
    raw(
        &client,
        "POST",
        "/__sim/fail",
        "application/json",
        Some(rule),
    )
    .await;
    let failed = client.send(req()).await.unwrap();
    assert_eq!(failed.status().as_u16(), 500);
    assert_eq!(failed.headers()["retry-after"], "3");
    let body: serde_json::Value =
        serde_json::from_slice(&failed.into_body().collect_bytes().await.unwrap()).unwrap();
    assert_eq!(
        (body["kind"].as_str(), body["reason"].as_str()),
        (Some("Status"), Some("InternalError"))
    );
    assert_eq!(
        client.send(req()).await.unwrap().status().as_u16(),
        200,
        "used up"
    );
    let (code, _) = raw(
        &client,
        "GET",
        "/api/v1/namespaces/f/secrets",
        "application/json",
        None,
    )
    .await;
    assert_eq!(code, 200, "other resources were never affected");

    // Another client's write between a read and a write: the JSON patch's test op fails.
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"v": "1"}});
    raw(
        &client,
        "POST",
        "/api/v1/namespaces/f/configmaps",
        "application/json",
        Some(cm),
    )
    .await;
    let i = json!({"resource": "configmaps", "namespace": "f", "name": "c", "merge_patch": {"data": {"v": "edited"}}});
    raw(
        &client,
        "POST",
        "/__sim/interfere",
        "application/json",
        Some(i),
    )
    .await;
    let patch = json!([{"op": "test", "path": "/data/v", "value": "1"}, {"op": "replace", "path": "/data/v", "value": "2"}]);
    let (code, _) = raw(
        &client,
        "PATCH",
        "/api/v1/namespaces/f/configmaps/c",
        "application/json-patch+json",
        Some(patch),
    )
    .await;
    assert_eq!(code, 422);
    let (_, got) = raw(
        &client,
        "GET",
        "/api/v1/namespaces/f/configmaps/c",
        "application/json",
        None,
    )
    .await;
    assert_eq!(got["data"]["v"], "edited");

    // Latency applies to every request until cleared.
    raw(
        &client,
        "POST",
        "/__sim/latency",
        "application/json",
        Some(json!({"millis": 300})),
    )
    .await;
    let t = Instant::now();
    raw(
        &client,
        "GET",
        "/api/v1/namespaces/f",
        "application/json",
        None,
    )
    .await;
    assert!(t.elapsed() >= Duration::from_millis(300));
    raw(&client, "POST", "/__sim/clear", "application/json", None).await;

    // A latency rule slows down one kind of request only (here: namespace lists).
    let (code, _) = raw(
        &client,
        "POST",
        "/__sim/latency",
        "application/json",
        Some(json!({"verb": "list", "resource": "namespaces", "millis": 300})),
    )
    .await;
    assert_eq!(code, 200);
    let t = Instant::now();
    raw(
        &client,
        "GET",
        "/api/v1/namespaces",
        "application/json",
        None,
    )
    .await;
    assert!(t.elapsed() >= Duration::from_millis(300));
    raw(&client, "POST", "/__sim/clear", "application/json", None).await;

    for path in ["/__sim/drop-watches", "/__sim/expire"] {
        assert_eq!(
            raw(&client, "POST", path, "application/json", None).await.0,
            200,
            "{path}"
        );
    }
    let (code, counters) = raw(&client, "GET", "/__sim/counters", "application/json", None).await;
    assert_eq!(code, 200);
    assert_eq!(counters["requests"]["list configmaps"], 5);
    assert_eq!(counters["requests"]["patch configmaps"], 1);
    assert_eq!(counters["writes"], 2, "one create, one patch: {counters}");
    let (_, log) = raw(&client, "GET", "/__sim/requests", "application/json", None).await;
    let codes: Vec<u64> = log
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["resource"] == "configmaps" && r["verb"] == "list")
        .map(|r| r["code"].as_u64().unwrap())
        .collect();
    assert_eq!(codes, [429, 429, 200, 500, 200]);
    assert_eq!(
        raw(&client, "GET", "/__sim/nothing", "application/json", None)
            .await
            .0,
        404
    );
}

/// What a client's connection pool costs the server: sequential requests of one client share a
/// kept-alive connection; a second client opens its own; a connection that never completes
/// its TLS handshake is accepted but not counted as a handshake.
///
/// On one thread: the client's connection goes back to its pool in the connection's own task
/// after the response ends, and with a second worker thread the next request could race it and
/// open a new connection on a loaded host (2 accepted for 3 sequential requests, 3 runs in 40
/// with three busy loops beside). On one thread that task runs before the next connect
/// completes, as it does for a client that is not starved.
#[tokio::test(flavor = "current_thread")]
async fn connections_and_tls_handshakes_are_counted() {
    let c = Cluster::sim();
    let sim = c.sim.as_ref().unwrap();
    let client = c.client().await;
    sim.faults().reset_counters();
    for _ in 0..3 {
        raw(
            &client,
            "GET",
            "/api/v1/namespaces",
            "application/json",
            None,
        )
        .await;
    }
    let one = sim.faults().connections();
    assert_eq!(
        (one.accepted, one.tls_handshakes),
        (1, 1),
        "one client: {one:?}"
    );

    let other = c.client().await;
    raw(
        &other,
        "GET",
        "/api/v1/namespaces",
        "application/json",
        None,
    )
    .await;
    let plain = std::net::TcpStream::connect(sim.address()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while sim.faults().connections().accepted < 3 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(plain);
    let (code, counters) = raw(&client, "GET", "/__sim/counters", "application/json", None).await;
    assert_eq!(code, 200);
    assert_eq!(
        counters["connections"],
        json!({"accepted": 3, "tls_handshakes": 2, "resumed_tls_handshakes": 0, "peak_in_flight": 1}),
        "{counters}"
    );
}

/// Requests answered at the same time are counted at their peak: what bounds a client's
/// concurrency, and so its connections.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_peak_of_requests_in_flight_is_counted() {
    let c = Cluster::sim();
    let sim = c.sim.as_ref().unwrap();
    let client = c.client().await;
    sim.faults().set_latency(Duration::from_millis(300));
    sim.faults().reset_counters();
    let gets = (0..4).map(|_| {
        raw(
            &client,
            "GET",
            "/api/v1/namespaces",
            "application/json",
            None,
        )
    });
    futures::future::join_all(gets).await;
    assert_eq!(sim.faults().connections().peak_in_flight, 4);
    sim.faults().clear();
    sim.faults().reset_counters();
    assert_eq!(
        sim.faults().connections().peak_in_flight,
        0,
        "reset with the other counters"
    );
}
