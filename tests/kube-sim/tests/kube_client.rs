//! kube-rs against the simulator (and the real API server when `KUBEBUILDER_ASSETS` is set):
//! paginated lists, every patch type, and kube-runtime's watcher receiving every change —
//! also across a dropped watch and a 410 Expired (simulator faults).

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{Cluster, clusters};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use kube_sim::FailRule;
use serde_json::json;

async fn namespace(client: &Client, name: &str) {
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();
}

fn cm(name: &str, value: &str) -> ConfigMap {
    serde_json::from_value(
        json!({"metadata": {"name": name, "labels": {"set": "a"}}, "data": {"v": value}}),
    )
    .unwrap()
}

async fn list_and_patch(c: &Cluster) {
    let client = c.client().await;
    namespace(&client, "kr").await;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "kr");
    for i in 0..7 {
        api.create(&PostParams::default(), &cm(&format!("c{i}"), "0"))
            .await
            .unwrap();
    }
    // Pagination: pages of 3 with continue tokens, every object once, in name order.
    let mut names = Vec::new();
    let mut params = ListParams::default().limit(3);
    let mut pages = 0;
    loop {
        let page = api.list(&params).await.unwrap();
        pages += 1;
        names.extend(page.items.iter().map(|i| i.metadata.name.clone().unwrap()));
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => params = params.continue_token(&token),
            None => break,
        }
    }
    assert_eq!(pages, 3, "[{}]", c.name);
    assert_eq!(
        names,
        (0..7).map(|i| format!("c{i}")).collect::<Vec<_>>(),
        "[{}]",
        c.name
    );

    // Each patch type.
    let pp = PatchParams::default();
    api.patch("c0", &pp, &Patch::Merge(json!({"data": {"v": "merge"}})))
        .await
        .unwrap();
    api.patch(
        "c1",
        &pp,
        &Patch::Strategic(json!({"data": {"v": "strategic"}})),
    )
    .await
    .unwrap();
    let jp: json_patch::Patch = serde_json::from_value(json!([
        {"op": "test", "path": "/data/v", "value": "0"},
        {"op": "replace", "path": "/data/v", "value": "json"}]))
    .unwrap();
    api.patch("c2", &pp, &Patch::Json::<()>(jp.clone()))
        .await
        .unwrap();
    // The same test op now fails: an ApiError 422, as the real server answers.
    let err = api
        .patch("c2", &pp, &Patch::Json::<()>(jp))
        .await
        .unwrap_err();
    match err {
        kube::Error::Api(s) => assert_eq!(s.code, 422, "[{}] {s:?}", c.name),
        other => panic!("[{}] expected an API error, got {other}", c.name),
    }
    let apply = PatchParams::apply("kube-client-test").force();
    api.patch(
        "c3",
        &apply,
        &Patch::Apply(json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "c3"}, "data": {"v": "apply"}})),
    )
    .await
    .unwrap();
    api.patch(
        "new",
        &apply,
        &Patch::Apply(json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "new"}, "data": {"v": "applied"}})),
    )
    .await
    .unwrap();
    let values: BTreeMap<String, String> = api
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|i| (i.metadata.name.unwrap(), i.data.unwrap()["v"].clone()))
        .collect();
    for (name, v) in [
        ("c0", "merge"),
        ("c1", "strategic"),
        ("c2", "json"),
        ("c3", "apply"),
        ("new", "applied"),
    ] {
        assert_eq!(values[name], v, "[{}] {name}", c.name);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_and_patches_as_the_real_server() {
    for c in clusters() {
        eprintln!("--- kube-rs against {}", c.name);
        list_and_patch(&c).await;
    }
}

/// What a watcher has seen: name → value, from Apply/Delete and (re)list events.
#[derive(Default)]
struct Seen {
    state: BTreeMap<String, String>,
    relist: BTreeMap<String, String>,
    inits: usize,
}

impl Seen {
    fn apply(&mut self, e: watcher::Event<ConfigMap>) {
        let kv = |o: &ConfigMap| {
            (
                o.metadata.name.clone().unwrap(),
                o.data
                    .as_ref()
                    .and_then(|d| d.get("v").cloned())
                    .unwrap_or_default(),
            )
        };
        match e {
            watcher::Event::Apply(o) => {
                let (k, v) = kv(&o);
                self.state.insert(k, v);
            }
            watcher::Event::Delete(o) => {
                self.state.remove(&kv(&o).0);
            }
            watcher::Event::Init => {
                self.inits += 1;
                self.relist.clear();
            }
            watcher::Event::InitApply(o) => {
                let (k, v) = kv(&o);
                self.relist.insert(k, v);
            }
            watcher::Event::InitDone => self.state = std::mem::take(&mut self.relist),
        }
    }
}

async fn watch_until(
    stream: &mut (
             impl futures::Stream<Item = Result<watcher::Event<ConfigMap>, watcher::Error>> + Unpin
         ),
    seen: &mut Seen,
    what: &str,
    done: impl Fn(&Seen) -> bool,
) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !done(seen) {
        match tokio::time::timeout_at(deadline, stream.next()).await {
            Ok(Some(Ok(e))) => seen.apply(e),
            // A watch error (the 410, an injected 503) is retried by the default backoff.
            Ok(Some(Err(_))) => {}
            Ok(None) => panic!("the watcher ended"),
            Err(_) => panic!("timed out waiting for {what}; seen {:?}", seen.state),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watcher_misses_nothing() {
    for c in clusters() {
        eprintln!("--- kube-runtime watcher against {}", c.name);
        let client = c.client().await;
        namespace(&client, "kw").await;
        let api: Api<ConfigMap> = Api::namespaced(client.clone(), "kw");
        let mut stream = watcher(api.clone(), watcher::Config::default().timeout(5))
            .default_backoff()
            .boxed();
        let mut seen = Seen::default();
        watch_until(&mut stream, &mut seen, "the initial list", |s| {
            s.inits == 1 && s.relist.is_empty()
        })
        .await;
        // Every change arrives: creations, updates, deletions.
        for i in 0..5 {
            api.create(&PostParams::default(), &cm(&format!("w{i}"), "1"))
                .await
                .unwrap();
        }
        api.patch(
            "w0",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"v": "2"}})),
        )
        .await
        .unwrap();
        api.delete("w4", &Default::default()).await.unwrap();
        let expected = |s: &Seen| {
            s.state.len() == 4
                && s.state.get("w0").is_some_and(|v| v == "2")
                && !s.state.contains_key("w4")
        };
        watch_until(&mut stream, &mut seen, "every change", expected).await;

        let Some(sim) = &c.sim else {
            continue;
        };
        // A dropped watch: the watcher re-watches from its resourceVersion; changes made
        // while no watch was open are replayed.
        let block_watches = || FailRule {
            verb: Some("watch".into()),
            resource: Some("configmaps".into()),
            count: 1_000_000,
            status: 503,
            retry_after: None,
        };
        sim.faults().fail_next(block_watches());
        sim.store().drop_watches();
        api.create(&PostParams::default(), &cm("dropped", "1"))
            .await
            .unwrap();
        sim.faults().clear();
        watch_until(
            &mut stream,
            &mut seen,
            "the change made while the watch was down",
            |s| s.state.contains_key("dropped"),
        )
        .await;
        let inits = seen.inits;

        // A 410: the history is compacted past the watcher's resourceVersion while its watch
        // is down; it must relist and still see everything.
        sim.faults().fail_next(block_watches());
        sim.store().drop_watches();
        api.create(&PostParams::default(), &cm("after-410", "1"))
            .await
            .unwrap();
        api.delete("w1", &Default::default()).await.unwrap();
        sim.store().expire();
        sim.faults().clear();
        watch_until(
            &mut stream,
            &mut seen,
            "the relist after 410 Expired",
            |s| s.inits > inits && s.state.contains_key("after-410") && !s.state.contains_key("w1"),
        )
        .await;
        assert!(
            sim.faults().count("list", "configmaps") >= 2,
            "the watcher relisted"
        );
        assert_eq!(seen.state.len(), 5, "{:?}", seen.state);
    }
}

/// kube-runtime's streaming-list mode (`sendInitialEvents=true`): the initial objects arrive on
/// the watch, ended by the `k8s.io/initial-events-end` bookmark, then changes follow. Kubernetes
/// 1.27+; the simulator only (envtest's 1.20 lacks it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watcher_can_stream_its_initial_list() {
    let c = Cluster::sim();
    let client = c.client().await;
    namespace(&client, "ks").await;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "ks");
    for i in 0..3 {
        api.create(&PostParams::default(), &cm(&format!("s{i}"), "1"))
            .await
            .unwrap();
    }
    let mut stream = watcher(api.clone(), watcher::Config::default().streaming_lists())
        .default_backoff()
        .boxed();
    let mut seen = Seen::default();
    watch_until(&mut stream, &mut seen, "the streamed initial list", |s| {
        s.inits == 1 && s.state.len() == 3
    })
    .await;
    api.create(&PostParams::default(), &cm("later", "1"))
        .await
        .unwrap();
    watch_until(&mut stream, &mut seen, "a change after it", |s| {
        s.state.contains_key("later")
    })
    .await;
    let sim = c.sim.as_ref().unwrap();
    assert_eq!(
        sim.faults().count("list", "configmaps"),
        0,
        "no list request: the initial objects came on the watch"
    );
}
