//! Patched pods can pull their copies (issue 14), end to end: the `image-cloner` binary
//! against the API simulator and against envtest's real kube-apiserver, a private backup
//! registry (htpasswd) and the real skopeo.
//!
//! - With `pull_secret`, a Deployment in a fresh namespace is patched together with its
//!   `imagePullSecrets`; the Secret holds a docker config whose only host is the backup, and
//!   its credentials pull the copy (`skopeo inspect --authfile`); the docker config rotated
//!   (a symlink swap, as a mounted Secret changes) → the Secrets updated; a workload that
//!   already named the Secret → not duplicated; `restore` → the entry and the Secret gone
//!   (kept while a user's workload still names it).
//! - Without a pull secret and a private backup: not patched, a `BackupNotPullable` Event, a
//!   metric, a start-up warning, and `plan` says so; with `pull_check = off`: patched.
//! - Every log line, Event, metric and `plan` output of the suite is scanned for the backup's
//!   passwords (unique markers) and their encodings.

#[path = "../common/mod.rs"]
mod common;
mod fixture;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::time::Duration;

use base64::Engine as _;
use common::cluster::Envtest;
use common::daemon::Daemon;
use fixture::{MARKER, OTHER, PullEnv, ROTATED, SECRET, auth_of};
use testbed::Credentials;

const PATCH_TIMEOUT: Duration = Duration::from_secs(90);
/// The promise is a minute; the daemon reads the docker config every 10 s.
const ROTATION_TIMEOUT: Duration = Duration::from_secs(60);

#[test]
fn on_the_simulator() {
    let dir = tempfile::tempdir().expect("temp dir");
    suite(PullEnv::on_simulator(dir.path()));
}

#[test]
fn on_the_real_api_server_of_envtest() {
    let Some(envtest) = Envtest::start() else {
        return;
    };
    suite(PullEnv::new("envtest", &envtest.kubeconfig()));
}

type Scenario = (&'static str, fn(&mut PullEnv));

fn suite(mut env: PullEnv) {
    let mut failed = Vec::new();
    let scenarios: [Scenario; 2] = [
        ("provisioned, patched, rotated and restored", provisioned),
        (
            "not pullable without a pull secret; pull_check = off patches",
            not_pullable,
        ),
    ];
    for (name, scenario) in scenarios {
        eprintln!("--- [{}] {name}", env.name);
        if let Err(e) = catch_unwind(AssertUnwindSafe(|| scenario(&mut env))) {
            let msg = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_default();
            eprintln!("FAILED [{}] {name}: {msg}", env.name);
            failed.push(name);
        }
    }
    nothing_leaked(&env);
    assert!(failed.is_empty(), "failed on {}: {failed:?}", env.name);
}

fn provisioned(env: &mut PullEnv) {
    let (a, b) = ("e2e-pull-a", "e2e-pull-b");
    env.namespace(a);
    env.namespace(b);
    let app = env.push("team/pull-app", 101);
    let tool = env.push("team/pull-tool", 102);
    env.deployment(a, "web", &app, &[]);
    env.deployment(b, "own", &tool, &[SECRET, "team-registry"]);
    env.deployment(b, "web", &tool, &[]);
    let mut daemon = Daemon::start(env.cloner(&[a, b], &[("IMAGE_CLONER_PULL_SECRET", SECRET)]));
    let all = [(a, "web"), (b, "own"), (b, "web")];
    env.eventually(PATCH_TIMEOUT, "every Deployment patched", || {
        all.iter()
            .all(|(ns, name)| env.image(ns, name).starts_with(&env.backup_host))
    });
    // Two copies, each checked before and verified after: once the backup has asked for
    // credentials, every HEAD carries them (without that memory, each of the four is refused
    // first). The two images' first checks may both go out before the first refusal is back.
    let refused = env.refused_heads();
    assert!(
        (1..=2).contains(&refused),
        "{refused} HEADs refused for want of credentials; the backup's log:\n{}",
        env.backup_log_tail()
    );

    // Patched together with its imagePullSecrets; an entry already there is not added again.
    assert_eq!(env.pull_secrets(a, "web"), Some(vec![SECRET.to_owned()]));
    assert_eq!(env.pull_secrets(b, "web"), Some(vec![SECRET.to_owned()]));
    assert_eq!(
        env.pull_secrets(b, "own"),
        Some(vec![SECRET.to_owned(), "team-registry".to_owned()]),
        "not duplicated"
    );
    assert_eq!(recorded(env, a, "web").as_deref(), Some(SECRET));
    assert_eq!(
        recorded(env, b, "own"),
        None,
        "the user's entry is not recorded as ours"
    );

    let files = tempfile::tempdir().expect("a temp dir");
    only_the_backup_entry(env, &[a, b], files.path());
    rotated(env, &[a, b], files.path());

    let (_, metrics) = daemon.get("/metrics");
    env.record(&metrics);
    for line in [
        "image_cloner_pull_secret_writes_total{result=\"created\"} 2",
        "image_cloner_pull_secret_writes_total{result=\"updated\"} 2",
        "image_cloner_workloads_patched_total 3",
    ] {
        assert!(metrics.contains(line), "no {line:?} in\n{metrics}");
    }
    daemon.stop();
    let log = daemon.log();
    env.record(&log);
    assert!(log.contains("pull secret created"), "{log}");
    for ns in [a, b] {
        for name in ["web", "own"] {
            env.events(ns, name);
        }
    }
    restored(env, a, b, &app);
}

/// Each namespace's Secret: one entry, the backup's, whose credentials pull the copy.
fn only_the_backup_entry(env: &PullEnv, namespaces: &[&str], files: &Path) {
    for ns in namespaces {
        let secret = env.secret(ns, SECRET).expect("the pull secret");
        assert_eq!(
            secret.type_.as_deref(),
            Some("kubernetes.io/dockerconfigjson")
        );
        let labels = secret.metadata.labels.clone().unwrap_or_default();
        assert_eq!(
            labels
                .get("app.kubernetes.io/managed-by")
                .map(String::as_str),
            Some("image-cloner")
        );
        let (authfile, config) = env.authfile_of(&secret, files);
        let hosts: Vec<&String> = config["auths"]
            .as_object()
            .map(|m| m.keys().collect())
            .unwrap_or_default();
        assert_eq!(hosts, [&env.backup_host], "{ns}: only the backup's entry");
        assert_eq!(
            config["auths"][&env.backup_host]["auth"],
            auth_of(&env.user)
        );
        let image = env.image(ns, "web");
        assert!(env.pullable(&image, Some(&authfile)), "{ns}: {image}");
    }
    let image = env.image(namespaces[0], "web");
    assert!(!env.pullable(&image, None), "the backup is private");
}

/// The docker config rotated, as a mounted Secret changes: every Secret follows.
fn rotated(env: &mut PullEnv, namespaces: &[&str], files: &Path) {
    let before = env.secret(namespaces[0], SECRET).expect("the pull secret");
    let (_, old) = env.authfile_of(&before, files);
    remember_encodings(env, &old);
    env.rotate();
    let rotated = auth_of(&env.rotated);
    env.eventually(ROTATION_TIMEOUT, "every pull secret rotated", || {
        namespaces.iter().all(|ns| {
            env.secret(ns, SECRET).is_some_and(|s| {
                let (_, config) = env.authfile_of(&s, files);
                config["auths"][&env.backup_host]["auth"] == rotated.as_str()
            })
        })
    });
    let after = env.secret(namespaces[0], SECRET).expect("the pull secret");
    let (authfile, new) = env.authfile_of(&after, files);
    remember_encodings(env, &new);
    assert!(env.pullable(&env.image(namespaces[0], "web"), Some(&authfile)));
}

/// restore: the entry and, once nothing names it, the Secret (in `a`); in `b` a user's
/// Deployment still names it, and keeps its entry.
fn restored(env: &PullEnv, a: &str, b: &str, app: &str) {
    let out = env.run(&[a], &[], &["restore", "-n", a]);
    let text = common::e2e::text(&out);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains(&format!(
            "Deployment {a}/web: removed imagePullSecrets entry {SECRET}"
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!("Secret {a}/{SECRET}: deleted")),
        "{text}"
    );
    assert_eq!(env.pull_secrets(a, "web"), None);
    assert_eq!(recorded(env, a, "web"), None);
    assert_eq!(env.image(a, "web"), app);
    assert!(env.secret(a, SECRET).is_none(), "the Secret is gone");

    let out = env.run(&[b], &[], &["restore", "-n", b]);
    let text = common::e2e::text(&out);
    assert!(out.status.success(), "{text}");
    assert_eq!(env.pull_secrets(b, "web"), None);
    assert_eq!(
        env.pull_secrets(b, "own"),
        Some(vec![SECRET.to_owned(), "team-registry".to_owned()]),
        "what a user added stays"
    );
    assert!(
        text.contains(&format!(
            "Secret {b}/{SECRET}: kept, still named by Deployment/own"
        )),
        "{text}"
    );
    assert!(env.secret(b, SECRET).is_some());
}

/// The `imagePullSecrets` entries the patch recorded as its own.
fn recorded(env: &PullEnv, ns: &str, name: &str) -> Option<String> {
    env.get(ns, name)["metadata"]["annotations"]["image-cloner.io/pull-secret"]
        .as_str()
        .map(str::to_owned)
}

fn not_pullable(env: &mut PullEnv) {
    let c = "e2e-pull-c";
    env.namespace(c);
    let image = env.push("team/pull-private", 103);
    env.deployment(c, "web", &image, &[]);

    let out = env.run(&[c], &[], &["plan"]);
    let plan = common::e2e::text(&out);
    assert!(out.status.success(), "{plan}");
    assert!(plan.contains("backup not pullable"), "{plan}");
    assert!(plan.contains("0 container(s) to patch"), "{plan}");
    assert!(
        plan.contains(&format!(
            "pods could not pull from {}",
            env.backup_registry()
        )),
        "{plan}"
    );
    let json = env.run(&[c], &[], &["plan", "--output", "json"]);
    assert!(
        String::from_utf8_lossy(&json.stdout).contains("\"decision\": \"backup not pullable\""),
        "{}",
        common::e2e::text(&json)
    );

    let mut daemon = Daemon::start(env.cloner(&[c], &[]));
    env.eventually(PATCH_TIMEOUT, "a BackupNotPullable Event", || {
        env.events(c, "web")
            .iter()
            .any(|(t, r, _)| t == "Warning" && r == "BackupNotPullable")
    });
    let events = env.events(c, "web");
    let (_, _, note) = events
        .iter()
        .find(|(_, r, _)| r == "BackupNotPullable")
        .expect("the Event");
    for fix in ["set pull_secret", "pull_check = off", "without credentials"] {
        assert!(note.contains(fix), "{note}");
    }
    assert_eq!(env.image(c, "web"), image, "copied, not patched");
    assert_eq!(env.pull_secrets(c, "web"), None);
    let (_, metrics) = daemon.get("/metrics");
    env.record(&metrics);
    let held: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("image_cloner_not_pullable_total "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0);
    assert!(held >= 1, "{metrics}");
    daemon.stop();
    let log = daemon.log();
    env.record(&log);
    assert!(log.contains("no pull secret is provisioned"), "{log}");

    // run --once probes beside its run (not before it) and still says why, and copies
    // without patching.
    let out = env.run(&[c], &[], &["run", "--once"]);
    let text = common::e2e::text(&out);
    assert!(out.status.success(), "{text}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no pull secret is provisioned"),
        "{text}"
    );
    assert!(
        text.contains(" workload(s): 0 patched (0 image(s)), 1 cloned but not patched"),
        "{text}"
    );
    assert!(!env.image(c, "web").starts_with(&env.backup_host));

    // The nodes have their own credentials: patched, with no pull secret.
    let out = env.run(
        &[c],
        &[("IMAGE_CLONER_PULL_CHECK", "off")],
        &["run", "--once"],
    );
    let text = common::e2e::text(&out);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains(" workload(s): 1 patched (1 image(s))"),
        "{text}"
    );
    assert!(env.image(c, "web").starts_with(&env.backup_host));
    assert_eq!(env.pull_secrets(c, "web"), None);
    env.events(c, "web");
}

/// The encodings of a pull secret's content that a leak would show: the `.dockerconfigjson`
/// as the Secret's `data` holds it (base64), kept for the final scan.
fn remember_encodings(env: &PullEnv, config: &serde_json::Value) {
    let text = config.to_string();
    let b64 = base64::engine::general_purpose::STANDARD.encode(text.as_bytes());
    env.remember_secret(&b64);
    env.remember_secret(&text);
}

fn nothing_leaked(env: &PullEnv) {
    let transcript = env.transcript();
    assert!(
        transcript.contains("pull secret created") && transcript.contains("BackupNotPullable"),
        "[{}] the transcript holds the daemon's logs and Events: {transcript}",
        env.name
    );
    let other = Credentials::new("someone-else", OTHER);
    let mut secrets = vec![
        MARKER.to_owned(),
        ROTATED.to_owned(),
        OTHER.to_owned(),
        auth_of(&env.user),
        auth_of(&env.rotated),
        auth_of(&other),
    ];
    secrets.extend(env.remembered_secrets());
    for secret in &secrets {
        assert!(
            !transcript.contains(secret.as_str()),
            "[{}] a credential in the output of image-cloner",
            env.name
        );
    }
}
