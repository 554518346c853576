//! The container image as the manifests deploy it. `make container-test` builds the image from
//! the Containerfile around the release binary (on a Debian base made with mmdebstrap, no
//! registry needed) and runs these tests, which start it with podman under the Deployment's
//! securityContext (`podman::Run`) against real registries (testbed) and the API simulator.
//!
//! A plain `cargo test` lists them as ignored: they need podman and the image.

mod fixture;
mod podman;

use std::time::{Duration, Instant};

use base64::Engine as _;

use fixture::{CERT_DIR, Cluster, DOCKER_DIR, KUBE_DIR, Registries};
use kube_sim::fixtures::workload;
use podman::{Container, Run, image, inspect_image, require_image, text};
use serde_json::json;

/// What the user running the image is, and what the Deployment expects of it.
const USER: &str = "65532:65532";

/// `Run` with the backup registry, its credentials and both registries' CAs, mounted
/// read-only where the Deployment mounts its Secret; the pull secret as the manifests'
/// ConfigMap sets it (the backup here is private).
fn with_registries(r: &Registries) -> Run {
    Run::new()
        .deployment_env()
        .env("BACKUP_REGISTRY", &r.backup_registry())
        .env("IMAGE_CLONER_PULL_SECRET", "image-cloner-pull")
        .env("IMAGE_CLONER_CERT_DIR", CERT_DIR)
        .mount(&r.docker_dir(), DOCKER_DIR)
        .mount(&r.cert_dir(), CERT_DIR)
}

/// `with_registries` and the simulator's kubeconfig.
fn with_cluster(r: &Registries, cluster: &Cluster) -> Run {
    with_registries(r)
        .env("IMAGE_CLONER_KUBECONFIG", &format!("{KUBE_DIR}/config"))
        .mount(cluster.kube_dir.path(), KUBE_DIR)
}

#[test]
#[ignore = "needs podman and the image: make container-test"]
fn the_image_runs_as_65532_with_only_tmp_writable() {
    require_image();
    let user = inspect_image("{{.Config.User}}");
    let size: u64 = inspect_image("{{.Size}}").parse().expect("a size in bytes");
    let layers = inspect_image("{{len .RootFS.Layers}}");
    println!(
        "image {}: {:.1} MB, {layers} layers, user {user}",
        image(),
        size as f64 / 1e6
    );
    assert_eq!(user, USER, "the image's user");
    assert_eq!(
        inspect_image("{{json .Config.Entrypoint}}"),
        r#"["image-cloner"]"#
    );
    assert_eq!(inspect_image("{{json .Config.Cmd}}"), r#"["run"]"#);

    let id = Run::new().entrypoint("id").output(&[]);
    assert!(id.status.success(), "{}", text(&id.stderr));
    assert_eq!(text(&id.stdout).trim(), "uid=65532 gid=65532 groups=65532");

    let tmp = Run::new().entrypoint("touch").output(&["/tmp/probe"]);
    assert!(tmp.status.success(), "/tmp: {}", text(&tmp.stderr));
    for path in [
        "/probe",
        "/etc/probe",
        "/usr/local/bin/probe",
        "/var/tmp/probe",
    ] {
        let out = Run::new().entrypoint("touch").output(&[path]);
        assert!(!out.status.success(), "{path} is writable");
        let err = text(&out.stderr);
        assert!(err.contains("Read-only file system"), "{path}: {err}");
    }

    let skopeo = Run::new().entrypoint("skopeo").output(&["--version"]);
    assert!(skopeo.status.success(), "{}", text(&skopeo.stderr));
    assert!(text(&skopeo.stdout).starts_with("skopeo version "));
}

#[test]
#[ignore = "needs podman and the image: make container-test"]
fn check_config_takes_the_configmaps_three_settings_from_the_environment() {
    require_image();
    fixture::assert_deployment_matches();
    let data = fixture::configmap_data();
    let secret = tempfile::tempdir().expect("a temp dir");
    let password = "never-shown-by-check-config";
    let creds = testbed::Credentials::new("cloner", password);
    let config = secret.path().join("config.json");
    testbed::write_docker_config(&config, &[("quay.io", &creds)]).expect("write");
    fixture::readable_by_all(secret.path());
    let mut run = Run::new().deployment_env().mount(secret.path(), DOCKER_DIR);
    for (name, value) in &data {
        run = run.env(name, value);
    }
    let out = run.output(&["check-config"]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    for (name, value) in &data {
        let key = name.to_ascii_lowercase();
        let line = stdout
            .lines()
            .find(|l| l.split(' ').next() == Some(key.as_str()))
            .unwrap_or_else(|| panic!("no {key} in:\n{stdout}"));
        assert!(line.contains(&format!("= {value} ")), "{line}");
        assert!(
            line.ends_with(&format!("# environment variable {name}")),
            "{line}"
        );
    }
    // What the image itself provides: skopeo on PATH, the metrics address of its ENV.
    assert!(stdout.contains("= /usr/bin/skopeo "), "{stdout}");
    assert!(stdout.contains("= 0.0.0.0:9090 "), "{stdout}");
    let docker = format!("= {DOCKER_DIR}/config.json ");
    assert!(stdout.contains(&docker), "{stdout}");
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("cloner:{password}"));
    for secret in [password, &auth] {
        assert!(!stdout.contains(secret), "a credential in:\n{stdout}");
    }
}

#[test]
#[ignore = "needs podman and the image: make container-test"]
fn copy_moves_a_multi_arch_image_between_two_registries_digest_identical() {
    require_image();
    let r = Registries::start();
    let (source, digest) = r.push_multi_arch("team/web", "1.27", 1);

    let out = with_registries(&r).output(&["copy", &source]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    let backup = r.backup_ref("team/web", "1.27", &digest);
    assert!(
        stdout.contains(&format!("{source} → {backup} (copied)")),
        "{stdout}"
    );
    assert!(
        stdout.contains("1 image(s): 1 copied, 0 already in backup, 0 failed"),
        "{stdout}"
    );

    // On the host, with skopeo inspect --raw: the index arrived byte for byte, and so did
    // every platform's manifest.
    let path = r.backup_path("team/web", "1.27");
    let copied = testbed::inspect_raw(&r.backup, &path).expect("inspect the copy");
    let original = testbed::inspect_raw(&r.source, "team/web:1.27").expect("inspect the source");
    assert_eq!(copied, original, "the index differs");
    assert_eq!(testbed::manifest_digest(&copied), digest);
    let index: serde_json::Value = serde_json::from_slice(&copied).expect("an index");
    let platforms = index["manifests"].as_array().expect("an index's manifests");
    assert_eq!(platforms.len(), 2, "{index}");
    for m in platforms {
        let d = m["digest"].as_str().expect("a digest");
        let repo = path.split(':').next().expect("repo:tag");
        let found = testbed::digest_of(&r.backup, &format!("{repo}@{d}")).expect("inspect");
        assert_eq!(found.as_deref(), Some(d), "platform {}", m["platform"]);
    }
}

#[test]
#[ignore = "needs podman and the image: make container-test"]
fn run_once_patches_every_workload_on_the_simulator() {
    require_image();
    let r = Registries::start();
    let web = r.push_multi_arch("team/web", "1.27", 1);
    let agent = r.push_multi_arch("tools/agent", "2.0", 2);
    let kinds = [
        ("Deployment", "web", &web, "team/web", "1.27"),
        ("StatefulSet", "db", &web, "team/web", "1.27"),
        ("DaemonSet", "agent", &agent, "tools/agent", "2.0"),
        ("CronJob", "report", &agent, "tools/agent", "2.0"),
        ("ReplicaSet", "legacy", &web, "team/web", "1.27"),
    ];
    let objects: Vec<_> = kinds
        .iter()
        .map(|(kind, name, (image, _), _, _)| {
            workload(kind, "shop", name, &[("main", image)], &[], json!({}))
        })
        .collect();
    let cluster = Cluster::start(&objects);

    let out = with_cluster(&r, &cluster).output(&["run", "--once"]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.contains("5 workload(s): 5 patched (5 image(s))"),
        "{stdout}"
    );
    assert!(stdout.contains("0 failed; 2 cop(y/ies) made"), "{stdout}");

    for (kind, name, (image, digest), repo, tag) in kinds {
        let object = cluster.get(kind, name);
        let container = &fixture::pod_spec(&object)["containers"][0];
        assert_eq!(
            container["image"],
            r.backup_ref(repo, tag, digest),
            "{kind} {name}"
        );
        let original = object["metadata"]["annotations"]["image-cloner.io/original-images"]
            .as_str()
            .unwrap_or_else(|| panic!("{kind} {name} has no original-images annotation"));
        assert!(
            original.contains(image.as_str()),
            "{kind} {name}: {original}"
        );
        let in_backup = testbed::digest_of(&r.backup, &r.backup_path(repo, tag)).expect("inspect");
        assert_eq!(in_backup.as_deref(), Some(digest.as_str()));
    }
}

#[test]
#[ignore = "needs podman and the image: make container-test"]
fn the_daemon_serves_health_and_metrics_as_65532_and_stops_on_sigterm() {
    require_image();
    let r = Registries::start();
    let (image, digest) = r.push_multi_arch("team/web", "1.27", 3);
    let cluster = Cluster::start(&[workload(
        "Deployment",
        "shop",
        "web",
        &[("web", &image)],
        &[],
        json!({}),
    )]);
    let port = fixture::free_port();
    let container = with_cluster(&r, &cluster)
        .env("IMAGE_CLONER_METRICS_ADDRESS", &format!("127.0.0.1:{port}"))
        .start(&["run"]);

    // Ready, and the one workload patched (the daemon did its work inside the container).
    let metrics = metrics_once(port, &container, "image_cloner_workloads_patched_total 1");
    assert_eq!(
        fixture::http_get(port, "/healthz").map(|(s, _)| s),
        Some(200)
    );
    for name in [
        "image_cloner_copies_total",
        "image_cloner_copy_duration_seconds",
        "image_cloner_copies_in_flight",
        "image_cloner_images_mirrored_total",
        "image_cloner_last_successful_reconcile_timestamp_seconds",
    ] {
        assert!(metrics.contains(name), "no {name} in:\n{metrics}");
    }
    let web = cluster.get("Deployment", "web");
    let patched = &fixture::pod_spec(&web)["containers"][0]["image"];
    assert_eq!(*patched, r.backup_ref("team/web", "1.27", &digest));

    assert_unprivileged(&container);

    // SIGTERM, as the kubelet sends it: a clean exit within the grace period, JSON logs.
    assert_eq!(container.stop(30), 0, "{}", container.logs());
    let logs = container.logs();
    let first = logs.lines().next().expect("the daemon logged");
    serde_json::from_str::<serde_json::Value>(first)
        .unwrap_or_else(|e| panic!("not a JSON log line ({e}): {first}"));
}

/// `/metrics` once `/readyz` answers 200 and the metrics hold `line`; panics with the
/// container's logs after two minutes.
fn metrics_once(port: u16, container: &Container, line: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let ready = fixture::http_get(port, "/readyz").is_some_and(|(s, _)| s == 200);
        if let Some((200, body)) = fixture::http_get(port, "/metrics")
            && ready
            && body.contains(line)
        {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "not ready with {line:?} within 120 s; logs:\n{}",
            container.logs()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// The container's processes, seen from the host: uid and gid 65532 (real, effective, saved,
/// filesystem), no capability, no privilege escalation; and no other user in `podman top`.
fn assert_unprivileged(container: &Container) {
    let status = std::fs::read_to_string(format!("/proc/{}/status", container.pid()))
        .expect("read the daemon's /proc status");
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}:")))
            .unwrap_or_else(|| panic!("no {name} in {status}"))
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert_eq!(field("Uid"), "65532 65532 65532 65532");
    assert_eq!(field("Gid"), "65532 65532 65532 65532");
    assert_eq!(field("CapEff"), "0000000000000000");
    assert_eq!(field("CapPrm"), "0000000000000000");
    assert_eq!(field("NoNewPrivs"), "1");
    let users = podman::podman_ok(&["top", container.name(), "user", "comm"]);
    assert!(users.contains("image-cloner"), "{users}");
    for line in users.lines().skip(1) {
        assert!(
            line.starts_with("65532 "),
            "a process not run by 65532: {line}"
        );
    }
}
