//! Changes a user makes while the daemon runs: a namespace that opts out and back in, and
//! `restore` (which opts the workload out, so the daemon leaves it restored) with and without
//! `--allow-repatch`.
//!
//! "Never patched" needs a moment at which the daemon has certainly seen the change: the daemon
//! runs with its reconcile decisions logged (`image_cloner::reconcile=debug`), and the tests
//! wait for its decision about the workload before they look.

use std::time::Duration;

use kube_sim::fixtures::workload;
use serde_json::json;

use crate::common::daemon::Daemon;
use crate::common::e2e::{Env, text};

const SKIP: &str = "image-cloner.io/skip";
const ORIGINAL_IMAGES: &str = "image-cloner.io/original-images";
/// Decisions in the log, beside the usual info lines.
const LOG_DECISIONS: (&str, &str) = (
    "IMAGE_CLONER_LOG_LEVEL",
    "info,image_cloner::reconcile=debug",
);
const WAIT: Duration = Duration::from_secs(60);

/// A namespace annotated while the daemon runs: a Deployment created in it afterwards is never
/// patched; the annotation removed, that Deployment is patched at once without anyone touching
/// it (the daemon reconciles the namespace's workloads when it opts back in).
pub fn namespace_opt_out_while_running(env: &Env) {
    let (ns, other) = ("e2e-live-optout", "e2e-live-other");
    env.namespace(ns, &[]);
    env.namespace(other, &[]);
    let mut daemon = Daemon::start(env.cloner(&[ns, other], &[LOG_DECISIONS]));
    let app = &env.images.app.0;
    env.create(workload(
        "Deployment",
        ns,
        "before",
        &[("app", app)],
        &[],
        json!({}),
    ));
    daemon.wait_until(WAIT, "the daemon patches in the namespace", || {
        env.resolves_in_backup(&env.images("Deployment", ns, "before")[0])
    });

    env.annotate_namespace(ns, SKIP, Some("true"));
    // An image not in the backup yet: had the daemon planned a copy, it takes a while, and the
    // sentinel in the other namespace (same image) is patched only once it is done.
    let fresh = env.push_fresh("live/late", 60);
    env.create(workload(
        "Deployment",
        ns,
        "late",
        &[("app", &fresh)],
        &[],
        json!({}),
    ));
    env.create(workload(
        "Deployment",
        other,
        "sentinel",
        &[("app", &fresh)],
        &[],
        json!({}),
    ));
    daemon.wait_until(
        WAIT,
        "the daemon's decision about the late Deployment",
        || {
            let decided = daemon.logged_about("Deployment", ns, "late", "decision=\"opt-out\"")
                || daemon.logged_about("Deployment", ns, "late", "not patched");
            decided && env.resolves_in_backup(&env.images("Deployment", other, "sentinel")[0])
        },
    );
    assert_eq!(
        env.images("Deployment", ns, "late"),
        std::slice::from_ref(&fresh),
        "created in an opted-out namespace, it was patched: {}",
        daemon.log()
    );
    let writes = env.writes_to("deployments", ns, "late");
    assert!(writes.is_empty(), "{writes:?}");

    env.annotate_namespace(ns, SKIP, None);
    daemon.wait_until(
        WAIT,
        "the late Deployment patched once the namespace opts back in",
        || env.resolves_in_backup(&env.images("Deployment", ns, "late")[0]),
    );
    if env.sim.is_some() {
        let verbs: Vec<String> = env
            .writes_to("deployments", ns, "late")
            .into_iter()
            .map(|r| r.verb)
            .collect();
        assert_eq!(
            verbs,
            ["patch"],
            "one write since its creation: the daemon's"
        );
    }
    assert_eq!(daemon.stop(), Some(0), "{}", daemon.log());
    env.clear(ns);
    env.clear(other);
}

/// `restore` while the daemon runs: the workload is restored and opted out, the output says
/// how to opt back in, and the daemon leaves it alone; opted back in, it is patched again;
/// `restore --allow-repatch` restores without opting out, and the daemon patches it again.
pub fn restore_while_running(env: &Env) {
    let ns = "e2e-live-restore";
    env.namespace(ns, &[]);
    let originals = vec![env.images.multi.0.clone(), env.images.init.0.clone()];
    env.create(workload(
        "Deployment",
        ns,
        "web",
        &[("app", &originals[0])],
        &[("init", &originals[1])],
        json!({}),
    ));
    let mut daemon = Daemon::start(env.cloner(&[ns], &[LOG_DECISIONS]));
    let patched = || {
        let images = env.images("Deployment", ns, "web");
        images.len() == 2 && images.iter().all(|i| env.resolves_in_backup(i))
    };
    daemon.wait_until(WAIT, "the daemon patches the workload", patched);

    let out = env.run(&[ns], &[], &["restore", "-n", ns]);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        stdout.contains(&format!("opted out ({SKIP}=true)"))
            && stdout.contains(&format!("kubectl annotate deployment web -n {ns} {SKIP}-")),
        "the output says it opted the workload out, and how to undo that: {stdout}"
    );
    assert_eq!(env.images("Deployment", ns, "web"), originals);
    let web = env.get("Deployment", ns, "web");
    assert_eq!(
        web["metadata"]["annotations"][SKIP], "true",
        "{}",
        web["metadata"]
    );
    daemon.wait_until(
        WAIT,
        "the daemon's decision about the restored workload",
        || daemon.logged_about("Deployment", ns, "web", "decision=\"opt-out\""),
    );
    assert_eq!(
        env.images("Deployment", ns, "web"),
        originals,
        "restored while the daemon runs, it stays restored: {}",
        daemon.log()
    );
    if env.sim.is_some() {
        // The log keeps writes by object name: the create (to the collection) is not among them.
        let patches = env.writes_to("deployments", ns, "web");
        assert_eq!(
            patches.len(),
            2,
            "the daemon's patch and restore's, nothing after: {patches:?}"
        );
    }

    // Opted back in as restore said: patched again.
    env.annotate("Deployment", ns, "web", SKIP, None);
    daemon.wait_until(WAIT, "patched again once opted back in", patched);

    allow_repatch(env, &daemon, ns, &patched);
    assert_eq!(daemon.stop(), Some(0), "{}", daemon.log());
    env.clear(ns);
}

/// `restore --allow-repatch` while the daemon runs: restored without opting out, so the daemon
/// patches it again.
fn allow_repatch(env: &Env, daemon: &Daemon, ns: &str, patched: &dyn Fn() -> bool) {
    // restore's write and the daemon's: two new generations.
    let before = generation(&env.get("Deployment", ns, "web"));
    let out = env.run(&[ns], &[], &["restore", "-n", ns, "--allow-repatch"]);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        stdout.contains("restored container") && !stdout.contains("opted"),
        "{stdout}"
    );
    daemon.wait_until(WAIT, "patched again after restore --allow-repatch", || {
        let web = env.get("Deployment", ns, "web");
        patched()
            && generation(&web) >= before + 2
            && web["metadata"]["annotations"]
                .get(ORIGINAL_IMAGES)
                .is_some()
    });
    let web = env.get("Deployment", ns, "web");
    assert!(
        web["metadata"]["annotations"].get(SKIP).is_none(),
        "{}",
        web["metadata"]
    );
}

fn generation(obj: &serde_json::Value) -> i64 {
    obj["metadata"]["generation"].as_i64().unwrap_or_default()
}
