//! Scenarios of `image-cloner run --once`, `plan` and `restore`: one-off commands against
//! whatever the cluster holds.

use std::time::Duration;

use kube_sim::fixtures::workload;
use serde_json::json;

use crate::common::e2e::{Env, text};

pub fn every_kind(env: &Env) {
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
    // The workload count includes those of other namespaces (ignored), which other scenarios
    // sharing the cluster may hold at the time: not asserted.
    assert!(
        log.contains(&format!(
            " workload(s): {patched} patched ({} image(s)), 1 cloned but not patched, 0 invalid reference(s), 0 failed; 4 cop(y/ies) made",
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

pub fn source_missing(env: &Env) {
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

pub fn converged_restart(env: &Env) {
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

pub fn plan_matches_run(env: &Env) {
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

pub fn restore_round_trip(env: &Env) {
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
