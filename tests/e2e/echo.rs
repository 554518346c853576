//! The echo of the daemon's own patch: each patch comes back through the daemon's watch as a
//! change of the workload. Unchanged since, the workload is not planned again — no decision is
//! logged for it after its patch — while a change by somebody else after the patch is
//! reconciled in full, and leaves the workload as it is.

use std::time::Duration;

use kube_sim::fixtures::workload;
use serde_json::json;

use crate::common::daemon::Daemon;
use crate::common::e2e::Env;

const WORKLOADS: usize = 12;
const WAIT: Duration = Duration::from_secs(120);
/// The decisions and the daemon's word on each echo, beside the usual info lines.
const LOG_LEVEL: (&str, &str) = (
    "IMAGE_CLONER_LOG_LEVEL",
    "info,image_cloner::reconcile=debug,image_cloner::cluster::controller=debug",
);
const ECHO: &str = "the echo of our own patch; not reconciled again";
/// What a full reconcile of a patched workload logs about its container.
const REPLANNED: &str = "decision=\"already in backup\"";

pub fn own_patch_echo_not_replanned(env: &Env) {
    let ns = "e2e-echo";
    env.namespace(ns, &[]);
    let image = env.push_fresh("echo/app", 4000);
    let names: Vec<String> = (0..WORKLOADS).map(|i| format!("echo-{i:02}")).collect();
    let objects = names
        .iter()
        .map(|name| workload("Deployment", ns, name, &[("app", &image)], &[], json!({})))
        .collect();
    env.create_many(objects);

    let mut daemon = Daemon::start(env.cloner(&[ns], &[LOG_LEVEL]));
    daemon.wait_until(WAIT, "every workload patched to its copy", || {
        env.on_copies("Deployment", ns) == WORKLOADS
    });
    let echo_of = |name: &str| format!("workload=\"Deployment/{ns}/{name}\"");
    let echoes = |log: &str, name: &str| {
        let who = echo_of(name);
        log.lines()
            .filter(|l| l.contains(ECHO) && l.contains(&who))
            .count()
    };
    daemon.wait_until(WAIT, "each patch seen back through the watch", || {
        let log = daemon.log();
        names.iter().all(|name| echoes(&log, name) == 1)
    });
    let log = daemon.log();
    for name in &names {
        let patched = log
            .lines()
            .filter(|l| l.contains(&format!("name=\"{name}\"")) && l.contains(" patched "))
            .count();
        assert_eq!(patched, 1, "{name} patched once:\n{log}");
        assert!(
            !daemon.logged_about("Deployment", ns, name, REPLANNED),
            "{name} planned again after its own patch:\n{log}"
        );
    }

    // Somebody else's change after the patch: a version the daemon did not write.
    let edited = &names[0];
    let before = env.resource_version("Deployment", ns, edited);
    let copy = env.images("Deployment", ns, edited);
    env.annotate("Deployment", ns, edited, "team", Some("payments"));
    daemon.wait_until(WAIT, "the edited workload reconciled in full", || {
        daemon.logged_about("Deployment", ns, edited, REPLANNED)
    });
    let log = daemon.log();
    assert_eq!(echoes(&log, edited), 1, "{log}");
    assert_eq!(
        env.images("Deployment", ns, edited),
        copy,
        "the edited workload still runs its copy"
    );
    assert_ne!(env.resource_version("Deployment", ns, edited), before);
    assert_eq!(daemon.stop(), Some(0), "{}", daemon.log());
}
