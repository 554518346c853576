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

/// `make deploy` writes its overlay to target/deploy/: one make at a time, or a test's overlay
/// (WEBHOOKS=1) could be applied by another.
static MAKE: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn make(kubeconfig: &Path, target: &str, vars: &[(&str, &str)]) -> Output {
    let _one_at_a_time = MAKE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
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
/// `kubectl get` of every object it creates (the PodDisruptionBudget where the server serves
/// policy/v1, Kubernetes 1.21 and later).
fn deploy_and_get_everything(kc: &Path, pdb: bool) {
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
            "role/image-cloner-leader-election",
            "rolebinding/image-cloner-leader-election",
            "-o",
            "name",
        ],
    );
    assert!(got.status.success(), "{}", text(&got));
    assert_eq!(String::from_utf8_lossy(&got.stdout).lines().count(), 10);
    let budget = kubectl(
        kc,
        &[
            "-n",
            "image-cloner",
            "get",
            "poddisruptionbudget/image-cloner",
            "-o",
            "name",
        ],
    );
    assert_eq!(budget.status.success(), pdb, "{}", text(&budget));
    let replicas = kubectl(
        kc,
        &[
            "-n",
            "image-cloner",
            "get",
            "deployment/image-cloner",
            "-o",
            "jsonpath={.spec.replicas} {.spec.strategy.type}",
        ],
    );
    assert_eq!(String::from_utf8_lossy(&replicas.stdout), "2 RollingUpdate");

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
    deploy_and_get_everything(&kc, true);
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
    // kube-apiserver 1.20 serves no policy/v1: make deploy leaves the budget out.
    deploy_and_get_everything(&kc, false);

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
        // The rollout guard's watch of Pending Pods.
        ("list", "pods"),
        ("watch", "pods"),
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
    // Leader election: its Lease, in its namespace.
    for verb in ["get", "list", "watch", "patch"] {
        let lease = "leases.coordination.k8s.io/image-cloner";
        assert!(
            can(&kc, verb, lease, Some("image-cloner")),
            "{SA} cannot {verb} {lease}"
        );
    }
    assert!(can(
        &kc,
        "create",
        "leases.coordination.k8s.io",
        Some("image-cloner")
    ));
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
        ("get", "pods", None),
        ("delete", "pods", None),
        ("patch", "namespaces", None),
        ("delete", "events.events.k8s.io", None),
        (
            "create",
            "clusterrolebindings.rbac.authorization.k8s.io",
            None,
        ),
        ("*", "*", None),
        // Other Leases (kube-controller-manager's, other controllers'), elsewhere, or deleted.
        (
            "patch",
            "leases.coordination.k8s.io/kube-controller-manager",
            Some("kube-system"),
        ),
        (
            "get",
            "leases.coordination.k8s.io/other",
            Some("image-cloner"),
        ),
        ("list", "leases.coordination.k8s.io", Some("image-cloner")),
        (
            "update",
            "leases.coordination.k8s.io/image-cloner",
            Some("image-cloner"),
        ),
        (
            "delete",
            "leases.coordination.k8s.io/image-cloner",
            Some("image-cloner"),
        ),
        ("create", "leases.coordination.k8s.io", Some("default")),
        (
            "get",
            "leases.coordination.k8s.io/image-cloner",
            Some("default"),
        ),
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

/// `make deploy WEBHOOKS=1`: the webhook configurations, their Service and the daemon's access
/// to exactly its own two configurations (by `resourceNames`), proven on the real API server.
#[test]
fn make_deploy_with_webhooks_grants_access_to_its_own_configurations_only() {
    let Some(envtest) = Envtest::start() else {
        return;
    };
    let kc = envtest.kubeconfig();
    let dir = tempfile::tempdir().expect("a temp dir");
    let none = dir.path().join("no-docker-config.json");
    let out = make(
        &kc,
        "deploy",
        &[
            ("WEBHOOKS", "1"),
            ("DOCKER_CONFIG_FILE", none.to_str().expect("a UTF-8 path")),
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let got = kubectl(
        &kc,
        &[
            "get",
            "mutatingwebhookconfiguration/image-cloner",
            "validatingwebhookconfiguration/image-cloner",
            "clusterrole/image-cloner-webhooks",
            "-n",
            "image-cloner",
            "service/image-cloner-webhook",
            "-o",
            "name",
        ],
    );
    assert!(got.status.success(), "{}", text(&got));
    assert_eq!(String::from_utf8_lossy(&got.stdout).lines().count(), 4);
    let settings = kubectl(
        &kc,
        &[
            "-n",
            "image-cloner",
            "get",
            "configmap/image-cloner-configuration",
            "-o",
            "jsonpath={.data.IMAGE_CLONER_MUTATING_WEBHOOK} {.data.IMAGE_CLONER_VALIDATING_WEBHOOK}",
        ],
    );
    assert_eq!(String::from_utf8_lossy(&settings.stdout), "on warn");

    for (verb, resource) in [
        ("get", "mutatingwebhookconfigurations/image-cloner"),
        ("update", "mutatingwebhookconfigurations/image-cloner"),
        ("get", "validatingwebhookconfigurations/image-cloner"),
        ("update", "validatingwebhookconfigurations/image-cloner"),
    ] {
        assert!(
            can(&kc, verb, resource, None),
            "{SA} cannot {verb} {resource}"
        );
    }
    for (verb, resource) in [
        ("get", "mutatingwebhookconfigurations/someone-elses"),
        ("update", "validatingwebhookconfigurations/someone-elses"),
        ("list", "mutatingwebhookconfigurations"),
        ("create", "mutatingwebhookconfigurations"),
        ("delete", "mutatingwebhookconfigurations/image-cloner"),
        ("patch", "validatingwebhookconfigurations/image-cloner"),
    ] {
        assert!(
            !can(&kc, verb, resource, None),
            "{SA} can {verb} {resource}, which it never needs"
        );
    }

    let out = make(&kc, "undeploy", &[("WEBHOOKS", "1")]);
    assert!(out.status.success(), "{}", text(&out));
    let gone = kubectl(&kc, &["get", "mutatingwebhookconfiguration/image-cloner"]);
    assert!(!gone.status.success(), "the configuration is removed");
}
