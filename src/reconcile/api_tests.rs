//! [`WorkloadApi`] against the simulator, writing as the commands build it (on the
//! [`Writer`]'s connections): a burst of patches and Events, as when the copy of an image
//! shared by many workloads is verified, keeps to [`MAX_CONCURRENT_CALLS`] requests at once,
//! pipelined on at most [`MAX_CONNECTIONS`] connections, so that the server never has more than
//! that many in hand, and every call lands with the configuration's token and agent.

use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use kube::Api;
use kube::runtime::events::{EventType, Reporter};
use kube_sim::store::resource_of;
use kube_sim::{LatencyRule, Options, Sim};
use serde_json::json;

use super::api::{MAX_CONCURRENT_CALLS, Unobserved, WorkloadApi};
use super::patch::Op;
use super::writer::{MAX_CONNECTIONS, Writer};
use crate::sim_client::{config, create};
use crate::workload::partial::Deployment;

pub(super) const NS: &str = "shop";
/// Far more calls than the bound.
const WORKLOADS: usize = 2 * MAX_CONCURRENT_CALLS;
/// The user agent the configuration carries, as `cluster::client::config` adds one.
const AGENT: &str = "image-cloner/test (api)";

pub(super) fn cluster() -> Sim {
    let sim = Sim::start(Options::default()).expect("the simulator starts");
    create(
        &sim,
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}),
    );
    for i in 0..WORKLOADS {
        create(&sim, app(NS, i));
    }
    sim
}

/// Deployment `app-{i}` in `namespace`, one container `app` on `nginx:1.27`.
pub(super) fn app(namespace: &str, i: usize) -> serde_json::Value {
    let name = format!("app-{i}");
    kube_sim::fixtures::workload(
        "Deployment",
        namespace,
        &name,
        &[("app", "nginx:1.27")],
        &[],
        json!({"labels": {"app": name}}),
    )
}

pub(super) fn reporter() -> Reporter {
    Reporter {
        controller: "image-cloner".into(),
        instance: None,
    }
}

/// The API calls of reconciles as the commands build them: reads through kube's client,
/// patches and Events on the [`Writer`]'s own connections.
pub(super) async fn api(sim: &Sim) -> WorkloadApi {
    let mut config = config(sim).await;
    config.headers.push((
        http::header::USER_AGENT,
        http::HeaderValue::from_static(AGENT),
    ));
    let client = kube::Client::try_from(config.clone()).expect("a client");
    let writer = Writer::for_config(&config).expect("a writer");
    WorkloadApi::new(client, reporter(), Arc::new(Unobserved)).writing_through(writer)
}

/// The Deployments of [`cluster`], listed through the kube client.
async fn listed(api: &WorkloadApi) -> Vec<Deployment> {
    Api::<Deployment>::namespaced(api.client().clone(), NS)
        .list(&Default::default())
        .await
        .expect("listed")
        .items
}

pub(super) fn pin_image() -> Vec<Op> {
    vec![Op::Replace {
        path: "/spec/template/spec/containers/0/image".into(),
        value: json!("backup.example.com/nginx:1.27"),
    }]
}

pub(super) fn stored_image(sim: &Sim, name: &str) -> serde_json::Value {
    let deployment =
        resource_of(&json!({"apiVersion": "apps/v1", "kind": "Deployment"})).expect("known");
    let stored = sim.store().get(deployment, NS, name).expect(name);
    stored["spec"]["template"]["spec"]["containers"][0]["image"].clone()
}

#[tokio::test]
async fn a_burst_of_patches_and_events_keeps_to_the_bound_on_a_few_connections() {
    let sim = cluster();
    let api = api(&sim).await;
    let workloads = listed(&api).await;
    assert_eq!(workloads.len(), WORKLOADS);
    // Slow answers, so that the calls would overlap if nothing held them back.
    sim.faults().set_latency(Duration::from_millis(50));
    sim.faults().reset_counters();
    let operations = pin_image();
    let calls = workloads.iter().map(|w| {
        let name = w.metadata.name.clone().expect("a name");
        let api = &api;
        let operations = &operations;
        async move {
            let patched = api.patch::<Deployment>(NS, &name, operations).await;
            api.event(w, EventType::Normal, "Cloned", "copied".into())
                .await;
            patched
        }
    });
    for result in join_all(calls).await {
        result.expect("patched");
    }
    // The same Event again: its series' count is patched.
    api.event(&workloads[0], EventType::Normal, "Cloned", "copied".into())
        .await;

    let seen = sim.faults().connections();
    // The server works on one request of a connection at a time.
    assert!(seen.peak_in_flight <= MAX_CONNECTIONS as u64, "{seen:?}");
    assert!(
        seen.accepted <= MAX_CONNECTIONS as u64,
        "{seen:?} for {} calls",
        2 * WORKLOADS + 1
    );
    assert_eq!(sim.faults().count("patch", "deployments"), WORKLOADS as u64);
    assert_eq!(sim.faults().count("create", "events"), WORKLOADS as u64);
    assert_eq!(sim.faults().count("patch", "events"), 1);
    assert_eq!(api.writes(), WORKLOADS as u64);
    // Nothing of an answer is read: each asked for the object's metadata alone.
    // The simulator checks the bearer token: a request without it would be answered 401.
    let answers = sim.faults().requests();
    assert_eq!(answers.len(), 2 * WORKLOADS + 1);
    for r in &answers {
        assert_eq!((r.code / 100, r.user_agent.as_str()), (2, AGENT), "{r:?}");
        assert!(r.metadata_only, "answered whole: {r:?}");
    }
    assert_eq!(stored_image(&sim, "app-7"), "backup.example.com/nginx:1.27");
}

/// The same burst on a writer with no connection yet: its connections are opened one after
/// another, each resuming the TLS session of the one before it (the server sends a ticket a
/// connection, ahead of that connection's first answer, and a ticket is used once). So the
/// server's certificate is sent, checked and signed for once, however many connections the
/// burst needs; opened side by side, every one of them was a full handshake.
#[tokio::test]
async fn a_burst_of_writes_resumes_one_tls_session_on_every_new_connection() {
    let sim = cluster();
    let api = api(&sim).await;
    let workloads = listed(&api).await;
    sim.faults().set_latency(Duration::from_millis(50));
    sim.faults().reset_counters();
    let events = workloads
        .iter()
        .map(|w| api.event(w, EventType::Normal, "Cloned", "copied".into()));
    join_all(events).await;

    assert_eq!(sim.faults().count("create", "events"), WORKLOADS as u64);
    let seen = sim.faults().connections();
    assert!(
        seen.accepted >= 2,
        "the burst needed a second connection: {seen:?}"
    );
    assert_eq!(seen.tls_handshakes, seen.accepted, "{seen:?}");
    assert_eq!(
        seen.tls_handshakes - seen.resumed_tls_handshakes,
        1,
        "full handshakes: {seen:?}"
    );
}

/// A new connection whose first answer is slow to come (a write an admission webhook holds)
/// keeps the others from opening connections for a moment only: the writes behind it are sent
/// and answered while it still waits.
#[tokio::test]
async fn a_slow_first_answer_holds_back_no_other_write() {
    let sim = cluster();
    let api = api(&sim).await;
    let workloads = listed(&api).await;
    sim.faults().reset_counters();
    sim.faults().add_latency(LatencyRule {
        verb: Some("patch".into()),
        resource: Some("deployments".into()),
        millis: 4_000,
    });
    let operations = pin_image();
    let patch = api.patch::<Deployment>(NS, "app-1", &operations);
    let mut patch = std::pin::pin!(patch);
    // The patch opens the first connection and waits for its answer.
    tokio::select! {
        answered = &mut patch => panic!("answered before its latency: {answered:?}"),
        () = async {
            while sim.faults().connections().accepted == 0 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        } => {}
    }
    let events = workloads[..4]
        .iter()
        .map(|w| api.event(w, EventType::Normal, "Cloned", "copied".into()));
    tokio::select! {
        answered = &mut patch => panic!("the Events waited for the patch: {answered:?}"),
        _ = join_all(events) => {}
    }
    assert_eq!(sim.faults().count("create", "events"), 4);
    patch.await.expect("patched");
}

#[tokio::test]
async fn a_patch_answers_the_version_it_wrote_only_when_asked_to() {
    let sim = cluster();
    let operations = pin_image();
    let deployment =
        resource_of(&json!({"apiVersion": "apps/v1", "kind": "Deployment"})).expect("known");
    let stored_version = |name: &str| {
        let stored = sim.store().get(deployment, NS, name).expect(name);
        stored["metadata"]["resourceVersion"]
            .as_str()
            .expect("a resourceVersion")
            .to_owned()
    };

    let unread = api(&sim).await;
    let answered = unread.patch::<Deployment>(NS, "app-1", &operations).await;
    assert_eq!(answered.expect("patched"), None);

    let reading = api(&sim).await.reading_versions();
    let written = reading.patch::<Deployment>(NS, "app-2", &operations).await;
    assert_eq!(written.expect("patched"), Some(stored_version("app-2")));
    // Still the metadata alone: the version is read from it.
    assert!(sim.faults().requests().iter().all(|r| r.metadata_only));
}

#[test]
fn the_written_version_is_the_answers_metadata_resource_version() {
    use super::api::written_version;
    let answer = json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {
            "name": "web",
            "resourceVersion": "4711",
            "managedFields": [{"manager": "image-cloner", "fieldsV1": {"f:spec": {}}}],
        },
    });
    assert_eq!(written_version(&answer.to_string()), Some("4711".into()));
    let without = json!({"metadata": {"name": "web"}});
    assert_eq!(written_version(&without.to_string()), None);
    let empty = json!({"metadata": {"resourceVersion": ""}});
    assert_eq!(written_version(&empty.to_string()), None);
    assert_eq!(written_version("not json"), None);
}
