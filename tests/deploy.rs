//! `make deploy` against a real API server, and the RBAC it grants, proven with
//! `kubectl auth can-i` as the daemon's ServiceAccount: every verb the daemon uses is allowed,
//! nothing else is — with the pull-secrets component, create on Secrets and get, patch and
//! delete of the Secrets named `image-cloner-pull`, and no other Secret.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::cluster::Envtest;

const SA: &str = "system:serviceaccount:image-cloner:image-cloner";

fn kubectl(kubeconfig: &Path, args: &[&str]) -> Output {
    Command::new("kubectl")
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .output()
        .expect("run kubectl (install Debian's kubernetes-client)")
}

fn make(kubeconfig: &Path, target: &str, vars: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new("make");
    cmd.arg("--no-print-directory")
        .arg(target)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("KUBECONFIG", kubeconfig);
    for (k, v) in vars {
        cmd.arg(format!("{k}={v}"));
    }
    cmd.output().expect("run make")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn can(kubeconfig: &Path, verb: &str, resource: &str, namespace: Option<&str>) -> bool {
    let mut args = vec!["auth", "can-i", verb, resource, "--as", SA];
    match namespace {
        Some(ns) => args.extend(["-n", ns]),
        None => args.push("--all-namespaces"),
    }
    let out = kubectl(kubeconfig, &args);
    String::from_utf8_lossy(&out.stdout).trim() == "yes"
}

/// `make deploy` with the image, backup registry and credentials of an operator, then
/// `kubectl get` of every object it creates.
fn deploy_and_get_everything(kc: &Path) {
    let dir = tempfile::tempdir().expect("a temp dir");
    let docker_config = dir.path().join("config.json");
    std::fs::write(&docker_config, r#"{"auths":{"quay.io":{"auth":"dTpw"}}}"#)
        .expect("write the docker config");

    let out = make(
        kc,
        "deploy",
        &[
            ("IMAGE", "quay.io/acme/image-cloner:1.0"),
            ("BACKUP_REGISTRY", "registry.example.com/backup"),
            (
                "DOCKER_CONFIG_FILE",
                docker_config.to_str().expect("a UTF-8 path"),
            ),
        ],
    );
    assert!(out.status.success(), "{}", text(&out));

    let got = kubectl(
        kc,
        &[
            "get",
            "namespace/image-cloner",
            "clusterrole/image-cloner",
            "clusterrolebinding/image-cloner",
            "-n",
            "image-cloner",
            "serviceaccount/image-cloner",
            "configmap/image-cloner-configuration",
            "secret/image-cloner-registry-credentials",
            "deployment/image-cloner",
            "service/image-cloner-metrics",
            "-o",
            "name",
        ],
    );
    assert!(got.status.success(), "{}", text(&got));
    assert_eq!(String::from_utf8_lossy(&got.stdout).lines().count(), 8);

    let image = kubectl(
        kc,
        &[
            "-n",
            "image-cloner",
            "get",
            "deployment/image-cloner",
            "-o",
            "jsonpath={.spec.template.spec.containers[0].image}",
        ],
    );
    assert_eq!(
        String::from_utf8_lossy(&image.stdout),
        "quay.io/acme/image-cloner:1.0"
    );
    let backup = kubectl(
        kc,
        &[
            "-n",
            "image-cloner",
            "get",
            "configmap/image-cloner-configuration",
            "-o",
            "jsonpath={.data.BACKUP_REGISTRY}",
        ],
    );
    assert_eq!(
        String::from_utf8_lossy(&backup.stdout),
        "registry.example.com/backup"
    );
    let pull_secret = kubectl(
        kc,
        &[
            "-n",
            "image-cloner",
            "get",
            "configmap/image-cloner-configuration",
            "-o",
            "jsonpath={.data.IMAGE_CLONER_PULL_SECRET}",
        ],
    );
    assert_eq!(
        String::from_utf8_lossy(&pull_secret.stdout),
        PULL_SECRET,
        "the in-cluster manifests provision pull secrets"
    );
}

/// The name the pull-secrets component grants and configures.
const PULL_SECRET: &str = "image-cloner-pull";

#[test]
fn make_deploy_and_undeploy_on_the_simulator() {
    let sim = kube_sim::Sim::start(kube_sim::Options::default()).expect("start kube-sim");
    let dir = tempfile::tempdir().expect("a temp dir");
    let kc = dir.path().join("kubeconfig");
    sim.write_kubeconfig(&kc).expect("write the kubeconfig");
    deploy_and_get_everything(&kc);
    let got = kubectl(&kc, &["get", "all", "-n", "image-cloner"]);
    eprintln!("{}", text(&got));
    let out = make(&kc, "undeploy", &[]);
    assert!(out.status.success(), "{}", text(&out));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while kubectl(&kc, &["get", "namespace/image-cloner"])
        .status
        .success()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the namespace is finalized"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let gone = kubectl(&kc, &["get", "clusterrole/image-cloner"]);
    assert!(!gone.status.success(), "the ClusterRole is removed");
}

#[test]
fn make_deploy_on_the_real_api_server_grants_exactly_what_the_daemon_uses() {
    let Some(envtest) = Envtest::start() else {
        return;
    };
    let kc = envtest.kubeconfig();
    deploy_and_get_everything(&kc);

    // Every verb the daemon uses...
    for (verb, resource) in [
        ("list", "deployments.apps"),
        ("watch", "statefulsets.apps"),
        ("get", "daemonsets.apps"),
        ("patch", "deployments.apps"),
        ("patch", "statefulsets.apps"),
        ("patch", "daemonsets.apps"),
        ("patch", "replicasets.apps"),
        ("patch", "cronjobs.batch"),
        ("list", "jobs.batch"),
        ("watch", "jobs.batch"),
        ("list", "namespaces"),
        ("create", "events.events.k8s.io"),
        ("patch", "events.events.k8s.io"),
    ] {
        assert!(
            can(&kc, verb, resource, None),
            "{SA} cannot {verb} {resource}"
        );
    }
    // The pull secret, in any namespace: created, read, updated, and deleted by restore.
    let named = format!("secrets/{PULL_SECRET}");
    for (verb, resource, ns) in [
        ("create", "secrets", "shop"),
        ("get", named.as_str(), "shop"),
        ("patch", named.as_str(), "shop"),
        ("delete", named.as_str(), "shop"),
        ("get", named.as_str(), "kube-system"),
    ] {
        assert!(
            can(&kc, verb, resource, Some(ns)),
            "{SA} cannot {verb} {resource} in {ns}"
        );
    }
    // ...and nothing more.
    for (verb, resource, ns) in [
        ("list", "secrets", None),
        ("watch", "secrets", None),
        ("list", "secrets", Some("shop")),
        ("watch", "secrets", Some("shop")),
        ("get", "secrets", Some("kube-system")),
        ("get", "secrets", Some("image-cloner")),
        (
            "get",
            "secrets/image-cloner-registry-credentials",
            Some("image-cloner"),
        ),
        ("get", "secrets/some-app-password", Some("shop")),
        ("patch", "secrets/some-app-password", Some("shop")),
        ("delete", "secrets/some-app-password", Some("shop")),
        ("delete", "secrets", Some("shop")),
        ("update", "secrets/image-cloner-pull", Some("shop")),
        ("deletecollection", "secrets", Some("shop")),
        ("delete", "deployments.apps", None),
        ("create", "deployments.apps", None),
        ("update", "deployments.apps", None),
        ("patch", "jobs.batch", None),
        ("patch", "pods", None),
        ("create", "pods", None),
        ("patch", "namespaces", None),
        ("delete", "events.events.k8s.io", None),
        (
            "create",
            "clusterrolebindings.rbac.authorization.k8s.io",
            None,
        ),
        ("*", "*", None),
    ] {
        assert!(
            !can(&kc, verb, resource, ns),
            "{SA} can {verb} {resource} in {ns:?}, which it never needs"
        );
    }

    let out = make(&kc, "undeploy", &[]);
    assert!(out.status.success(), "{}", text(&out));
    let gone = kubectl(&kc, &["get", "clusterrole/image-cloner"]);
    assert!(!gone.status.success(), "the ClusterRole is removed");
}
