//! End to end: the `image-cloner` binary against a Kubernetes API server, real registries and
//! the real skopeo. Each scenario asserts what a user would check: the workload's stored spec,
//! the Events on it, and that the exact image written into it resolves in the backup registry.
//!
//! The same scenarios run unchanged against every kind of cluster available: the real API
//! server of `../shared/envtest` (when `KUBEBUILDER_ASSETS` is set), and a real cluster (when
//! `IMAGE_CLONER_E2E_KUBECONFIG` names its kubeconfig; everything happens in namespaces named
//! `e2e-*`, and the daemon is confined to them).

mod common;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Duration;

use common::cluster::{Envtest, real_cluster};
use common::e2e::{Daemon, Env, text};
use kube_sim::fixtures::workload;
use serde_json::json;

type Scenario = (&'static str, fn(&Env));

/// Scenarios that need no fault injection: they run on every kind of cluster.
const SCENARIOS: &[Scenario] = &[
    (
        "every kind is cloned and patched; a Job only cloned",
        every_kind,
    ),
    (
        "ignored, opted-out and GitOps-managed workloads",
        left_alone,
    ),
    (
        "a missing source image leaves the workload untouched",
        source_missing,
    ),
    (
        "a converged cluster costs no copy and no write",
        converged_restart,
    ),
    (
        "plan writes nothing and run does what it said",
        plan_matches_run,
    ),
    (
        "restore gives back the exact original images",
        restore_round_trip,
    ),
    (
        "the daemon patches new workloads and waits out a backup outage",
        daemon_and_outage,
    ),
    (
        "SIGTERM mid-copy: nothing patched past the grace period, finished within it",
        stopped_mid_copy,
    ),
    (
        "2,000 workloads over 50 images: 50 copies, one write each",
        two_thousand_workloads,
    ),
];

/// Scenarios that need the simulator's fault injection.
const FAULT_SCENARIOS: &[Scenario] = &[
    (
        "an edit between the daemon's read and its write survives",
        concurrent_edit,
    ),
    (
        "a dropped watch and a 410 Expired: no workload missed",
        watch_faults,
    ),
    (
        "the API server fails patches: retried with backoff, no hot loop",
        api_errors,
    ),
];

fn run_suite(env: &Env) {
    run_scenarios(env, SCENARIOS);
}

fn run_scenarios(env: &Env, scenarios: &[Scenario]) {
    let mut failed = Vec::new();
    for (name, scenario) in scenarios {
        eprintln!("--- [{}] {name}", env.name);
        if let Err(e) = catch_unwind(AssertUnwindSafe(|| scenario(env))) {
            let msg = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_default();
            eprintln!("FAILED [{}] {name}: {msg}", env.name);
            failed.push(*name);
        }
    }
    assert!(failed.is_empty(), "failed on {}: {failed:?}", env.name);
}

#[test]
fn on_the_simulator() {
    let dir = tempfile::tempdir().expect("temp dir");
    let env = Env::on_simulator(dir.path());
    run_scenarios(&env, &[SCENARIOS, FAULT_SCENARIOS].concat());
}

#[test]
fn on_the_real_api_server_of_envtest() {
    let Some(envtest) = Envtest::start() else {
        return;
    };
    run_suite(&Env::new("envtest", &envtest.kubeconfig()));
}

#[test]
fn on_a_real_cluster() {
    let Some(kubeconfig) = real_cluster() else {
        eprintln!(
            "SKIPPED: set IMAGE_CLONER_E2E_KUBECONFIG to run the end-to-end suite on a real cluster"
        );
        return;
    };
    run_suite(&Env::new("real cluster", &kubeconfig));
}

fn every_kind(env: &Env) {
    let ns = "e2e-kinds";
    env.namespace(ns, &[]);
    let (multi, multi_digest) = &env.images.multi;
    let (app, _) = &env.images.app;
    let (sidecar, _) = &env.images.sidecar;
    let (init, _) = &env.images.init;
    let mut kinds = vec![
        "Deployment",
        "StatefulSet",
        "DaemonSet",
        "ReplicaSet",
        "Pod",
    ];
    if env.cronjobs {
        kinds.push("CronJob");
    }
    for kind in &kinds {
        let name = kind.to_lowercase();
        env.create(workload(
            kind,
            ns,
            &name,
            &[("web", multi), ("proxy", sidecar)],
            &[("migrate", init)],
            json!({}),
        ));
    }
    env.create(workload("Job", ns, "job", &[("task", app)], &[], json!({})));

    let out = env.run(
        &[ns],
        &[("IMAGE_CLONER_BARE_PODS", "true")],
        &["run", "--once"],
    );
    let log = text(&out);
    assert!(out.status.success(), "{log}");
    let patched = kinds.len();
    assert!(
        log.contains(&format!(
            "{} workload(s): {patched} patched ({} image(s)), 1 cloned but not patched, 0 invalid reference(s), 0 failed; 4 cop(y/ies) made",
            patched + 1,
            patched * 3
        )),
        "{log}"
    );
    for kind in &kinds {
        let images = env.images(kind, ns, &kind.to_lowercase());
        assert_eq!(images.len(), 3, "{kind}: {images:?}");
        for image in &images {
            assert!(
                env.resolves_in_backup(image),
                "{kind}: {image} not in backup"
            );
        }
        assert!(
            images[0].ends_with(&format!(":1.27@{multi_digest}")),
            "{kind}: the multi-arch index keeps its digest: {}",
            images[0]
        );
        let events = env.events(ns, &kind.to_lowercase());
        assert!(
            events
                .iter()
                .any(|(t, r, _)| t == "Normal" && r == "Cloned"),
            "{kind}: {events:?}"
        );
    }
    assert_eq!(
        env.images("Job", ns, "job"),
        std::slice::from_ref(app),
        "a Job is never patched"
    );
    let events = env.events(ns, "job");
    assert!(
        events.iter().any(|(t, r, note)| t == "Warning"
            && r == "ImmutablePodTemplate"
            && note.contains(&env.backup_registry())),
        "{events:?}"
    );
    env.clear(ns);
}

fn left_alone(env: &Env) {
    let (app, _) = &env.images.app;
    // GitOps-managed workloads on an image nobody copied yet: the copy is news, so an Event
    // names it.
    let fresh = env.push_fresh("gitops/app", 40);
    env.namespace("e2e-ignored", &[]);
    env.namespace("e2e-optout", &[("image-cloner.io/skip", "true")]);
    env.namespace("e2e-gitops", &[]);
    let deploy = |ns: &str, name: &str, meta| {
        env.create(workload("Deployment", ns, name, &[("app", app)], &[], meta));
    };
    deploy("e2e-ignored", "web", json!({}));
    deploy("e2e-optout", "web", json!({}));
    deploy(
        "e2e-gitops",
        "skipped",
        json!({"annotations": {"image-cloner.io/skip": "true"}}),
    );
    for (name, meta) in [
        (
            "argo",
            json!({"annotations": {"argocd.argoproj.io/tracking-id": "shop:apps/Deployment:e2e-gitops/argo"}}),
        ),
        (
            "flux",
            json!({"labels": {"kustomize.toolkit.fluxcd.io/name": "apps", "kustomize.toolkit.fluxcd.io/namespace": "flux-system"}}),
        ),
    ] {
        env.create(workload(
            "Deployment",
            "e2e-gitops",
            name,
            &[("app", &fresh)],
            &[],
            meta,
        ));
    }
    let out = env.run(
        &["e2e-ignored", "e2e-optout", "e2e-gitops"],
        &[("NAMESPACES_TO_IGNORE", "e2e-ignored")],
        &["run", "--once"],
    );
    let log = text(&out);
    assert!(out.status.success(), "{log}");
    for (ns, name) in [
        ("e2e-ignored", "web"),
        ("e2e-optout", "web"),
        ("e2e-gitops", "skipped"),
    ] {
        assert_eq!(
            env.images("Deployment", ns, name),
            std::slice::from_ref(app),
            "{ns}/{name}"
        );
    }
    for name in ["argo", "flux"] {
        assert_eq!(
            env.images("Deployment", "e2e-gitops", name),
            std::slice::from_ref(&fresh),
            "{name}"
        );
    }
    for name in ["argo", "flux"] {
        let events = env.events("e2e-gitops", name);
        let note = events
            .iter()
            .find(|(t, r, _)| t == "Warning" && r == "GitOpsManaged")
            .map(|(_, _, n)| n.clone())
            .unwrap_or_else(|| panic!("{name}: no GitOpsManaged event: {events:?}"));
        let backup_ref = note.rsplit(" → ").next().unwrap_or_default();
        assert!(env.resolves_in_backup(backup_ref), "{name}: {note}");
    }
    assert!(env.events("e2e-gitops", "skipped").is_empty());
    for ns in ["e2e-ignored", "e2e-optout", "e2e-gitops"] {
        env.clear(ns);
    }
}

fn source_missing(env: &Env) {
    let ns = "e2e-missing";
    env.namespace(ns, &[]);
    let missing = format!("{}/nowhere/gone:1", env.source.host());
    env.create(workload(
        "Deployment",
        ns,
        "web",
        &[("app", &missing), ("ok", &env.images.sidecar.0)],
        &[],
        json!({}),
    ));
    let out = env.run(&[ns], &[], &["run", "--once"]);
    let log = text(&out);
    assert_eq!(out.status.code(), Some(1), "{log}");
    assert!(log.contains("1 failed"), "{log}");
    let images = env.images("Deployment", ns, "web");
    assert_eq!(images[0], missing, "the missing image stays");
    assert!(
        env.resolves_in_backup(&images[1]),
        "the image that was mirrored is patched: {images:?}"
    );
    let events = env.events(ns, "web");
    assert!(
        events
            .iter()
            .any(|(t, r, n)| t == "Warning" && r == "SourceNotFound" && n.contains("nowhere/gone")),
        "{events:?}"
    );
    env.clear(ns);
}

fn converged_restart(env: &Env) {
    let ns = "e2e-converged";
    env.namespace(ns, &[]);
    for i in 0..5 {
        env.create(workload(
            "Deployment",
            ns,
            &format!("web-{i}"),
            &[("app", &env.images.app.0)],
            &[],
            json!({}),
        ));
    }
    env.create(workload(
        "Job",
        ns,
        "job",
        &[("t", &env.images.app.0)],
        &[],
        json!({}),
    ));
    let first = env.run(&[ns], &[], &["run", "--once"]);
    assert!(first.status.success(), "{}", text(&first));
    let versions: Vec<String> = (0..5)
        .map(|i| env.resource_version("Deployment", ns, &format!("web-{i}")))
        .collect();
    let events_before = env.events(ns, "job").len();
    // A restart comes later: creationTimestamp has whole seconds, and a workload created in
    // the second the daemon starts counts as new to it.
    std::thread::sleep(Duration::from_millis(1100));

    if let Some(sim) = &env.sim {
        sim.faults().reset_counters();
    }
    let again = env.run(&[ns], &[], &["run", "--once"]);
    if let Some(sim) = &env.sim {
        assert_eq!(
            sim.faults().writes(),
            0,
            "API writes on a converged cluster: {:?}",
            sim.faults().counters()
        );
    }
    let log = text(&again);
    assert!(again.status.success(), "{log}");
    assert!(
        log.contains("0 cop(y/ies) made") && log.contains("0 API write(s)"),
        "{log}"
    );
    let after: Vec<String> = (0..5)
        .map(|i| env.resource_version("Deployment", ns, &format!("web-{i}")))
        .collect();
    assert_eq!(versions, after, "no workload was written");
    assert_eq!(env.events(ns, "job").len(), events_before, "no new Event");
    env.clear(ns);
}

fn plan_matches_run(env: &Env) {
    let ns = "e2e-plan";
    env.namespace(ns, &[]);
    env.create(workload(
        "Deployment",
        ns,
        "web",
        &[("app", &env.images.multi.0), ("bad", "Not/A/Valid:Ref")],
        &[("init", &env.images.init.0)],
        json!({}),
    ));
    env.create(workload(
        "StatefulSet",
        ns,
        "db",
        &[("db", &env.images.app.0)],
        &[],
        json!({"annotations": {"argocd.argoproj.io/tracking-id": "x"}}),
    ));
    let before = (
        env.resource_version("Deployment", ns, "web"),
        env.resource_version("StatefulSet", ns, "db"),
    );
    if let Some(sim) = &env.sim {
        sim.faults().reset_counters();
    }
    let out = env.run(&[ns], &[], &["plan", "--output", "json", "--check-backup"]);
    assert!(out.status.success(), "{}", text(&out));
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).expect("plan JSON");
    // Other namespaces appear too, as ignored (the run is confined to this one).
    let rows: Vec<serde_json::Value> = rows.into_iter().filter(|r| r["namespace"] == ns).collect();
    assert_eq!(rows.len(), 4, "{rows:?}");
    let table = env.run(&[ns], &[], &["plan"]);
    assert!(table.status.success());
    if let Some(sim) = &env.sim {
        assert_eq!(
            sim.faults().writes(),
            0,
            "plan wrote: {:?}",
            sim.faults().counters()
        );
        assert!(
            sim.faults().count("list", "deployments") > 0,
            "plan read the cluster"
        );
    }
    assert!(String::from_utf8_lossy(&table.stdout).contains("DECISION"));
    assert_eq!(
        before,
        (
            env.resource_version("Deployment", ns, "web"),
            env.resource_version("StatefulSet", ns, "db"),
        ),
        "plan wrote nothing"
    );
    let decisions: Vec<(&str, &str)> = rows
        .iter()
        .map(|r| {
            (
                r["container"].as_str().unwrap_or_default(),
                r["decision"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert!(decisions.contains(&("app", "clone")), "{decisions:?}");
    assert!(decisions.contains(&("init", "clone")), "{decisions:?}");
    assert!(
        decisions.contains(&("bad", "invalid reference")),
        "{decisions:?}"
    );
    assert!(
        decisions.contains(&("db", "gitops-managed")),
        "{decisions:?}"
    );

    let run = env.run(&[ns], &[], &["run", "--once"]);
    assert!(run.status.success(), "{}", text(&run));
    let web = env.images("Deployment", ns, "web");
    let db = env.images("StatefulSet", ns, "db");
    for row in &rows {
        let container = row["container"].as_str().unwrap_or_default();
        let now = match container {
            "app" => &web[0],
            "bad" => &web[1],
            "init" => &web[2],
            _ => &db[0],
        };
        if row["patch"] == true {
            let backup = row["backup"].as_str().unwrap_or_default();
            assert!(
                now.starts_with(&format!("{backup}@sha256:")),
                "{container}: planned {backup}, got {now}"
            );
        } else {
            assert_eq!(
                now,
                row["image"].as_str().unwrap_or_default(),
                "{container}"
            );
        }
    }
    env.clear(ns);
}

fn restore_round_trip(env: &Env) {
    let ns = "e2e-restore";
    env.namespace(ns, &[]);
    let originals = [
        (
            "web",
            vec![env.images.multi.0.clone(), env.images.init.0.clone()],
        ),
        ("api", vec![env.images.app.0.clone()]),
    ];
    env.create(workload(
        "Deployment",
        ns,
        "web",
        &[("app", &originals[0].1[0])],
        &[("init", &originals[0].1[1])],
        json!({"labels": {"tier": "front"}}),
    ));
    env.create(workload(
        "DaemonSet",
        ns,
        "api",
        &[("app", &originals[1].1[0])],
        &[],
        json!({"labels": {"tier": "back"}}),
    ));
    let run = env.run(&[ns], &[], &["run", "--once"]);
    assert!(run.status.success(), "{}", text(&run));
    assert_ne!(env.images("Deployment", ns, "web"), originals[0].1);

    let dry = env.run(
        &[ns],
        &[],
        &["restore", "-n", ns, "-l", "tier=front", "--dry-run"],
    );
    assert!(dry.status.success(), "{}", text(&dry));
    assert!(String::from_utf8_lossy(&dry.stdout).contains("would restore"));
    assert_ne!(
        env.images("Deployment", ns, "web"),
        originals[0].1,
        "dry run"
    );

    let out = env.run(&[ns], &[], &["restore", "-n", ns, "-l", "tier=front"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(env.images("Deployment", ns, "web"), originals[0].1);
    assert_ne!(
        env.images("DaemonSet", ns, "api"),
        originals[1].1,
        "the selector left the other alone"
    );
    let web = env.get("Deployment", ns, "web");
    assert!(
        web["metadata"]["annotations"]
            .get("image-cloner.io/original-images")
            .is_none(),
        "the record is gone: {}",
        web["metadata"]
    );
    let out = env.run(&[ns], &[], &["restore", "-n", ns]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(env.images("DaemonSet", ns, "api"), originals[1].1);
    env.clear(ns);
}

fn daemon_and_outage(env: &Env) {
    let ns = "e2e-daemon";
    env.namespace(ns, &[]);
    let mut daemon = Daemon::start(env.cloner(&[ns], &[]));
    env.create(workload(
        "Deployment",
        ns,
        "first",
        &[("app", &env.images.app.0)],
        &[],
        json!({}),
    ));
    env.eventually(
        Duration::from_secs(30),
        "the daemon patches a new workload",
        || env.resolves_in_backup(&env.images("Deployment", ns, "first")[0]),
    );

    // A GitOps-managed workload created now, on an image already copied: still told where.
    env.create(workload(
        "Deployment",
        ns,
        "gitops",
        &[("app", &env.images.app.0)],
        &[],
        json!({"annotations": {"argocd.argoproj.io/tracking-id": "x:apps/Deployment:e2e-daemon/gitops"}}),
    ));
    env.eventually(Duration::from_secs(30), "a GitOpsManaged Warning", || {
        env.events(ns, "gitops")
            .iter()
            .any(|(t, r, _)| t == "Warning" && r == "GitOpsManaged")
    });
    assert_eq!(
        env.images("Deployment", ns, "gitops"),
        std::slice::from_ref(&env.images.app.0)
    );

    // The backup registry goes away: nothing is patched, and it recovers by itself.
    stop_backup(env);
    env.create(workload(
        "Deployment",
        ns,
        "second",
        &[("app", &env.images.sidecar.0)],
        &[],
        json!({}),
    ));
    env.eventually(
        Duration::from_secs(30),
        "a BackupUnavailable Warning",
        || {
            env.events(ns, "second")
                .iter()
                .any(|(t, r, _)| t == "Warning" && r == "BackupUnavailable")
        },
    );
    assert_eq!(
        env.images("Deployment", ns, "second"),
        std::slice::from_ref(&env.images.sidecar.0)
    );
    start_backup(env);
    env.eventually(
        Duration::from_secs(60),
        "patched once the backup is back",
        || env.resolves_in_backup(&env.images("Deployment", ns, "second")[0]),
    );
    assert_eq!(daemon.stop(), Some(0), "{}", daemon.log());
    env.clear(ns);
}

fn stop_backup(env: &Env) {
    env.backup_control(|r| r.stop().expect("stop the backup registry"));
}

fn start_backup(env: &Env) {
    env.backup_control(|r| r.restart().expect("restart the backup registry"));
}

fn two_thousand_workloads(env: &Env) {
    let ns = "e2e-scale";
    env.namespace(ns, &[]);
    let images: Vec<String> = (0..50)
        .map(|i| env.push_fresh(&format!("scale/img-{i}"), 1000 + i))
        .collect();
    let objects: Vec<serde_json::Value> = (0..2000)
        .map(|i| {
            workload(
                "Deployment",
                ns,
                &format!("w-{i:04}"),
                &[("app", &images[i % images.len()])],
                &[],
                json!({}),
            )
        })
        .collect();
    env.create_many(objects);

    if let Some(sim) = &env.sim {
        sim.faults().reset_counters();
    }
    let out = env.run(
        &[ns],
        &[("MAX_CONCURRENT_RECONCILES", "5")],
        &["run", "--once"],
    );
    let log = text(&out);
    assert!(
        out.status.success(),
        "{}",
        &log[log.len().saturating_sub(3000)..]
    );
    let summary = log
        .lines()
        .find(|l| l.contains("workload(s)") && l.contains("patched"))
        .unwrap_or_else(|| panic!("no summary in {}", &log[log.len().saturating_sub(3000)..]));
    eprintln!("{summary}");
    if let Some(sim) = &env.sim {
        let patches = sim.faults().count("patch", "deployments");
        eprintln!(
            "simulator counters: {patches} patch(es) of deployments, {} write(s) to deployments, {} write(s) in all",
            sim.faults().writes_to("deployments"),
            sim.faults().writes()
        );
        assert_eq!(patches, 2000, "one patch per workload");
        assert_eq!(sim.faults().writes_to("deployments"), 2000);
    }
    assert!(
        summary.contains("2000 patched (2000 image(s))")
            && summary.contains("0 failed; 50 cop(y/ies) made")
            && summary.contains("2000 API write(s)"),
        "{summary}"
    );
    // One write per workload: created at generation 1, patched once.
    let generations = env.generations("Deployment", ns);
    assert_eq!(generations.len(), 2000);
    assert!(
        generations
            .iter()
            .all(|(_, g, image)| *g == 2 && image.starts_with(&env.backup_registry())),
        "{:?}",
        generations.iter().find(|(_, g, _)| *g != 2)
    );
    for (_, _, image) in generations.iter().step_by(97) {
        assert!(env.resolves_in_backup(image), "{image}");
    }
    env.clear(ns);
}

/// Another client changes the image between the daemon's read and its write: the daemon's
/// `test` op fails, it re-reads and re-plans, and the edit is kept (and cloned in turn).
fn concurrent_edit(env: &Env) {
    let sim = env
        .sim
        .as_ref()
        .expect("fault scenarios run on the simulator");
    let ns = "e2e-edit";
    env.namespace(ns, &[]);
    env.create(workload(
        "Deployment",
        ns,
        "web",
        &[("app", &env.images.app.0)],
        &[],
        json!({}),
    ));
    let edited = &env.images.sidecar.0;
    sim.faults().interfere_next_write(kube_sim::Interference {
        resource: "deployments".into(),
        namespace: Some(ns.into()),
        name: Some("web".into()),
        merge_patch: json!({
            "metadata": {"labels": {"edited-by": "someone-else"}},
            "spec": {"template": {"spec": {"containers": [{"name": "app", "image": edited}]}}}
        }),
    });
    sim.faults().reset_counters();
    let out = env.run(&[ns], &[], &["run", "--once"]);
    assert!(out.status.success(), "{}", text(&out));
    let d = env.get("Deployment", ns, "web");
    assert_eq!(
        d["metadata"]["labels"]["edited-by"], "someone-else",
        "the edit survives"
    );
    let image = &env.images("Deployment", ns, "web")[0];
    assert!(env.resolves_in_backup(image), "converged: {image}");
    let original: serde_json::Value = serde_json::from_str(
        d["metadata"]["annotations"]["image-cloner.io/original-images"]
            .as_str()
            .expect("the annotation"),
    )
    .expect("annotation JSON");
    assert_eq!(
        original["app"]["original"], *edited,
        "the edited image is what was cloned, not the one first read"
    );
    let rejected = sim
        .faults()
        .requests()
        .iter()
        .filter(|r| r.verb == "patch" && r.resource == "deployments" && r.code == 422)
        .count();
    assert_eq!(rejected, 1, "exactly one patch met the edit");
    env.clear(ns);
}

/// The daemon's watches are dropped and cannot come back while workloads are created, and
/// the history is compacted past its resourceVersion: it must relist and patch them all.
fn watch_faults(env: &Env) {
    let sim = env
        .sim
        .as_ref()
        .expect("fault scenarios run on the simulator");
    let ns = "e2e-watch";
    env.namespace(ns, &[]);
    let mut daemon = Daemon::start(env.cloner(&[ns], &[]));
    env.eventually(Duration::from_secs(30), "the daemon is ready", || {
        daemon.metrics_address().is_some() && daemon.get("/readyz").0 == 200
    });
    let block = || kube_sim::FailRule {
        verb: Some("watch".into()),
        resource: None,
        count: 1_000_000,
        status: 503,
        retry_after: None,
    };
    // 1. Dropped: the changes made meanwhile are replayed from the watch history.
    sim.faults().fail_next(block());
    sim.store().drop_watches();
    env.create(workload(
        "Deployment",
        ns,
        "while-dropped",
        &[("app", &env.images.app.0)],
        &[],
        json!({}),
    ));
    sim.faults().clear();
    env.eventually(
        Duration::from_secs(60),
        "the workload created while the watch was down",
        || env.resolves_in_backup(&env.images("Deployment", ns, "while-dropped")[0]),
    );
    // 2. Dropped and expired: 410 on the re-watch, a relist finds the rest.
    let lists_before = sim.faults().count("list", "deployments");
    sim.faults().fail_next(block());
    sim.store().drop_watches();
    env.create(workload(
        "Deployment",
        ns,
        "while-expired",
        &[("app", &env.images.sidecar.0)],
        &[],
        json!({}),
    ));
    env.create(workload(
        "StatefulSet",
        ns,
        "db-while-expired",
        &[("db", &env.images.init.0)],
        &[],
        json!({}),
    ));
    sim.store().expire();
    sim.faults().clear();
    env.eventually(
        Duration::from_secs(60),
        "the workloads created before the 410",
        || {
            env.resolves_in_backup(&env.images("Deployment", ns, "while-expired")[0])
                && env.resolves_in_backup(&env.images("StatefulSet", ns, "db-while-expired")[0])
        },
    );
    assert!(
        sim.faults().count("list", "deployments") > lists_before,
        "the daemon relisted after the 410"
    );
    assert_eq!(daemon.stop(), Some(0), "{}", daemon.log());
    env.clear(ns);
}

/// SIGTERM while a copy runs. With a grace period shorter than the copy, the daemon exits 0
/// and the workload keeps its original image (a copy killed mid-way never leads to a patch);
/// with a longer one, the copy finishes, the workload is patched, then the daemon exits 0.
fn stopped_mid_copy(env: &Env) {
    let ns = "e2e-sigterm";
    env.namespace(ns, &[]);
    // Two 4 MiB layers at 1 MiB/s per connection: a copy of about four seconds, so the daemon
    // is caught in the middle of it, and the second daemon still has seconds of it left.
    let slow = common::throttle::Throttle::start(&env.source.host(), 1024 * 1024);
    let spec = testbed::ImageSpec::new("slow", 77).with_layers(2, 4 * 1024 * 1024);
    common::push_all(&env.source, &spec, "team/slow", "1.0");
    let image = format!("{}/team/slow:1.0", slow.host());
    let insecure = format!(
        "{},{},{}",
        env.source.host(),
        slow.host(),
        env.backup_registry()
    );
    let insecure = insecure.replace("/mirror", "");
    for (name, grace, patched) in [("cut-short", "1s", false), ("let-finish", "60s", true)] {
        env.create(workload(
            "Deployment",
            ns,
            name,
            &[("app", &image)],
            &[],
            json!({}),
        ));
        let mut daemon = Daemon::start(env.cloner(
            &[ns],
            &[
                ("IMAGE_CLONER_SHUTDOWN_GRACE", grace),
                ("IMAGE_CLONER_INSECURE_REGISTRIES", &insecure),
            ],
        ));
        env.eventually(Duration::from_secs(30), "a copy in flight", || {
            daemon.metrics_address().is_some()
                && daemon
                    .get("/metrics")
                    .1
                    .contains("image_cloner_copies_in_flight 1")
        });
        assert_eq!(daemon.stop(), Some(0), "{}", daemon.log());
        let now = &env.images("Deployment", ns, name)[0];
        if patched {
            assert!(
                env.resolves_in_backup(now),
                "{name}: finished and patched: {now}"
            );
        } else {
            assert_eq!(now, &image, "{name}: not patched to an unfinished copy");
            assert!(
                daemon.log().contains("grace period over"),
                "{}",
                daemon.log()
            );
        }
    }
    env.clear(ns);
}

/// The API server answers the daemon's first two patches with 500: the error policy retries
/// with backoff (5 s, then 10 s) and the workload converges, with exactly three attempts.
fn api_errors(env: &Env) {
    let sim = env
        .sim
        .as_ref()
        .expect("fault scenarios run on the simulator");
    let ns = "e2e-api-errors";
    env.namespace(ns, &[]);
    sim.faults().reset_counters();
    sim.faults().fail_next(kube_sim::FailRule {
        verb: Some("patch".into()),
        resource: Some("deployments".into()),
        count: 2,
        status: 500,
        retry_after: None,
    });
    let mut daemon = Daemon::start(env.cloner(&[ns], &[]));
    env.create(workload(
        "Deployment",
        ns,
        "web",
        &[("app", &env.images.init.0)],
        &[],
        json!({}),
    ));
    env.eventually(
        Duration::from_secs(60),
        "patched after two failures",
        || env.resolves_in_backup(&env.images("Deployment", ns, "web")[0]),
    );
    assert_eq!(daemon.stop(), Some(0), "{}", daemon.log());
    let codes: Vec<u16> = sim
        .faults()
        .requests()
        .iter()
        .filter(|r| r.verb == "patch" && r.resource == "deployments" && r.name == "web")
        .map(|r| r.code)
        .collect();
    assert_eq!(
        codes,
        [500, 500, 200],
        "retried, and only as often as the backoff allows"
    );
    env.clear(ns);
}
