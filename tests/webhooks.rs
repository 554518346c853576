//! The admission webhooks of `image-cloner run`, called by an API server over TLS on loopback:
//! the same scenarios on the real kube-apiserver 1.20 of envtest (when `KUBEBUILDER_ASSETS` is
//! set) and on the simulator, with what kubectl shows — the stored objects, the denial, the
//! warnings — compared step by step.
//!
//! The webhooks are registered by `url:` with a `caBundle`, as from a bastion host: a
//! Deployment, a Job and a bare Pod on an image already copied are stored on the copy; a Pod
//! of a Job made before the copy, and of a GitOps-managed Deployment, runs the copy while the
//! GitOps-managed template is left alone; `deny` refuses an image not in the backup and the
//! same create succeeds once the queued copy is verified; `warn` warns; re-applying the
//! original image keeps the copy; with the daemon stopped, creates succeed unchanged.

mod common;

use std::time::Duration;

use common::cluster::Envtest;
use common::daemon::Daemon;
use common::e2e::Env;
use common::hooks::{Hooks, Kubectl, SELECTOR_LABEL, configurations, free_port, wait};
use kube_sim::fixtures::workload;
use serde_json::{Value, json};

const NS: &str = "hooks";
const ORIGINAL_IMAGES: &str = "image-cloner.io/original-images";

/// One scenario's run: what kubectl showed at each step, normalised.
struct Run<'a> {
    env: &'a Env,
    hooks: &'a Hooks,
    kubectl: Kubectl,
    steps: Vec<(String, Value)>,
}

impl Run<'_> {
    /// Registry hosts, ports and temp paths differ between runs; the rest must not.
    fn normalise(&self, text: &str) -> String {
        // The flat naming folds the source's host:port into the repository name.
        let folded = self.env.source.host().replace(':', "--");
        text.replace(&self.env.backup_host, "BACKUP")
            .replace(&self.env.source.host(), "SOURCE")
            .replace(&folded, "SOURCE")
            .replace(&self.hooks.address(), "WEBHOOK")
            .replace(&self.kubectl.dir.path().display().to_string(), "DIR")
    }

    /// `kubectl create -f` of `obj`: records the exit status, the Error and Warning lines and
    /// the stored object's images and record; returns the stored object.
    fn create(&mut self, step: &str, obj: &Value, extra: &[&str]) -> Option<Value> {
        let out = self.kubectl.create(obj, extra);
        let stored: Option<Value> = serde_json::from_slice(&out.stdout).ok();
        let messages: Vec<String> = String::from_utf8_lossy(&out.stderr)
            .lines()
            .filter(|l| l.starts_with("Warning:") || l.starts_with("Error"))
            .map(|l| self.normalise(l))
            .collect();
        let essence = stored.as_ref().map(essence);
        let text = serde_json::to_string(&essence).expect("json");
        self.steps.push((
            step.to_owned(),
            json!({"exit": out.status.code(), "messages": messages,
                   "stored": serde_json::from_str::<Value>(&self.normalise(&text)).expect("json")}),
        ));
        stored
    }

    /// Creates `obj` and checks it is stored on verified copies of its images.
    fn create_on_copy(&mut self, step: &str, obj: &Value) -> Value {
        let stored = self
            .create(step, obj, &[])
            .unwrap_or_else(|| panic!("{step}: not created: {:?}", self.steps.last()));
        for image in images(&stored) {
            assert!(
                self.env.resolves_in_backup(&image),
                "{step}: {image} is not a verified copy"
            );
        }
        stored
    }
}

/// The images of an object's pod spec (containers, then init containers) and its record.
fn essence(obj: &Value) -> Value {
    let recorded: Value = obj["metadata"]["annotations"][ORIGINAL_IMAGES]
        .as_str()
        .and_then(|s| serde_json::from_str(s).ok())
        .unwrap_or(Value::Null);
    json!({"kind": obj["kind"], "name": obj["metadata"]["name"], "images": images(obj), "recorded": recorded})
}

fn images(obj: &Value) -> Vec<String> {
    let spec = match obj["kind"].as_str() {
        Some("Pod") => &obj["spec"],
        Some("CronJob") => &obj["spec"]["jobTemplate"]["spec"]["template"]["spec"],
        _ => &obj["spec"]["template"]["spec"],
    };
    ["containers", "initContainers"]
        .iter()
        .flat_map(|l| spec[l].as_array().cloned().unwrap_or_default())
        .filter_map(|c| c["image"].as_str().map(str::to_owned))
        .collect()
}

/// A Pod as a controller makes it: owned by `owner` (kind, object as stored), from `spec`.
fn owned_pod(name: &str, owner: (&str, &Value), spec: &Value) -> Value {
    let (kind, obj) = owner;
    let api_version = obj["apiVersion"].as_str().unwrap_or("apps/v1");
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": NS, "ownerReferences": [{
            "apiVersion": api_version, "kind": kind, "name": obj["metadata"]["name"],
            "uid": obj["metadata"]["uid"], "controller": true, "blockOwnerDeletion": true}]},
        "spec": spec,
    })
}

fn pod_spec_of(obj: &Value) -> Value {
    obj["spec"]["template"]["spec"].clone()
}

fn start(env: &Env, settings: &[(&str, String)]) -> Daemon {
    let extra: Vec<(&str, &str)> = settings.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let daemon = Daemon::start(env.cloner(&[NS], &extra));
    wait(
        Duration::from_secs(30),
        "the daemon serves its webhooks",
        || daemon.log().contains("serving the admission webhooks"),
    );
    daemon
}

/// The API server reads webhook configurations through an informer, and may hold a connection
/// to a daemon that was restarted: dry-run creates until one comes back as `ready` says.
fn until_effective(
    run: &Run,
    daemon: &Daemon,
    probe: &Value,
    ready: impl Fn(&str, &Value) -> bool,
) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let out = run.kubectl.create(probe, &["--dry-run=server"]);
        let stored = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        let stderr = String::from_utf8_lossy(&out.stderr);
        if ready(&stderr, &stored) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the webhooks did not take effect within 30 s; last try: stderr {stderr:?} stdout {:?}\ndaemon log:\n{}",
            String::from_utf8_lossy(&out.stdout),
            daemon.log()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn scenario(env: &Env) -> Vec<(String, Value)> {
    let hooks = Hooks::new();
    let mut run = Run {
        env,
        hooks: &hooks,
        kubectl: Kubectl::new(env),
        steps: Vec::new(),
    };
    let app = env.images.app.0.clone();
    let copy = env.run(&[NS], &[], &["copy", &app]);
    assert!(copy.status.success(), "{}", common::e2e::text(&copy));
    let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS, "labels": {SELECTOR_LABEL: "on"}}});
    // Made before the webhooks exist: a Job on the public image, as a Job made before the copy.
    let old_job = workload("Job", NS, "old-report", &[("report", &app)], &[], json!({}));
    run.kubectl.apply(&[ns, old_job.clone()]);
    let old_job = env.get("Job", NS, "old-report");

    let mut daemon = start(env, &hooks.settings("deny"));
    run.kubectl
        .apply(&configurations(&hooks.address(), Some(&hooks.ca_bundle())));
    let probe = workload("Deployment", NS, "probe", &[("app", &app)], &[], json!({}));
    until_effective(&run, &daemon, &probe, |_, stored| {
        images(stored)
            .first()
            .is_some_and(|i| i.starts_with(&env.backup_host))
    });

    verified_images_are_stored_on_their_copies(&mut run, &app, &old_job);
    denied_until_copied(&mut run);

    assert_eq!(daemon.stop(), Some(0), "{}", daemon.log());
    let mut daemon = start(env, &hooks.settings("warn"));
    warned_then_patched(&mut run, &daemon);
    assert_eq!(daemon.stop(), Some(0), "{}", daemon.log());
    let down = workload(
        "Deployment",
        NS,
        "while-down",
        &[("app", &app)],
        &[],
        json!({}),
    );
    let stored = run.create(
        "daemon stopped: created unchanged (failurePolicy Ignore)",
        &down,
        &[],
    );
    assert_eq!(images(&stored.expect("admitted")), [app]);
    assert_eq!(run.steps.last().expect("a step").1["messages"], json!([]));
    run.steps
}

/// `warn`: an image not in the backup is admitted unchanged with a warning, and the daemon
/// then copies it and patches the workload as it does without webhooks.
fn warned_then_patched(run: &mut Run, daemon: &Daemon) {
    let env = run.env;
    let fresh = env.push_fresh("hooks/fresh", 31);
    let probe = workload(
        "Deployment",
        NS,
        "probe",
        &[("app", &fresh)],
        &[],
        json!({}),
    );
    until_effective(run, daemon, &probe, |stderr, _| {
        stderr.contains("Warning: image-cloner")
    });
    let warned = workload(
        "Deployment",
        NS,
        "warned",
        &[("app", &fresh)],
        &[],
        json!({}),
    );
    let stored = run.create(
        "warn: admitted unchanged, kubectl prints the warning",
        &warned,
        &[],
    );
    assert_eq!(images(&stored.expect("admitted")), [fresh]);
    let messages = run.steps.last().expect("a step").1["messages"].to_string();
    assert!(
        messages.contains("Warning: image-cloner") && messages.contains("SOURCE/hooks/fresh:1, which is not in the backup registry; its copy BACKUP/mirror/SOURCE_hooks_fresh:1 is queued"),
        "{messages}"
    );
    env.eventually(
        Duration::from_secs(60),
        "the daemon patches it as today",
        || env.resolves_in_backup(&env.images("Deployment", NS, "warned")[0]),
    );
}

fn verified_images_are_stored_on_their_copies(run: &mut Run, app: &str, old_job: &Value) {
    let web = workload("Deployment", NS, "web", &[("app", app)], &[], json!({}));
    let web = run.create_on_copy("a Deployment on a copied image is stored on the copy", &web);
    let job = workload("Job", NS, "report", &[("report", app)], &[], json!({}));
    let job = run.create_on_copy("a Job on a copied image is stored on the copy", &job);
    let bare = workload("Pod", NS, "debug", &[("shell", app)], &[], json!({}));
    run.create_on_copy("a bare Pod is stored on the copy", &bare);
    let pod = owned_pod("report-1", ("Job", &job), &pod_spec_of(&job));
    run.create_on_copy("the Job's Pod runs the copy", &pod);
    let pod = owned_pod("old-report-1", ("Job", old_job), &pod_spec_of(old_job));
    run.create_on_copy("a Pod of a Job made before the copy runs the copy", &pod);

    let argo = json!({"annotations": {"argocd.argoproj.io/tracking-id": "shop:apps/Deployment:hooks/gitops-web"}});
    let gitops = workload("Deployment", NS, "gitops-web", &[("app", app)], &[], argo);
    let gitops = run
        .create(
            "a GitOps-managed Deployment's template is left alone",
            &gitops,
            &[],
        )
        .expect("created");
    assert_eq!(images(&gitops), [app]);
    let rs = replica_set("gitops-web-1", &gitops);
    let rs = run
        .create("its ReplicaSet is left to the Deployment", &rs, &[])
        .expect("created");
    assert_eq!(images(&rs), [app]);
    assert_eq!(images(&rs), [app]);
    let pod = owned_pod("gitops-web-1-a", ("ReplicaSet", &rs), &pod_spec_of(&rs));
    run.create_on_copy("the GitOps-managed Deployment's Pod runs the copy", &pod);

    let rs = run.create(
        "a ReplicaSet of a patched Deployment",
        &replica_set("web-1", &web),
        &[],
    );
    let rs = rs.expect("created");
    let public = json!({"containers": [{"name": "app", "image": app}], "restartPolicy": "Always"});
    let pod = owned_pod("web-1-a", ("ReplicaSet", &rs), &public);
    let stored = run.create("a Pod of a patched Deployment is left to it", &pod, &[]);
    assert_eq!(images(&stored.expect("created")), [app]);

    let set = run.kubectl.run(&[
        "-n",
        NS,
        "set",
        "image",
        "deployment/web",
        &format!("app={app}"),
        "-o",
        "json",
    ]);
    let stored: Value = serde_json::from_slice(&set.stdout).expect("the updated Deployment");
    assert!(
        run.env.resolves_in_backup(&images(&stored)[0]),
        "re-applying the original keeps the copy"
    );
    let text = run.normalise(&serde_json::to_string(&essence(&stored)).expect("json"));
    run.steps.push((
        "update back to the original image: still the copy".into(),
        serde_json::from_str(&text).expect("json"),
    ));
}

/// A ReplicaSet as the Deployment controller makes it from `deployment`.
fn replica_set(name: &str, deployment: &Value) -> Value {
    let mut rs = workload("ReplicaSet", NS, name, &[], &[], json!({}));
    rs["spec"]["template"] = deployment["spec"]["template"].clone();
    rs["spec"]["selector"] = deployment["spec"]["selector"].clone();
    rs["metadata"]["ownerReferences"] = json!([{
        "apiVersion": "apps/v1", "kind": "Deployment", "name": deployment["metadata"]["name"],
        "uid": deployment["metadata"]["uid"], "controller": true, "blockOwnerDeletion": true}]);
    rs
}

fn denied_until_copied(run: &mut Run) {
    let multi = run.env.images.multi.0.clone();
    let obj = workload(
        "Deployment",
        NS,
        "multi-web",
        &[("web", &multi)],
        &[],
        json!({}),
    );
    let refused = run.create("deny: an image not in the backup is refused", &obj, &[]);
    assert!(refused.is_none());
    let (_, last) = run.steps.last().expect("a step");
    let message = last["messages"].to_string();
    for needle in [
        "denied the request",
        "multi",
        "its backup copy will be BACKUP/mirror/",
        "queued",
        "the same apply succeeds",
        "image-cloner copy",
    ] {
        assert!(message.contains(needle), "{needle:?} not in {message}");
    }
    wait(
        Duration::from_secs(60),
        "the same create succeeds once the copy is verified",
        || {
            run.kubectl
                .create(&obj, &["--dry-run=server"])
                .status
                .success()
        },
    );
    run.create_on_copy(
        "the same create, once the copy is verified: stored on it",
        &obj,
    );
}

#[test]
fn the_same_scenario_on_the_simulator_and_the_real_api_server() {
    let dir = tempfile::tempdir().expect("temp dir");
    let sim = scenario(&Env::on_simulator(dir.path()));
    let Some(envtest) = Envtest::start() else {
        eprintln!("SKIPPED on the real API server: set KUBEBUILDER_ASSETS (see README)");
        return;
    };
    let real = scenario(&Env::new("envtest", &envtest.kubeconfig()));
    assert_eq!(sim.len(), real.len());
    for ((step, s), (_, r)) in sim.iter().zip(&real) {
        assert_eq!(
            s, r,
            "step {step:?}: simulator (left) and kube-apiserver 1.20 (right) differ"
        );
    }
}

/// `webhook_tls = self-signed`: the daemon makes a CA, writes it into the configurations
/// named image-cloner (registered without a caBundle) and serves a certificate the API server
/// trusts for the configured URL's host.
fn self_signed(env: &Env) {
    let kubectl = Kubectl::new(env);
    let address = format!("127.0.0.1:{}", free_port());
    let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS, "labels": {SELECTOR_LABEL: "on"}}});
    kubectl.apply(&[ns]);
    kubectl.apply(&configurations(&address, None));
    let daemon = start(
        env,
        &[
            ("IMAGE_CLONER_MUTATING_WEBHOOK", "on".into()),
            ("IMAGE_CLONER_VALIDATING_WEBHOOK", "warn".into()),
            ("IMAGE_CLONER_WEBHOOK_TLS", "self-signed".into()),
            ("IMAGE_CLONER_WEBHOOK_ADDRESS", address),
        ],
    );
    for kind in [
        "mutatingwebhookconfiguration",
        "validatingwebhookconfiguration",
    ] {
        wait(
            Duration::from_secs(30),
            "the daemon writes its CA bundle",
            || {
                let out = kubectl.run(&[
                    "get",
                    kind,
                    "image-cloner",
                    "-o",
                    "jsonpath={.webhooks[0].clientConfig.caBundle}",
                ]);
                String::from_utf8_lossy(&out.stdout).len() > 100
            },
        );
    }
    let run = Run {
        env,
        hooks: &Hooks::new(),
        kubectl,
        steps: Vec::new(),
    };
    let app = env.images.app.0.clone();
    let probe = workload("Deployment", NS, "probe", &[("app", &app)], &[], json!({}));
    // The API server trusts the generated certificate: the validating webhook's warning.
    until_effective(&run, &daemon, &probe, |stderr, _| {
        stderr.contains("Warning: image-cloner")
    });
    // A real create queues the copy (a dry run never does); once verified, creates get it.
    let first = workload("Deployment", NS, "first", &[("app", &app)], &[], json!({}));
    assert!(run.kubectl.create(&first, &[]).status.success());
    until_effective(&run, &daemon, &probe, |_, stored| {
        images(stored)
            .first()
            .is_some_and(|i| env.resolves_in_backup(i))
    });
    let log = daemon.log();
    assert!(
        log.contains("generated a CA and a webhook certificate"),
        "{log}"
    );
    assert!(log.contains("wrote the webhook CA bundle"), "{log}");
}

/// A webhook start that fails stops the daemon with the error naming its cause: a webhook
/// address another process holds (with either kind of certificate), a key that is not the
/// certificate's (the settings check each file's PEM, not the pair). All three fail
/// after the webhooks' own runtime is built; each panicked while dropping it ("Cannot drop a
/// runtime in a context where blocking is not allowed", exit 101), and the log never said why
/// the daemon had stopped.
#[test]
fn a_webhook_start_that_fails_stops_the_daemon_with_the_error_naming_its_cause() {
    let dir = tempfile::tempdir().expect("temp dir");
    let env = Env::on_simulator(dir.path());
    let held = std::net::TcpListener::bind("127.0.0.1:0").expect("a port to hold");
    let taken = held.local_addr().expect("its address").to_string();
    let hooks = Hooks::new();
    let other = Hooks::new();
    let other_key = &other.key_file;
    let files = |address: &str, cert: &std::path::Path, key: &std::path::Path| {
        vec![
            ("IMAGE_CLONER_MUTATING_WEBHOOK", "on".to_owned()),
            ("IMAGE_CLONER_WEBHOOK_ADDRESS", address.to_owned()),
            ("IMAGE_CLONER_WEBHOOK_CERT_FILE", cert.display().to_string()),
            ("IMAGE_CLONER_WEBHOOK_KEY_FILE", key.display().to_string()),
        ]
    };
    let in_use =
        format!("cannot listen on {taken} for the admission webhooks: Address already in use");
    let cases = [
        (
            files(&taken, &hooks.cert_file, &hooks.key_file),
            in_use.clone(),
        ),
        (
            vec![
                ("IMAGE_CLONER_MUTATING_WEBHOOK", "on".to_owned()),
                ("IMAGE_CLONER_WEBHOOK_TLS", "self-signed".to_owned()),
                ("IMAGE_CLONER_WEBHOOK_ADDRESS", taken.clone()),
            ],
            in_use,
        ),
        (
            files(&hooks.address(), &hooks.cert_file, other_key),
            format!(
                "the webhook certificate {} and key {} do not make a usable TLS identity: the key is not the certificate's",
                hooks.cert_file.display(),
                other_key.display()
            ),
        ),
    ];
    for (settings, expected) in cases {
        let extra: Vec<(&str, &str)> = settings.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let daemon = Daemon::start(env.cloner(&[NS], &extra));
        let code = daemon.exit_within(Duration::from_secs(60));
        let log = daemon.log();
        assert_eq!(code, Some(1), "{expected}: {log}");
        let expected = format!("image-cloner: {expected}");
        assert!(log.contains(&expected), "expected {expected:?} in:\n{log}");
        assert!(!log.contains("panicked"), "{log}");
    }
    drop(held);
}

#[test]
fn a_self_signed_ca_is_written_into_the_configurations_and_trusted() {
    let dir = tempfile::tempdir().expect("temp dir");
    self_signed(&Env::on_simulator(dir.path()));
    let Some(envtest) = Envtest::start() else {
        return;
    };
    self_signed(&Env::new("envtest", &envtest.kubeconfig()));
}
