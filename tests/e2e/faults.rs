//! Scenarios that need the simulator's fault injection: a concurrent edit, dropped and expired
//! watches, failing patches.

use std::time::Duration;

use kube_sim::fixtures::workload;
use serde_json::json;

use crate::common::daemon::Daemon;
use crate::common::e2e::{Env, text};

/// Another client changes the image between the daemon's read and its write: the daemon's
/// `test` op fails, it re-reads and re-plans, and the edit is kept (and cloned in turn).
pub fn concurrent_edit(env: &Env) {
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
pub fn watch_faults(env: &Env) {
    let sim = env
        .sim
        .as_ref()
        .expect("fault scenarios run on the simulator");
    let ns = "e2e-watch";
    env.namespace(ns, &[]);
    let mut daemon = Daemon::start(env.cloner(&[ns], &[]));
    daemon.wait_until(Duration::from_secs(30), "the daemon is ready", || {
        daemon.ready()
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
    daemon.wait_until(
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
    daemon.wait_until(
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

/// The namespace watch breaks (and cannot list again) while a copy runs: the opt-out is not
/// known when the copy is done, so nothing is patched then — and the workload is patched once
/// namespaces are listed again, without waiting for a change to it. (Found by `watch_faults`
/// under load: "not known" was taken as "opted out", and the workload stayed unpatched.)
pub fn namespace_watch_broken_mid_copy(env: &Env) {
    let sim = env
        .sim
        .as_ref()
        .expect("fault scenarios run on the simulator");
    let ns = "e2e-ns-watch";
    env.namespace(ns, &[]);
    // Two 1 MiB layers at 512 KiB/s per connection: a copy of about two seconds.
    let slow = env.slow_image("team/slow-ns", 78, 1024 * 1024, 512 * 1024);
    let image = slow.image.clone();
    let mut daemon = Daemon::start(env.cloner(
        &[ns],
        &[("IMAGE_CLONER_INSECURE_REGISTRIES", &slow.insecure)],
    ));
    daemon.wait_until(Duration::from_secs(30), "the daemon is ready", || {
        daemon.ready()
    });
    env.create(workload(
        "Deployment",
        ns,
        "web",
        &[("app", &image)],
        &[],
        json!({}),
    ));
    daemon.wait_until(Duration::from_secs(30), "a copy in flight", || {
        daemon
            .get("/metrics")
            .1
            .contains("image_cloner_copies_in_flight 1")
    });
    sim.faults().fail_next(kube_sim::FailRule {
        verb: None,
        resource: Some("namespaces".into()),
        count: 1_000_000,
        // Not 503: kube's client retries that by itself, quietly, and the watch never breaks.
        status: 500,
        retry_after: None,
    });
    sim.store().drop_watches();
    daemon.wait_until(Duration::from_secs(30), "the copy done", || {
        daemon.log().contains("copied source=")
    });
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        env.images("Deployment", ns, "web"),
        [image],
        "not patched while the namespace's opt-out is unknown; the daemon's log:\n{}",
        daemon.log()
    );
    sim.faults().clear();
    daemon.wait_until(
        Duration::from_secs(60),
        "patched once namespaces are listed again",
        || env.resolves_in_backup(&env.images("Deployment", ns, "web")[0]),
    );
    assert_eq!(daemon.stop(), Some(0), "{}", daemon.log());
    env.clear(ns);
}

/// The API server answers the daemon's first two patches with 500: the error policy retries
/// with backoff (5 s, then 10 s) and the workload converges, with exactly three attempts.
pub fn api_errors(env: &Env) {
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
    daemon.wait_until(
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
    // The error policy's lines name the workload, as the reconcile's own do.
    assert!(
        daemon.logged_about("Deployment", ns, "web", "transient failure; retrying"),
        "{}",
        daemon.log()
    );
    env.clear(ns);
}
