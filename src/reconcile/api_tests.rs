//! [`WorkloadApi`] against the simulator: a burst of patches and Events, as when the copy of an
//! image shared by many workloads is verified, keeps to [`MAX_CONCURRENT_CALLS`] requests at
//! once and so to a few connections, and every call lands.

use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use kube::Api;
use kube::runtime::events::{EventType, Reporter};
use kube_sim::store::resource_of;
use kube_sim::{Options, Sim};
use serde_json::json;

use super::api::{MAX_CONCURRENT_CALLS, Unobserved, WorkloadApi};
use super::patch::Op;
use crate::sim_client::{client, create};
use crate::workload::partial::Deployment;

const NS: &str = "shop";
/// Far more calls than the bound.
const WORKLOADS: usize = 40;

fn cluster() -> Sim {
    let sim = Sim::start(Options::default()).expect("the simulator starts");
    create(
        &sim,
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}),
    );
    for i in 0..WORKLOADS {
        let name = format!("app-{i}");
        create(
            &sim,
            kube_sim::fixtures::workload(
                "Deployment",
                NS,
                &name,
                &[("app", "nginx:1.27")],
                &[],
                json!({"labels": {"app": name}}),
            ),
        );
    }
    sim
}

#[tokio::test]
async fn a_burst_of_patches_and_events_keeps_to_the_bound_on_a_few_connections() {
    let sim = cluster();
    let client = client(&sim).await;
    let workloads = Api::<Deployment>::namespaced(client.clone(), NS)
        .list(&Default::default())
        .await
        .expect("listed")
        .items;
    assert_eq!(workloads.len(), WORKLOADS);
    let reporter = Reporter {
        controller: "image-cloner".into(),
        instance: None,
    };
    let api = WorkloadApi::new(client, reporter, Arc::new(Unobserved));
    // Slow answers, so that the calls would overlap if nothing held them back.
    sim.faults().set_latency(Duration::from_millis(50));
    sim.faults().reset_counters();
    let operations = vec![Op::Replace {
        path: "/spec/template/spec/containers/0/image".into(),
        value: json!("backup.example.com/nginx:1.27"),
    }];
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
    assert!(
        seen.peak_in_flight <= MAX_CONCURRENT_CALLS as u64,
        "{seen:?}"
    );
    // The pool may open one more now and then (a call can start just before a finished
    // connection is back in the pool), but never one per call.
    assert!(
        seen.accepted <= 2 * MAX_CONCURRENT_CALLS as u64,
        "{seen:?} for {} calls",
        2 * WORKLOADS
    );
    assert_eq!(sim.faults().count("patch", "deployments"), WORKLOADS as u64);
    assert_eq!(sim.faults().count("create", "events"), WORKLOADS as u64);
    assert_eq!(sim.faults().count("patch", "events"), 1);
    assert_eq!(api.writes(), WORKLOADS as u64);
    // Nothing of an answer is read: each asked for the object's metadata alone.
    let answers = sim.faults().requests();
    let whole: Vec<_> = answers
        .iter()
        .filter(|r| r.verb != "list" && !r.metadata_only)
        .collect();
    assert!(whole.is_empty(), "answered whole: {whole:?}");
    assert_eq!(answers.len(), 2 * WORKLOADS + 1);
    let stored = sim
        .store()
        .get(
            resource_of(&json!({"apiVersion": "apps/v1", "kind": "Deployment"})).expect("known"),
            NS,
            "app-7",
        )
        .expect("app-7");
    assert_eq!(
        stored["spec"]["template"]["spec"]["containers"][0]["image"],
        "backup.example.com/nginx:1.27"
    );
}

#[tokio::test]
async fn a_patch_answers_the_version_it_wrote_only_when_asked_to() {
    let sim = cluster();
    let client = client(&sim).await;
    let reporter = Reporter {
        controller: "image-cloner".into(),
        instance: None,
    };
    let operations = vec![Op::Replace {
        path: "/spec/template/spec/containers/0/image".into(),
        value: json!("backup.example.com/nginx:1.27"),
    }];
    let deployment =
        resource_of(&json!({"apiVersion": "apps/v1", "kind": "Deployment"})).expect("known");
    let stored_version = |name: &str| {
        let stored = sim.store().get(deployment, NS, name).expect(name);
        stored["metadata"]["resourceVersion"]
            .as_str()
            .expect("a resourceVersion")
            .to_owned()
    };

    let unread = WorkloadApi::new(client.clone(), reporter.clone(), Arc::new(Unobserved));
    let answered = unread.patch::<Deployment>(NS, "app-1", &operations).await;
    assert_eq!(answered.expect("patched"), None);

    let reading = WorkloadApi::new(client, reporter, Arc::new(Unobserved)).reading_versions();
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
