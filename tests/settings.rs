//! The settings through the binary, as a user's shell or a pod's environment gives them: the
//! environment is built from `OsString`s (no shell), so a value need not be UTF-8.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::Path;
use std::process::{Command, Output};

/// `image-cloner ARGS` with only the given environment, an empty config file (so that the
/// machine's /etc/image-cloner/config.toml does not count) and a home without a docker config.
fn image_cloner(args: &[&str], env: &[(OsString, OsString)], home: &Path) -> Output {
    let config = home.join("config.toml");
    std::fs::write(&config, "").expect("write an empty config file");
    Command::new(env!("CARGO_BIN_EXE_image-cloner"))
        .arg("--config")
        .arg(&config)
        .args(args)
        .env_clear()
        .env("HOME", home)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .expect("run image-cloner")
}

fn bytes(b: &[u8]) -> OsString {
    OsString::from_vec(b.to_vec())
}

/// A PATH holding a stand-in skopeo: check-config only looks it up.
fn path_with_skopeo(dir: &Path) -> OsString {
    use std::os::unix::fs::PermissionsExt;
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).expect("mkdir bin");
    let skopeo = bin.join("skopeo");
    std::fs::write(&skopeo, "").expect("write skopeo");
    std::fs::set_permissions(&skopeo, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    bin.into_os_string()
}

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn a_non_utf8_variable_image_cloner_does_not_read_changes_nothing() {
    let home = tempfile::tempdir().expect("temp dir");
    let env = [
        ("PATH".into(), path_with_skopeo(home.path())),
        ("BACKUP_REGISTRY".into(), "quay.io/my-org".into()),
        ("FOO".into(), bytes(b"\xff")),
    ];
    let out = image_cloner(&["check-config"], &env, home.path());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("quay.io/my-org")
            && stdout.contains("environment variable BACKUP_REGISTRY"),
        "{}",
        text(&out)
    );
}

#[test]
fn a_non_utf8_setting_is_an_invalid_setting_named_with_its_value() {
    let home = tempfile::tempdir().expect("temp dir");
    let env = [
        ("PATH".into(), path_with_skopeo(home.path())),
        ("BACKUP_REGISTRY".into(), bytes(b"quay.io/my-\xfforg")),
    ];
    let out = image_cloner(&["check-config"], &env, home.path());
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            "invalid setting backup_registry = \"quay.io/my-\u{fffd}org\" (from environment variable BACKUP_REGISTRY): expected UTF-8 text"
        ),
        "{}",
        text(&out)
    );
}

/// `restore` and `plan` run no skopeo and `restore` names no backup copy: both start on a
/// machine without skopeo, `restore` without BACKUP_REGISTRY, and get as far as the cluster
/// (none here), whose error is printed once.
#[test]
fn restore_and_plan_start_without_skopeo_and_restore_without_a_backup_registry() {
    let home = tempfile::tempdir().expect("temp dir");
    let no_skopeo: (OsString, OsString) = ("PATH".into(), "/nonexistent".into());
    let registry: (OsString, OsString) = ("BACKUP_REGISTRY".into(), "quay.io/my-org".into());
    for (args, env) in [
        (&["restore"][..], vec![no_skopeo.clone()]),
        (&["restore", "--dry-run"][..], vec![no_skopeo.clone()]),
        (&["plan"][..], vec![no_skopeo.clone(), registry.clone()]),
    ] {
        let out = image_cloner(args, &env, home.path());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", text(&out));
        assert!(
            !stderr.contains("invalid settings"),
            "{args:?}: {}",
            text(&out)
        );
        assert_eq!(
            stderr.matches("no cluster configuration found").count(),
            1,
            "{args:?}: the error once: {}",
            text(&out)
        );
    }
}

#[test]
fn plan_check_backup_and_copy_need_skopeo() {
    let home = tempfile::tempdir().expect("temp dir");
    let env = [
        ("PATH".into(), "/nonexistent".into()),
        ("BACKUP_REGISTRY".into(), "quay.io/my-org".into()),
    ];
    for args in [&["plan", "--check-backup"][..], &["copy", "nginx"][..]] {
        let out = image_cloner(args, &env, home.path());
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("skopeo not found on PATH"),
            "{args:?}: {}",
            text(&out)
        );
    }
}
