//! Scenarios of the daemon (`image-cloner run`) meeting the world: new workloads, a backup
//! registry outage, SIGTERM in the middle of a copy.

use std::time::Duration;

use kube_sim::fixtures::workload;
use serde_json::json;

use crate::common::daemon::Daemon;
use crate::common::e2e::Env;

pub fn daemon_and_outage(env: &Env) {
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
    daemon.wait_until(
        Duration::from_secs(30),
        "the daemon patches a new workload",
        || env.resolves_in_backup(&env.images("Deployment", ns, "first")[0]),
    );
    // The daemon runs without transparent huge pages, whatever the host's THP mode: off from
    // the first line of its `main`, for it and the skopeo it starts, so it holds at most the
    // one the Rust runtime's allocations before `main` may have taken (`run --once` and the
    // other commands that exit keep them).
    assert_eq!(daemon.proc_line("status", "THP_enabled:"), "0");
    let huge = daemon.proc_line("smaps_rollup", "AnonHugePages:");
    let kib: u64 = huge
        .strip_suffix(" kB")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("AnonHugePages: {huge}"));
    assert!(kib <= 2048, "the daemon holds {huge} of huge pages");

    // A GitOps-managed workload created now, on an image already copied: still told where.
    env.create(workload(
        "Deployment",
        ns,
        "gitops",
        &[("app", &env.images.app.0)],
        &[],
        json!({"annotations": {"argocd.argoproj.io/tracking-id": "x:apps/Deployment:e2e-daemon/gitops"}}),
    ));
    daemon.wait_until(Duration::from_secs(30), "a GitOpsManaged Warning", || {
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
    daemon.wait_until(
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
    daemon.wait_until(
        Duration::from_secs(60),
        "patched once the backup is back",
        || env.resolves_in_backup(&env.images("Deployment", ns, "second")[0]),
    );
    assert_eq!(daemon.stop(), Some(0), "{}", daemon.log());
    if let Some(sim) = &env.sim {
        // Nothing of a write's answer is read: each asked for the object's metadata alone.
        let writes: Vec<_> = sim
            .faults()
            .requests()
            .into_iter()
            .filter(|r| r.namespace == ns)
            .filter(|r| {
                matches!(
                    (r.verb.as_str(), r.resource.as_str()),
                    ("patch", "deployments") | ("create" | "patch", "events")
                )
            })
            .collect();
        assert!(writes.len() >= 4, "patches and Events: {writes:?}");
        let whole: Vec<_> = writes.iter().filter(|r| !r.metadata_only).collect();
        assert!(whole.is_empty(), "answered whole: {whole:?}");
    }
    env.clear(ns);
}

pub fn stop_backup(env: &Env) {
    env.backup_control(|r| r.stop().expect("stop the backup registry"));
}

pub fn start_backup(env: &Env) {
    env.backup_control(|r| r.restart().expect("restart the backup registry"));
}

/// SIGTERM while a copy runs. With a grace period shorter than the copy, the daemon exits 0
/// and the workload keeps its original image (a copy killed mid-way never leads to a patch);
/// with a longer one, the copy finishes, the workload is patched, then the daemon exits 0.
pub fn stopped_mid_copy(env: &Env) {
    let ns = "e2e-sigterm";
    env.namespace(ns, &[]);
    // Two 4 MiB layers at 1 MiB/s per connection: a copy of about four seconds, so the daemon
    // is caught in the middle of it, and the second daemon still has seconds of it left.
    let slow = env.slow_image("team/slow", 77, 4 * 1024 * 1024, 1024 * 1024);
    let (image, insecure) = (slow.image.as_str(), slow.insecure.as_str());
    for (name, grace, patched) in [("cut-short", "1s", false), ("let-finish", "60s", true)] {
        env.create(workload(
            "Deployment",
            ns,
            name,
            &[("app", image)],
            &[],
            json!({}),
        ));
        let mut daemon = Daemon::start(env.cloner(
            &[ns],
            &[
                ("IMAGE_CLONER_SHUTDOWN_GRACE", grace),
                ("IMAGE_CLONER_INSECURE_REGISTRIES", insecure),
            ],
        ));
        daemon.wait_until(Duration::from_secs(30), "a copy in flight", || {
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
            assert_eq!(now, image, "{name}: not patched to an unfinished copy");
            assert!(
                daemon.log().contains("grace period over"),
                "{}",
                daemon.log()
            );
        }
    }
    env.clear(ns);
}
