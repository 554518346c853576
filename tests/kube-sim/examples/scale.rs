//! How the simulator holds up with 10,000 Deployments: list time (whole and paged), watch
//! fan-out to many watchers, and memory. `cargo run --release -p kube-sim --example scale`.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{ListParams, Patch, PatchParams, WatchEvent, WatchParams};
use kube::{Api, Client};
use kube_sim::{Options, Sim};
use serde_json::json;

const N: usize = 10_000;
const WATCHERS: usize = 20;
const CHANGES: usize = 1_000;

fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kib: f64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap();
    kib / 1024.0
}

#[tokio::main]
async fn main() {
    let before = rss_mib();
    let sim = Sim::serve(Options::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kc = dir.path().join("kubeconfig");
    sim.write_kubeconfig(&kc).unwrap();
    let config = kube::Config::from_custom_kubeconfig(
        kube::config::Kubeconfig::read_from(&kc).unwrap(),
        &Default::default(),
    )
    .await
    .unwrap();
    let client = Client::try_from(config).unwrap();
    let r = |plural| kube_sim::store::resource(plural);
    for i in 0..20 {
        let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": format!("ns-{i}")}});
        sim.store().create(r("namespaces"), "", ns, false).unwrap();
    }
    let t = Instant::now();
    for i in 0..N {
        let d = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": format!("d-{i:05}"), "labels": {"app": "scale"},
                "annotations": {"owner": "team-a"}},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": format!("d-{i}")}},
                "template": {"metadata": {"labels": {"app": format!("d-{i}")}},
                    "spec": {"containers": [
                        {"name": "app", "image": format!("registry.example.com/team/app-{}:1.0", i % 50),
                         "ports": [{"containerPort": 8080}], "env": [{"name": "MODE", "value": "prod"}],
                         "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}}},
                        {"name": "proxy", "image": "registry.example.com/proxy:2.1"}]}}}});
        sim.store()
            .create(r("deployments"), &format!("ns-{}", i % 20), d, false)
            .unwrap();
    }
    println!(
        "stored {N} Deployments in {:.2?}; RSS +{:.1} MiB",
        t.elapsed(),
        rss_mib() - before
    );

    let api: Api<Deployment> = Api::all(client.clone());
    for round in 0..3 {
        let t = Instant::now();
        let all = api.list(&ListParams::default()).await.unwrap();
        let whole = t.elapsed();
        let t = Instant::now();
        let mut n = 0;
        let mut lp = ListParams::default().limit(500);
        loop {
            let page = api.list(&lp).await.unwrap();
            n += page.items.len();
            match page.metadata.continue_.filter(|c| !c.is_empty()) {
                Some(c) => lp = lp.continue_token(&c),
                None => break,
            }
        }
        println!(
            "list round {round}: {} items in one list {:.0?}; {n} items in pages of 500 {:.0?}",
            all.items.len(),
            whole,
            t.elapsed()
        );
    }

    // Fan-out: WATCHERS watches on all Deployments, CHANGES patches; time until every
    // watcher has every event.
    let rv = api
        .list(&ListParams::default().limit(1))
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let mut tasks = Vec::new();
    for _ in 0..WATCHERS {
        let api = api.clone();
        let rv = rv.clone();
        tasks.push(tokio::spawn(async move {
            let mut stream = api
                .watch(&WatchParams::default().timeout(290), &rv)
                .await
                .unwrap()
                .boxed();
            let mut seen = 0;
            while seen < CHANGES {
                if let Some(WatchEvent::Modified(_)) = stream.try_next().await.unwrap() {
                    seen += 1;
                }
            }
            Instant::now()
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let t = Instant::now();
    for i in 0..CHANGES {
        let ns = format!("ns-{}", i % 20);
        Api::<Deployment>::namespaced(client.clone(), &ns)
            .patch(
                &format!("d-{i:05}"),
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"replicas": 3}})),
            )
            .await
            .unwrap();
    }
    let writes = t.elapsed();
    let mut last = t;
    for task in tasks {
        last = last.max(task.await.unwrap());
    }
    println!(
        "{CHANGES} patches in {:.2?} ({:.0}/s) while {WATCHERS} watchers ran; every watcher had every event {:.2?} after the first patch",
        writes,
        CHANGES as f64 / writes.as_secs_f64(),
        last - t
    );
    println!(
        "RSS at the end: {:.1} MiB (process: simulator, client and {WATCHERS} watch streams)",
        rss_mib()
    );
}
