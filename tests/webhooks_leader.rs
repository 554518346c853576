//! The admission webhooks with two replicas on one Lease (leader election, as the manifests run
//! them), on the simulator, which calls webhooks registered by `url:` as kube-apiserver does.
//!
//! Only the Lease's holder answers for real: a review the standby gets is admitted unchanged
//! (it neither copies nor writes: the leader patches that workload as it always does), and once
//! the leader has gone the standby takes over and its answers rewrite. With
//! `webhook_tls = self-signed` each replica makes its own CA and only the holder writes it into
//! the configurations, so the replicas never overwrite each other's bundle; the new holder
//! writes its own when it takes over.

mod common;

use std::time::Duration;

use common::daemon::Daemon;
use common::e2e::Env;
use common::hooks::{Hooks, Kubectl, SELECTOR_LABEL, configurations, free_port};
use kube_sim::fixtures::workload;
use serde_json::{Value, json};

const NS: &str = "hooks";
const LEASE_NS: &str = "hooks-leases";
const LEASE_DURATION: &str = "6s";
const WITHIN: Duration = Duration::from_secs(60);

/// A replica named `name`, on the shared Lease, serving its webhooks at `address`.
fn replica(env: &Env, name: &str, webhooks: &[(&'static str, String)]) -> Daemon {
    let mut extra: Vec<(&str, &str)> = vec![
        ("POD_NAME", name),
        ("IMAGE_CLONER_LEADER_ELECTION", "on"),
        ("IMAGE_CLONER_LEASE_NAMESPACE", LEASE_NS),
        ("IMAGE_CLONER_LEASE_DURATION", LEASE_DURATION),
        ("IMAGE_CLONER_SHUTDOWN_GRACE", "2s"),
    ];
    extra.extend(webhooks.iter().map(|(k, v)| (*k, v.as_str())));
    let daemon = Daemon::start(env.cloner(&[NS], &extra));
    daemon.wait_until(WITHIN, "the replica serves its webhooks", || {
        daemon.log().contains("serving the admission webhooks")
    });
    daemon
}

/// A value of the daemon's `/metrics`: the first line starting with `series` (a name, or a
/// name with the start of its labels).
fn metric(daemon: &Daemon, series: &str) -> Option<f64> {
    daemon.metrics_address()?;
    let (_, body) = daemon.get("/metrics");
    body.lines()
        .filter(|l| l.starts_with(series))
        .find_map(|l| l.rsplit_once(' ')?.1.parse().ok())
}

fn leads(daemon: &Daemon) -> bool {
    metric(daemon, "image_cloner_leader ") == Some(1.0)
}

fn setup(env: &Env, kubectl: &Kubectl) {
    let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS, "labels": {SELECTOR_LABEL: "on"}}});
    kubectl.apply(&[ns]);
    env.namespace(LEASE_NS, &[]);
}

/// The mutating webhook's configuration, calling `address` (registered again if it was).
fn point_at(kubectl: &Kubectl, address: &str, ca_bundle: Option<&str>) {
    let _ = kubectl.run(&[
        "delete",
        "mutatingwebhookconfiguration",
        "image-cloner",
        "--ignore-not-found",
    ]);
    kubectl.apply(&configurations(address, ca_bundle)[..1]);
}

fn deployment(name: &str, image: &str) -> Value {
    workload("Deployment", NS, name, &[("app", image)], &[], json!({}))
}

/// Creates `name` on `image`; the image it is stored with.
fn created(kubectl: &Kubectl, name: &str, image: &str) -> String {
    let out = kubectl.create(&deployment(name, image), &[]);
    assert!(
        out.status.success(),
        "kubectl create {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stored: Value = serde_json::from_slice(&out.stdout).expect("the stored object");
    stored["spec"]["template"]["spec"]["containers"][0]["image"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// Dry-run creates until one comes back on a verified copy: the webhook at the configured URL
/// answers, and the copy exists.
fn until_rewritten(env: &Env, kubectl: &Kubectl, image: &str, daemons: &[&Daemon]) {
    let probe = deployment("probe", image);
    let deadline = std::time::Instant::now() + WITHIN;
    loop {
        let out = kubectl.create(&probe, &["--dry-run=server"]);
        let stored: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        let now = stored["spec"]["template"]["spec"]["containers"][0]["image"]
            .as_str()
            .unwrap_or_default();
        if now != image && env.resolves_in_backup(now) {
            return;
        }
        let logs: Vec<String> = daemons.iter().map(|d| d.log()).collect();
        assert!(
            std::time::Instant::now() < deadline,
            "not rewritten within {WITHIN:?} (last: {now:?}); the replicas' logs:\n{}",
            logs.join("\n----\n")
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn a_standby_admits_unchanged_and_answers_once_it_has_taken_over() {
    let dir = tempfile::tempdir().expect("temp dir");
    let env = Env::on_simulator(dir.path());
    let kubectl = Kubectl::new(&env);
    setup(&env, &kubectl);
    // One certificate for both replicas, as a mounted cert-manager Secret gives them.
    let hooks = Hooks::new();
    let on = |address: &str| {
        let mut settings = hooks.settings("off");
        for (key, value) in &mut settings {
            if *key == "IMAGE_CLONER_WEBHOOK_ADDRESS" {
                address.clone_into(value);
            }
        }
        settings
    };
    let (a_address, b_address) = (hooks.address(), format!("127.0.0.1:{}", free_port()));
    let mut a = replica(&env, "replica-a", &on(&a_address));
    a.wait_until(WITHIN, "replica-a leads", || leads(&a));
    let b = replica(&env, "replica-b", &on(&b_address));
    b.wait_until(WITHIN, "replica-b is a standby", || {
        metric(&b, "image_cloner_leader ") == Some(0.0)
    });

    let app = env.images.app.0.clone();
    point_at(&kubectl, &a_address, Some(&hooks.ca_bundle()));
    // A real create queues the copy (the leader copies); once verified, creates get it.
    assert_eq!(created(&kubectl, "first", &app), app, "not copied yet");
    until_rewritten(&env, &kubectl, &app, &[&a, &b]);
    let on_leader = created(&kubectl, "on-leader", &app);
    assert!(env.resolves_in_backup(&on_leader), "{on_leader}");

    point_at(&kubectl, &b_address, Some(&hooks.ca_bundle()));
    let standby_said =
        "image_cloner_admission_reviews_total{webhook=\"mutate\",outcome=\"standby\"}";
    assert_eq!(created(&kubectl, "on-standby", &app), app);
    assert!(
        metric(&b, standby_said).is_some_and(|n| n >= 1.0),
        "the standby's answer is not counted as standby:\n{}",
        b.get("/metrics").1
    );
    let (_, text) = b.get("/metrics");
    let copies: f64 = text
        .lines()
        .filter(|l| l.starts_with("image_cloner_copies_total"))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum();
    assert_eq!(copies, 0.0, "the standby copied");

    assert_eq!(a.stop(), Some(0), "replica-a stops on SIGTERM");
    b.wait_until(WITHIN, "replica-b takes the Lease over", || leads(&b));
    until_rewritten(&env, &kubectl, &app, &[&b]);
    let after = created(&kubectl, "after-takeover", &app);
    assert!(env.resolves_in_backup(&after), "{after}");
}

/// The CA bundle of the mutating webhook's configuration (base64), or "".
fn bundle(kubectl: &Kubectl) -> String {
    let out = kubectl.run(&[
        "get",
        "mutatingwebhookconfiguration",
        "image-cloner",
        "-o",
        "jsonpath={.webhooks[0].clientConfig.caBundle}",
    ]);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn only_the_leader_writes_its_self_signed_ca() {
    let dir = tempfile::tempdir().expect("temp dir");
    let env = Env::on_simulator(dir.path());
    let kubectl = Kubectl::new(&env);
    setup(&env, &kubectl);
    let (a_address, b_address) = (
        format!("127.0.0.1:{}", free_port()),
        format!("127.0.0.1:{}", free_port()),
    );
    point_at(&kubectl, &a_address, None);
    let self_signed = |address: &str| {
        vec![
            ("IMAGE_CLONER_MUTATING_WEBHOOK", "on".to_owned()),
            ("IMAGE_CLONER_WEBHOOK_TLS", "self-signed".to_owned()),
            ("IMAGE_CLONER_WEBHOOK_ADDRESS", address.to_owned()),
        ]
    };
    let mut a = replica(&env, "replica-a", &self_signed(&a_address));
    a.wait_until(WITHIN, "replica-a leads and writes its CA", || {
        leads(&a) && bundle(&kubectl).len() > 100
    });
    let written_by_a = bundle(&kubectl);

    let b = replica(&env, "replica-b", &self_signed(&b_address));
    // A standby would write at once (its first round is at start): give it several.
    std::thread::sleep(Duration::from_secs(6));
    assert_eq!(metric(&b, "image_cloner_leader "), Some(0.0));
    assert_eq!(bundle(&kubectl), written_by_a, "the standby wrote its CA");
    assert!(!b.log().contains("wrote the webhook CA bundle"));

    assert_eq!(a.stop(), Some(0), "replica-a stops on SIGTERM");
    b.wait_until(WITHIN, "replica-b leads and writes its own CA", || {
        leads(&b) && {
            let now = bundle(&kubectl);
            now.len() > 100 && now != written_by_a
        }
    });
    assert!(b.log().contains("wrote the webhook CA bundle"));
}
