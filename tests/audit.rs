//! The backup keeps protecting after day one (issue 16), end to end: `image-cloner run` against
//! the simulator, real registries and skopeo.
//!
//! - a backup copy deleted through the registry API is copied again within one audit; deleted
//!   with its source, it is reported (Event `BackupMissing`, metric) and, with
//!   `on_backup_missing = restore`, the workload goes back to its original;
//! - the rollout guard: a patched workload's Pod stuck in `ImagePullBackOff` on the backup
//!   image (the simulator has no kubelet: the test writes the Pod's status) → restored once;
//! - `image-cloner status` on a cluster holding one workload in each state prints each state
//!   once, and its JSON matches the daemon's `image_cloner_workloads{state}`.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::daemon::Daemon;
use common::e2e::{Env, text};
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::discovery::ApiResource;
use kube_sim::fixtures::workload;
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(60);

/// `name{labels}` → value, from the daemon's `/metrics`.
fn metrics(daemon: &Daemon) -> BTreeMap<String, f64> {
    let (status, body) = daemon.get("/metrics");
    assert_eq!(status, 200, "{body}");
    body.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            Some((series.to_owned(), value.parse().ok()?))
        })
        .collect()
}

fn metric(daemon: &Daemon, series: &str) -> f64 {
    metrics(daemon).get(series).copied().unwrap_or(0.0)
}

fn ready(env: &Env, daemon: &Daemon) {
    env.eventually(WAIT, "the daemon is ready", || daemon.ready());
}

/// `repo@digest` of a reference written into a workload, without its registry host (and
/// without the tag: skopeo takes one or the other).
fn by_digest(reference: &str) -> String {
    let (_, path) = reference.split_once('/').expect("a host");
    let (name_tag, digest) = path.split_once('@').expect("pinned");
    let name = name_tag.rsplit_once(':').map_or(name_tag, |(n, _)| n);
    format!("{name}@{digest}")
}

/// Deletes a copy from the backup registry through the registry API.
fn delete_backup(env: &Env, reference: &str) {
    env.backup_control(|r| testbed::delete(r, &by_digest(reference)).expect("delete the copy"));
    assert!(!env.resolves_in_backup(reference), "{reference} deleted");
}

fn patched(env: &Env, ns: &str, name: &str) -> String {
    let mut image = String::new();
    env.eventually(WAIT, &format!("{name} patched"), || {
        image = env.images("Deployment", ns, name)[0].clone();
        env.resolves_in_backup(&image)
    });
    image
}

fn has_event(env: &Env, ns: &str, name: &str, reason: &str) -> bool {
    env.events(ns, name)
        .iter()
        .any(|(t, r, _)| t == "Warning" && r == reason)
}

#[test]
fn backup_copies_deleted_are_copied_again_or_reported_and_restored() {
    let dir = tempfile::tempdir().expect("temp dir");
    let env = Env::on_simulator(dir.path());
    let ns = "audit";
    env.namespace(ns, &[]);
    let kept = env.push_fresh("audit/kept", 60);
    let spec = common::small_image("audit/vanishing", 61);
    let vanishing_digest = common::push_all(&env.source, &spec, "audit/vanishing", "1");
    let vanishing = format!("{}/audit/vanishing:1", env.source.host());
    for (name, image) in [("web", &kept), ("lost", &vanishing)] {
        env.create(workload(
            "Deployment",
            ns,
            name,
            &[("app", image)],
            &[],
            json!({}),
        ));
    }
    let audit = ("IMAGE_CLONER_AUDIT_INTERVAL", "2s");
    let mut daemon = Daemon::start(env.cloner(&[ns], &[audit]));
    let web = patched(&env, ns, "web");
    let lost = patched(&env, ns, "lost");

    // A clean-up deletes a copy in use: it is there again after the next audit.
    delete_backup(&env, &web);
    env.eventually(WAIT, "the deleted copy copied again", || {
        env.resolves_in_backup(&web)
    });
    env.eventually(WAIT, "the repair counted", || {
        metric(&daemon, "image_cloner_backup_copies_repaired_total") >= 1.0
    });
    assert_eq!(
        env.images("Deployment", ns, "web"),
        std::slice::from_ref(&web)
    );

    // The copy and the content it was made from are both gone (the source's tag now names
    // other content): reported, and the workload left as it is.
    testbed::delete(&env.source, &format!("audit/vanishing@{vanishing_digest}"))
        .expect("delete the source");
    common::push_all(
        &env.source,
        &common::small_image("audit/vanishing", 62),
        "audit/vanishing",
        "1",
    );
    delete_backup(&env, &lost);
    env.eventually(WAIT, "a BackupMissing Warning", || {
        has_event(&env, ns, "lost", "BackupMissing")
    });
    env.eventually(WAIT, "the missing copy counted", || {
        metric(&daemon, "image_cloner_backup_copies_missing") == 1.0
    });
    let note = env
        .events(ns, "lost")
        .into_iter()
        .find(|(_, r, _)| r == "BackupMissing")
        .map(|(_, _, n)| n)
        .unwrap_or_default();
    assert!(
        note.contains(&lost) && note.contains("no longer serves"),
        "{note}"
    );
    assert_eq!(
        env.images("Deployment", ns, "lost"),
        std::slice::from_ref(&lost)
    );
    assert_eq!(daemon.stop(), Some(0), "{}", daemon.log());

    // With on_backup_missing = restore: back on its original, which still exists, opted out.
    let restore = ("IMAGE_CLONER_ON_BACKUP_MISSING", "restore");
    let mut daemon = Daemon::start(env.cloner(&[ns], &[audit, restore]));
    env.eventually(WAIT, "restored to the original", || {
        env.images("Deployment", ns, "lost") == [vanishing.clone()]
    });
    let annotations = &env.get("Deployment", ns, "lost")["metadata"]["annotations"];
    assert_eq!(annotations["image-cloner.io/skip"], "true", "{annotations}");
    assert!(
        annotations["image-cloner.io/original-images"].is_null(),
        "{annotations}"
    );
    env.eventually(WAIT, "the restore counted", || {
        metric(
            &daemon,
            r#"image_cloner_workloads_restored_total{reason="BackupMissing"}"#,
        ) == 1.0
    });
    assert_eq!(
        env.images("Deployment", ns, "web"),
        std::slice::from_ref(&web),
        "its copy is there"
    );
    assert_eq!(daemon.stop(), Some(0), "{}", daemon.log());
}

fn api(env: &Env, kind: &str, ns: &str) -> Api<DynamicObject> {
    let r = kube_sim::resources::of_kind(kind).expect("a kind");
    let gvk = kube::api::GroupVersionKind::gvk(r.group, r.version, r.kind);
    Api::namespaced_with(
        env.client.clone(),
        ns,
        &ApiResource::from_gvk_with_plural(&gvk, r.plural),
    )
}

/// What the kubelet would write for a Pod that cannot pull `image`.
fn stuck(env: &Env, ns: &str, pod: &str, image: &str) {
    let status = json!({"status": {"phase": "Pending", "containerStatuses": [{
        "name": "app", "image": image, "imageID": "", "ready": false, "restartCount": 0,
        "state": {"waiting": {"reason": "ImagePullBackOff",
                              "message": format!("Back-off pulling image \"{image}\"")}}
    }]}});
    env.rt
        .block_on(api(env, "Pod", ns).patch_status(
            pod,
            &PatchParams::default(),
            &Patch::Merge(&status),
        ))
        .expect("write the Pod's status");
}

/// A Pod of `owner` (a ReplicaSet) running `image`.
fn pod_of(ns: &str, name: &str, owner: &Value, image: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "labels": {"app": "rollout"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                "name": owner["metadata"]["name"], "uid": owner["metadata"]["uid"], "controller": true}]},
        "spec": {"containers": [{"name": "app", "image": image}]}
    })
}

/// Requests of `verb` to Deployment `name`, from the simulator's log.
fn requests(env: &Env, verb: &str, name: &str) -> usize {
    let sim = env.sim.as_ref().expect("the simulator");
    sim.faults()
        .requests()
        .iter()
        .filter(|r| r.verb == verb && r.resource == "deployments" && r.name == name)
        .count()
}

#[test]
fn a_rollout_stuck_on_its_backup_image_is_restored_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let env = Env::on_simulator(dir.path());
    let ns = "guard";
    env.namespace(ns, &[]);
    let original = env.images.app.0.clone();
    env.create(workload(
        "Deployment",
        ns,
        "rollout",
        &[("app", &original)],
        &[],
        json!({}),
    ));
    let after = ("IMAGE_CLONER_ROLLOUT_GUARD_AFTER", "1s");
    let mut daemon = Daemon::start(env.cloner(&[ns], &[after]));
    let backup = patched(&env, ns, "rollout");

    // The Deployment controller's ReplicaSet, and its Pod the kubelet cannot pull for.
    let deployment = env.get("Deployment", ns, "rollout");
    let mut rs = workload(
        "ReplicaSet",
        ns,
        "rollout-5d8",
        &[("app", &backup)],
        &[],
        json!({}),
    );
    rs["metadata"]["ownerReferences"] = json!([{"apiVersion": "apps/v1", "kind": "Deployment",
        "name": "rollout", "uid": deployment["metadata"]["uid"], "controller": true}]);
    let rs = env.create(rs);
    env.create(pod_of(ns, "rollout-5d8-a", &rs, &backup));
    stuck(&env, ns, "rollout-5d8-a", &backup);

    env.eventually(WAIT, "restored to the original", || {
        env.images("Deployment", ns, "rollout") == std::slice::from_ref(&original)
    });
    let annotations = &env.get("Deployment", ns, "rollout")["metadata"]["annotations"];
    assert_eq!(
        annotations["image-cloner.io/skip"], "true",
        "opted out: {annotations}"
    );
    let events: Vec<String> = env
        .events(ns, "rollout")
        .into_iter()
        .filter(|(t, r, _)| t == "Warning" && r == "BackupPullFailed")
        .map(|(_, _, n)| n)
        .collect();
    assert_eq!(events.len(), 1, "{events:?}");
    assert!(
        events[0].contains("ImagePullBackOff") && events[0].contains(&original),
        "{}",
        events[0]
    );

    // Another Pod of the old ReplicaSet, stuck too: the guard looks again, and leaves it.
    let (patches, gets) = (
        requests(&env, "patch", "rollout"),
        requests(&env, "get", "rollout"),
    );
    env.create(pod_of(ns, "rollout-5d8-b", &rs, &backup));
    stuck(&env, ns, "rollout-5d8-b", &backup);
    env.eventually(WAIT, "the guard reads the workload again", || {
        requests(&env, "get", "rollout") > gets
    });
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        requests(&env, "patch", "rollout"),
        patches,
        "restored once, not again"
    );
    assert_eq!(
        env.images("Deployment", ns, "rollout"),
        std::slice::from_ref(&original)
    );
    let m = metrics(&daemon);
    assert_eq!(
        m[r#"image_cloner_workloads_restored_total{reason="BackupPullFailed"}"#],
        1.0
    );
    assert_eq!(m["image_cloner_backup_pull_failures_total"], 1.0);
    assert_eq!(daemon.stop(), Some(0), "{}", daemon.log());
}

/// `counts` of `status --output json`.
fn status_counts(env: &Env, ns: &str, extra: &[(&str, &str)]) -> BTreeMap<String, f64> {
    let out = env.run(&[ns], extra, &["status", "--output", "json"]);
    assert!(out.status.success(), "{}", text(&out));
    let report: Value = serde_json::from_slice(&out.stdout).expect("status JSON");
    report["counts"]
        .as_object()
        .expect("counts")
        .iter()
        .map(|(k, v)| (k.clone(), v.as_f64().unwrap_or(-1.0)))
        .collect()
}

fn workload_states(daemon: &Daemon) -> BTreeMap<String, f64> {
    metrics(daemon)
        .into_iter()
        .filter_map(|(series, v)| {
            let state = series.strip_prefix("image_cloner_workloads{state=\"")?;
            Some((state.strip_suffix("\"}")?.to_owned(), v))
        })
        .collect()
}

#[test]
fn status_names_each_state_once_and_matches_the_metrics() {
    let dir = tempfile::tempdir().expect("temp dir");
    let env = Env::on_simulator(dir.path());
    let (ns, elsewhere) = ("status", "status-elsewhere");
    env.namespace(ns, &[]);
    env.namespace(elsewhere, &[]);
    let app = env.images.app.0.clone();
    // Served at 2 KiB/s per connection: its copy is still running when the test looks.
    let slow = common::throttle::Throttle::start(&env.source.host(), 2048);
    common::push_all(
        &env.source,
        &testbed::ImageSpec::new("slow", 70).with_layers(2, 256 * 1024),
        "team/slow",
        "1",
    );
    let source = env.source.host();
    let gone = format!(
        "{}/{}_gone:1@sha256:{}",
        env.backup_registry(),
        source.replace(':', "--"),
        "0".repeat(64)
    );
    let record =
        json!({"app": {"original": format!("{source}/gone:1"), "backup": gone}}).to_string();
    let deploy = |ns: &str, name: &str, image: &str, meta: Value| {
        env.create(workload(
            "Deployment",
            ns,
            name,
            &[("app", image)],
            &[],
            meta,
        ));
    };
    deploy(ns, "protected", &app, json!({}));
    deploy(
        ns,
        "not-yet-copied",
        &format!("{}/team/slow:1", slow.host()),
        json!({}),
    );
    deploy(
        ns,
        "copy-failing",
        &format!("{source}/team/missing:1"),
        json!({}),
    );
    deploy(
        ns,
        "backup-missing",
        &gone,
        json!({"annotations": {"image-cloner.io/original-images": record}}),
    );
    deploy(elsewhere, "ignored", &app, json!({}));
    deploy(
        ns,
        "opted-out",
        &app,
        json!({"annotations": {"image-cloner.io/skip": "true"}}),
    );
    deploy(
        ns,
        "gitops",
        &app,
        json!({"annotations": {"argocd.argoproj.io/tracking-id": "x:apps/Deployment:status/gitops"}}),
    );
    env.create(workload(
        "Job",
        ns,
        "immutable",
        &[("app", &app)],
        &[],
        json!({}),
    ));
    deploy(ns, "invalid", "Not/A/Valid:Ref", json!({}));
    let excluded = format!("{source}/team/excluded");
    deploy(ns, "excluded", &format!("{excluded}:1"), json!({}));

    let insecure = format!("{source},{},{}", slow.host(), env.backup_host);
    let extra = [
        ("IMAGE_CLONER_SOURCE_EXCLUDE", excluded.as_str()),
        ("IMAGE_CLONER_AUDIT_INTERVAL", "2s"),
        ("IMAGE_CLONER_SHUTDOWN_GRACE", "1s"),
        ("IMAGE_CLONER_INSECURE_REGISTRIES", insecure.as_str()),
    ];
    let mut daemon = Daemon::start(env.cloner(&[ns], &extra));
    ready(&env, &daemon);
    patched(&env, ns, "protected");
    env.eventually(WAIT, "the copy failure and the lost copy reported", || {
        has_event(&env, ns, "copy-failing", "SourceNotFound")
            && has_event(&env, ns, "backup-missing", "BackupMissing")
    });
    let expected: BTreeMap<String, f64> = [
        "protected",
        "not_yet_copied",
        "copy_failing",
        "backup_missing",
        "ignored_namespace",
        "opted_out",
        "gitops_managed",
        "immutable",
        "invalid_reference",
        "excluded",
    ]
    .into_iter()
    .map(|s| (s.to_owned(), 1.0))
    // A private source and a copy the nodes cannot pull have tests of their own
    // (source_policy, pull_secrets).
    .chain(["unknown", "private_source", "not_pullable"].map(|s| (s.to_owned(), 0.0)))
    .collect();
    env.eventually(WAIT, "the metrics count one workload in each state", || {
        workload_states(&daemon) == expected
    });

    let counts = status_counts(&env, ns, &extra);
    assert_eq!(counts, expected, "status --output json");
    assert_eq!(
        workload_states(&daemon),
        counts,
        "the JSON matches the metrics"
    );
    let out = env.run(&[ns], &extra, &["status"]);
    assert!(out.status.success(), "{}", text(&out));
    let table = String::from_utf8_lossy(&out.stdout).into_owned();
    eprintln!("{table}");
    for (state, n) in [
        ("protected", 1),
        ("not yet copied", 1),
        ("copy failing", 1),
        ("backup copy missing", 1),
        ("ignored namespace", 1),
        ("opted out", 1),
        ("GitOps-managed (backup not in git)", 1),
        ("immutable (Job)", 1),
        ("invalid reference", 1),
        ("backup not checked", 0),
    ] {
        let line = table
            .lines()
            .find(|l| l.starts_with(state))
            .unwrap_or_default();
        assert_eq!(
            line.split_whitespace().last(),
            Some(n.to_string().as_str()),
            "{state}:\n{table}"
        );
    }
    for name in [
        "not-yet-copied",
        "copy-failing",
        "backup-missing",
        "invalid",
    ] {
        assert!(table.contains(name), "{name} is listed:\n{table}");
    }
    assert!(!table.lines().any(|l| l.contains(" protected ")), "{table}");
    assert_eq!(daemon.stop(), Some(0), "{}", daemon.log());
}
