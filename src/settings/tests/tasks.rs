//! Each command checks the settings it uses, and only those: `restore` needs no backup
//! registry and no skopeo, `plan` no skopeo unless it asks the backup registry, `copy` no
//! kubeconfig. `check-config` checks them all.

use super::*;

/// Inputs for `task`, with a PATH where no skopeo is.
fn without_skopeo(task: Task, pairs: &[(&str, &str)]) -> Inputs {
    let mut i = inputs(pairs);
    i.env.retain(|(k, _)| k != "PATH");
    i.env.push(("PATH".into(), "/nonexistent".into()));
    i.task = task;
    i
}

#[test]
fn restore_starts_without_a_backup_registry_or_skopeo() {
    let loaded = load(&without_skopeo(
        Task::Restore,
        &[
            // Settings restore does not use: from the ConfigMap, even bad, even conflicting.
            ("IMAGE_CLONER_COPY_TIMEOUT", "soon"),
            ("IMAGE_CLONER_DOCKER_CONFIG", "/nonexistent/config.json"),
            ("MAX_CONCURRENT_RECONCILES", "5"),
            ("IMAGE_CLONER_MAX_CONCURRENT_RECONCILES", "6"),
        ],
    ))
    .expect("restore uses neither");
    let s = loaded.settings;
    assert_eq!(s.origins["backup_registry"], "not used by restore");
    assert_eq!(s.origins["skopeo"], "not used by restore");
    assert!(
        !loaded.warnings.iter().any(|w| w.contains("docker config")),
        "{:?}",
        loaded.warnings
    );
}

#[test]
fn restore_still_checks_what_it_uses() {
    let all = problems(&without_skopeo(
        Task::Restore,
        &[("IMAGE_CLONER_KUBECONFIG", "/nonexistent/kubeconfig")],
    ))
    .join("\n");
    assert!(
        all.contains(r#"invalid setting kubeconfig = "/nonexistent/kubeconfig""#),
        "{all}"
    );
}

#[test]
fn plan_starts_without_skopeo_unless_it_checks_the_backup() {
    let registry = [("BACKUP_REGISTRY", "q.io/x")];
    load(&without_skopeo(Task::Plan, &registry)).expect("plan runs no skopeo");
    let all = problems(&without_skopeo(Task::PlanCheckBackup, &registry)).join("\n");
    assert!(all.contains("skopeo not found on PATH"), "{all}");
    let all = problems(&without_skopeo(Task::Plan, &[])).join("\n");
    assert!(all.contains("missing setting backup_registry"), "{all}");
}

#[test]
fn copy_and_run_need_the_backup_registry_and_skopeo() {
    for task in [Task::Copy, Task::Run, Task::CheckConfig] {
        let all = problems(&without_skopeo(task, &[])).join("\n");
        assert!(
            all.contains(
                "missing setting backup_registry: set BACKUP_REGISTRY, IMAGE_CLONER_BACKUP_REGISTRY"
            ) && all.contains("skopeo not found on PATH"),
            "{task:?}: {all}"
        );
    }
}

#[test]
fn copy_does_not_read_the_cluster_settings() {
    let mut i = inputs(&[
        ("BACKUP_REGISTRY", "q.io/x"),
        ("IMAGE_CLONER_KUBECONFIG", "/nonexistent/kubeconfig"),
        ("IMAGE_CLONER_METRICS_ADDRESS", "localhost"),
    ]);
    i.task = Task::Copy;
    load(&i).expect("copy uses neither");
    i.task = Task::Run;
    assert_eq!(problems(&i).len(), 2);
}

/// What `check-config` shows for the kubeconfig when none is set: where kube will find one.
#[test]
fn check_config_shows_where_the_cluster_configuration_comes_from() {
    let shown = |pairs: &[(&str, &str)]| {
        let mut i = inputs(&[]);
        // Each name once, as in a real environment (the helper sets HOME).
        i.env
            .retain(|(k, _)| !pairs.iter().any(|(name, _)| k == name));
        i.env
            .extend(pairs.iter().map(|(k, v)| ((*k).into(), (*v).into())));
        let s = load(&i).expect("valid").settings;
        s.describe()
            .into_iter()
            .find(|(k, _, _)| *k == "kubeconfig")
            .map(|(_, v, _)| v)
            .expect("a kubeconfig row")
    };
    let registry = ("BACKUP_REGISTRY", "q.io/x");
    assert_eq!(
        shown(&[registry, ("KUBECONFIG", "/a/config:/b/config")]),
        "$KUBECONFIG = /a/config:/b/config"
    );
    let home = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir(home.path().join(".kube")).expect("mkdir .kube");
    std::fs::write(home.path().join(".kube/config"), "").expect("write kubeconfig");
    let home_str = home.path().display().to_string();
    assert_eq!(
        shown(&[registry, ("HOME", &home_str)]),
        format!("~/.kube/config = {home_str}/.kube/config")
    );
    assert_eq!(
        shown(&[registry, ("KUBERNETES_SERVICE_HOST", "10.0.0.1")]),
        "in-cluster service account (KUBERNETES_SERVICE_HOST is set)"
    );
    assert_eq!(
        shown(&[registry]),
        "(none found: no $KUBECONFIG, no ~/.kube/config, not in a pod)"
    );
    let explicit = home.path().join(".kube/config").display().to_string();
    assert_eq!(
        shown(&[registry, ("IMAGE_CLONER_KUBECONFIG", &explicit)]),
        explicit
    );
}
