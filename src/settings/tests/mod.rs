//! Loading through every layer: defaults, file, environment, flags, and the messages for
//! what is wrong.

use std::ffi::OsString;
use std::io::Write;
use std::time::Duration;

use super::*;
use crate::image::naming::{Naming, Pin};

mod leader;
mod sources;
mod tasks;
mod values;
mod webhooks;

fn env(pairs: &[(&str, &str)]) -> Vec<(OsString, OsString)> {
    // A PATH where skopeo exists, so that tests do not depend on the machine.
    let dir = fake_skopeo_dir();
    let mut v: Vec<(OsString, OsString)> = vec![
        ("PATH".into(), dir.into()),
        ("HOME".into(), "/nonexistent-home".into()),
    ];
    v.extend(pairs.iter().map(|(k, v)| ((*k).into(), (*v).into())));
    v
}

fn fake_skopeo_dir() -> String {
    use std::os::unix::fs::PermissionsExt;
    use std::sync::OnceLock;
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    let dir = DIR.get_or_init(|| {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("skopeo");
        std::fs::write(&p, "").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        d
    });
    dir.path().display().to_string()
}

fn inputs(pairs: &[(&str, &str)]) -> Inputs {
    Inputs {
        config_file: None,
        env: env(pairs),
        flags: vec![],
        task: Task::CheckConfig,
    }
}

fn problems(i: &Inputs) -> Vec<String> {
    load(i).unwrap_err().problems
}

#[test]
fn defaults_with_only_the_required_setting() {
    let s = load(&inputs(&[("BACKUP_REGISTRY", "quay.io/my-org")]))
        .unwrap()
        .settings;
    assert_eq!(s.backup_registry.to_string(), "quay.io/my-org");
    assert_eq!(s.max_concurrent_reconciles, 5);
    assert_eq!(
        s.namespaces_to_ignore.iter().collect::<Vec<_>>(),
        ["kube-system"]
    );
    assert_eq!(s.naming, Naming::Flat);
    assert_eq!(s.pin, Pin::Digest);
    assert!(s.docker_config.is_none());
    assert_eq!(s.copy_timeout, Duration::from_secs(1800));
    assert_eq!(s.log_format, LogFormat::Text);
    assert_eq!(
        s.origins["backup_registry"],
        "environment variable BACKUP_REGISTRY"
    );
}

#[test]
fn original_configmap_names_work_unchanged() {
    let s = load(&inputs(&[
        ("BACKUP_REGISTRY", "quay.io/my-org"),
        ("MAX_CONCURRENT_RECONCILES", "9"),
        ("NAMESPACES_TO_IGNORE", "monitoring, ci ,,"),
    ]))
    .unwrap()
    .settings;
    assert_eq!(s.max_concurrent_reconciles, 9);
    assert_eq!(
        s.namespaces_to_ignore.iter().collect::<Vec<_>>(),
        ["ci", "kube-system", "monitoring"]
    );
}

#[test]
fn precedence_defaults_file_env_flags() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config.toml");
    let mut f = std::fs::File::create(&file).unwrap();
    writeln!(f, "backup_registry = \"file.io/b\"\nnaming = \"nested\"\npin = \"tag\"\nretry_times = 7\nnamespaces_to_ignore = [\"a\", \"b\"]").unwrap();
    let mut i = inputs(&[
        ("IMAGE_CLONER_PIN", "digest"),
        ("BACKUP_REGISTRY", "bare.io/b"),
        ("IMAGE_CLONER_RETRY_TIMES", "2"),
    ]);
    i.config_file = Some(file);
    i.flags = vec![("retry_times", "1".into())];
    let s = load(&i).unwrap().settings;
    assert_eq!(s.naming, Naming::Nested, "file over default");
    assert_eq!(s.pin, Pin::Digest, "environment over file");
    assert_eq!(
        s.backup_registry.to_string(),
        "bare.io/b",
        "bare environment name over file"
    );
    assert_eq!(s.retry_times, 1, "flag over environment");
    assert_eq!(s.namespaces_to_ignore.len(), 3, "TOML arrays are lists");
    assert!(
        s.origins["naming"].contains("config.toml"),
        "{:?}",
        s.origins
    );
    assert_eq!(s.origins["retry_times"], "flag --retry-times");
}

#[test]
fn both_names_of_a_setting_must_agree() {
    let s = load(&inputs(&[
        ("BACKUP_REGISTRY", "same.io/b"),
        ("IMAGE_CLONER_BACKUP_REGISTRY", "same.io/b"),
        ("NAMESPACES_TO_IGNORE", "a,b"),
        ("IMAGE_CLONER_NAMESPACES_TO_IGNORE", " a, b,"),
    ]))
    .expect("the same value under both names")
    .settings;
    assert_eq!(s.backup_registry.to_string(), "same.io/b");

    let p = problems(&inputs(&[
        ("BACKUP_REGISTRY", "bare.io/b"),
        ("IMAGE_CLONER_BACKUP_REGISTRY", "prefixed.io/b"),
        ("MAX_CONCURRENT_RECONCILES", "5"),
        ("IMAGE_CLONER_MAX_CONCURRENT_RECONCILES", "6"),
    ]));
    let all = p.join("\n");
    assert_eq!(p.len(), 2, "{all}");
    assert!(all.contains(r#"conflicting setting backup_registry = "bare.io/b" (from environment variable BACKUP_REGISTRY) and "prefixed.io/b" (from environment variable IMAGE_CLONER_BACKUP_REGISTRY): expected one value"#), "{all}");
    assert!(
        all.contains("a registry host with an optional path"),
        "{all}"
    );
    assert!(all.contains(r#"conflicting setting max_concurrent_reconciles = "5" (from environment variable MAX_CONCURRENT_RECONCILES) and "6" (from environment variable IMAGE_CLONER_MAX_CONCURRENT_RECONCILES)"#), "{all}");
}

#[test]
fn every_invalid_setting_is_named_with_value_origin_and_expectation() {
    let p = problems(&inputs(&[
        ("MAX_CONCURRENT_RECONCILES", "lots"),
        ("IMAGE_CLONER_NAMING", "fat"),
        ("IMAGE_CLONER_COPY_TIMEOUT", "soon"),
        ("IMAGE_CLONER_INSECURE_REGISTRIES", "ok.io,http://bad.io"),
        ("IMAGE_CLONER_LOG_FORMAT", "xml"),
        ("NAMESPACES_TO_IGNORE", "Bad_NS"),
        ("IMAGE_CLONER_BARE_PODS", "maybe"),
        ("IMAGE_CLONER_METRICS_ADDRESS", "localhost"),
        ("IMAGE_CLONER_KUBECONFIG", "/nonexistent/kubeconfig"),
    ]));
    let all = p.join("\n");
    assert!(
        all.contains(
            "missing setting backup_registry: set BACKUP_REGISTRY, IMAGE_CLONER_BACKUP_REGISTRY"
        ),
        "{all}"
    );
    assert!(all.contains(r#"invalid setting max_concurrent_reconciles = "lots" (from environment variable MAX_CONCURRENT_RECONCILES): expected a whole number from 1 to 100"#), "{all}");
    assert!(all.contains(r#"invalid setting naming = "fat" (from environment variable IMAGE_CLONER_NAMING): expected "flat" or "nested""#), "{all}");
    assert!(all.contains(r#"copy_timeout = "soon""#), "{all}");
    assert!(
        all.contains(r#"insecure_registries = "http://bad.io""#),
        "{all}"
    );
    assert!(all.contains(r#"log_format = "xml""#), "{all}");
    assert!(all.contains(r#"namespaces_to_ignore = "Bad_NS""#), "{all}");
    assert!(all.contains(r#"bare_pods = "maybe""#), "{all}");
    assert!(all.contains(r#"metrics_address = "localhost""#), "{all}");
    assert!(
        all.contains(r#"kubeconfig = "/nonexistent/kubeconfig""#),
        "{all}"
    );
    assert_eq!(p.len(), 10, "{all}");
}

#[test]
fn typos_in_the_file_are_errors_and_in_the_environment_warnings() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c.toml");
    std::fs::write(&file, "backup_registry = \"q.io/x\"\nnameing = \"flat\"\n").unwrap();
    let mut i = inputs(&[]);
    i.config_file = Some(file);
    let all = problems(&i).join("\n");
    assert!(all.contains("unknown setting \"nameing\""), "{all}");

    let loaded = load(&inputs(&[
        ("BACKUP_REGISTRY", "q.io/x"),
        ("IMAGE_CLONER_NAMEING", "flat"),
        ("IMAGE_CLONER_SERVICE_HOST", "10.0.0.1"),
        ("IMAGE_CLONER_PORT", "tcp://10.0.0.1:9090"),
        ("IMAGE_CLONER_PORT_9090_TCP_ADDR", "10.0.0.1"),
    ]))
    .unwrap();
    assert_eq!(
        loaded
            .warnings
            .iter()
            .filter(|w| w.contains("IMAGE_CLONER_NAMEING"))
            .count(),
        1
    );
    assert!(
        !loaded
            .warnings
            .iter()
            .any(|w| w.contains("SERVICE_HOST") || w.contains("_PORT")),
        "{:?}",
        loaded.warnings
    );
}

#[test]
fn missing_explicit_config_file_is_an_error() {
    let mut i = inputs(&[("BACKUP_REGISTRY", "q.io/x")]);
    i.config_file = Some("/nonexistent/config.toml".into());
    assert!(problems(&i)[0].contains("/nonexistent/config.toml"));
}

#[test]
fn broken_toml_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c.toml");
    std::fs::write(&file, "backup_registry = \n").unwrap();
    let mut i = inputs(&[]);
    i.config_file = Some(file.clone());
    assert!(problems(&i)[0].contains(&file.display().to_string()));
}

#[test]
fn docker_config_explicit_must_exist_default_may_not() {
    let p = problems(&inputs(&[
        ("BACKUP_REGISTRY", "q.io/x"),
        ("IMAGE_CLONER_DOCKER_CONFIG", "/nonexistent/c.json"),
    ]));
    assert!(
        p[0].contains("docker_config") && p[0].contains("/nonexistent/c.json"),
        "{p:?}"
    );

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("config.json"),
        r#"{"auths":{"q.io":{"auth":"dTpzZWNyZXQ="}}}"#,
    )
    .unwrap();
    let d = dir.path().display().to_string();
    let s = load(&inputs(&[
        ("BACKUP_REGISTRY", "q.io/x"),
        ("DOCKER_CONFIG", &d),
    ]))
    .unwrap()
    .settings;
    assert_eq!(s.docker_config.as_ref().unwrap().registries, ["q.io"]);
    let shown = s.to_string();
    assert!(
        shown.contains("credentials for: q.io; secrets redacted"),
        "{shown}"
    );
    assert!(
        !shown.contains("dTpzZWNyZXQ=") && !shown.contains("secret\n"),
        "{shown}"
    );

    std::fs::write(dir.path().join("config.json"), "{").unwrap();
    let p = problems(&inputs(&[
        ("BACKUP_REGISTRY", "q.io/x"),
        ("DOCKER_CONFIG", &d),
    ]));
    assert!(
        p[0].contains("config.json") && p[0].contains("not valid JSON"),
        "{p:?}"
    );
}

#[test]
fn skopeo_missing_is_named() {
    let mut i = inputs(&[("BACKUP_REGISTRY", "q.io/x")]);
    i.env.retain(|(k, _)| k != "PATH");
    i.env.push(("PATH".into(), "/nonexistent".into()));
    assert!(problems(&i)[0].contains("skopeo not found on PATH"));
    let p = problems(&inputs(&[
        ("BACKUP_REGISTRY", "q.io/x"),
        ("IMAGE_CLONER_SKOPEO", "/no/skopeo"),
    ]));
    assert!(p[0].contains(r#"skopeo = "/no/skopeo""#), "{p:?}");
}

#[test]
fn describe_lists_every_setting() {
    let s = load(&inputs(&[("BACKUP_REGISTRY", "q.io/x")]))
        .unwrap()
        .settings;
    let rows = s.describe();
    let keys: Vec<&str> = rows.iter().map(|r| r.0).collect();
    let specs: Vec<&str> = SPECS.iter().map(|s| s.key).collect();
    assert_eq!(keys, specs);
    let undescribed: Vec<&str> = rows
        .iter()
        .filter(|r| r.1 == describe::UNKNOWN)
        .map(|r| r.0)
        .collect();
    assert!(undescribed.is_empty(), "{undescribed:?}");
}
