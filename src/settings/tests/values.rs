//! Values that used to pass and should not (issue 19): each one is refused with a message that
//! names the setting, the value as given, where it came from and what is expected.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::Path;

use super::*;

/// Where a case's value is given.
enum From {
    Env(&'static str, &'static str),
    /// A line of the TOML file.
    File(&'static str),
}

struct Case {
    given: From,
    key: &'static str,
    /// The value as the message shows it.
    shown: &'static str,
    /// A detail the message must also hold, besides the spec's `expected`.
    detail: &'static str,
}

const fn env(
    name: &'static str,
    value: &'static str,
    key: &'static str,
    shown: &'static str,
) -> Case {
    Case {
        given: From::Env(name, value),
        key,
        shown,
        detail: "",
    }
}

const fn file(
    line: &'static str,
    key: &'static str,
    shown: &'static str,
    detail: &'static str,
) -> Case {
    Case {
        given: From::File(line),
        key,
        shown,
        detail,
    }
}

const REFUSED: &[Case] = &[
    env(
        "BACKUP_REGISTRY",
        "x:99999",
        "backup_registry",
        r#""x:99999""#,
    ),
    env(
        "BACKUP_REGISTRY",
        "x.io:0/a",
        "backup_registry",
        r#""x.io:0/a""#,
    ),
    env(
        "IMAGE_CLONER_INSECURE_REGISTRIES",
        "a.io:65536",
        "insecure_registries",
        r#""a.io:65536""#,
    ),
    env(
        "IMAGE_CLONER_COPY_TIMEOUT",
        "1ns",
        "copy_timeout",
        r#""1ns""#,
    ),
    env(
        "IMAGE_CLONER_COPY_TIMEOUT",
        "100000000000h",
        "copy_timeout",
        r#""100000000000h""#,
    ),
    env(
        "IMAGE_CLONER_COPY_TIMEOUT",
        "25h",
        "copy_timeout",
        r#""25h""#,
    ),
    env(
        "IMAGE_CLONER_INSPECT_TIMEOUT",
        "0s",
        "inspect_timeout",
        r#""0s""#,
    ),
    env(
        "IMAGE_CLONER_INSPECT_TIMEOUT",
        "11m",
        "inspect_timeout",
        r#""11m""#,
    ),
    env(
        "IMAGE_CLONER_SHUTDOWN_GRACE",
        "2h",
        "shutdown_grace",
        r#""2h""#,
    ),
    env("IMAGE_CLONER_LOG_LEVEL", "-1", "log_level", r#""-1""#),
    env("IMAGE_CLONER_LOG_LEVEL", "99999", "log_level", r#""99999""#),
    env("IMAGE_CLONER_LOG_LEVEL", "1.5", "log_level", r#""1.5""#),
    env("IMAGE_CLONER_LOG_LEVEL", " ", "log_level", r#"" ""#),
    env("IMAGE_CLONER_LOG_LEVEL", "inof", "log_level", r#""inof""#),
    env("IMAGE_CLONER_BARE_PODS", "yes", "bare_pods", r#""yes""#),
    env(
        "MAX_CONCURRENT_RECONCILES",
        "0",
        "max_concurrent_reconciles",
        r#""0""#,
    ),
    env("IMAGE_CLONER_RETRY_TIMES", "-1", "retry_times", r#""-1""#),
    env(
        "IMAGE_CLONER_PULL_SECRET",
        "Image_Cloner",
        "pull_secret",
        r#""Image_Cloner""#,
    ),
    env(
        "IMAGE_CLONER_PULL_SECRET",
        "pull..secret",
        "pull_secret",
        r#""pull..secret""#,
    ),
    env("IMAGE_CLONER_PULL_CHECK", "true", "pull_check", r#""true""#),
    file(
        "insecure_registries = { a = 1 }",
        "insecure_registries",
        "{ a = 1 }",
        "a TOML array of strings, or one comma-separated string, not a table",
    ),
    file(
        "insecure_registries = [1, 2]",
        "insecure_registries",
        "[1, 2]",
        "not an array holding an integer",
    ),
    file(
        "context = -1",
        "context",
        "-1",
        "a TOML string, not an integer",
    ),
    file(
        "namespaces_to_ignore = true",
        "namespaces_to_ignore",
        "true",
        "a TOML array of strings, or one comma-separated string, not a boolean",
    ),
    file(
        "naming = [\"flat\"]",
        "naming",
        "[\"flat\"]",
        "a TOML string, not an array",
    ),
    file(
        "copy_timeout = 30",
        "copy_timeout",
        "30",
        "a TOML string, not an integer",
    ),
    file(
        "max_concurrent_reconciles = 1.5",
        "max_concurrent_reconciles",
        "1.5",
        "a TOML integer, not a float",
    ),
    file(
        "retry_times = true",
        "retry_times",
        "true",
        "a TOML integer, not a boolean",
    ),
    file(
        "bare_pods = 1",
        "bare_pods",
        "1",
        "a TOML boolean (true or false), not an integer",
    ),
    file(
        "log_level = 5",
        "log_level",
        "5",
        "a TOML string, not an integer",
    ),
];

/// Inputs with a valid backup registry and the case's value.
fn case_inputs(case: &Case, dir: &Path) -> Inputs {
    let mut i = inputs(&[("BACKUP_REGISTRY", "q.io/x")]);
    match case.given {
        From::Env(name, value) => {
            i.env.retain(|(k, _)| k != name);
            i.env.push((name.into(), value.into()));
        }
        From::File(line) => {
            let path = dir.join("config.toml");
            std::fs::write(&path, format!("{line}\n")).expect("write the config file");
            i.config_file = Some(path);
        }
    }
    i
}

#[test]
fn each_refused_value_is_named_with_its_origin_and_expectation() {
    let dir = tempfile::tempdir().expect("temp dir");
    for case in REFUSED {
        let p = match load(&case_inputs(case, dir.path())) {
            Ok(_) => panic!("{}: {} was taken", case.key, case.shown),
            Err(e) => e.problems,
        };
        let all = p.join("\n");
        assert_eq!(p.len(), 1, "{all}");
        let origin = match case.given {
            From::Env(name, _) => format!("environment variable {name}"),
            From::File(_) => format!("config file {}", dir.path().join("config.toml").display()),
        };
        let spec = Spec::find(case.key).expect("a setting");
        let head = format!(
            "invalid setting {} = {} (from {origin}): expected {}",
            case.key, case.shown, spec.expected
        );
        assert!(
            all.starts_with(&head),
            "{all}\n  does not start with\n{head}"
        );
        assert!(
            all.contains(case.detail),
            "{all}\n  does not say {:?}",
            case.detail
        );
    }
}

#[test]
fn values_of_the_right_type_and_range_are_taken() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("config.toml");
    std::fs::write(
        &path,
        r#"
insecure_registries = ["a.io:5000", "b.io"]
namespaces_to_ignore = "x, y"
context = "prod"
bare_pods = true
max_concurrent_reconciles = 7
retry_times = "2"
copy_timeout = "24h"
inspect_timeout = "1s"
shutdown_grace = "0s"
log_level = "warn, image_cloner::reconcile=debug"
pull_secret = "image-cloner.pull"
pull_check = "off"
"#,
    )
    .expect("write the config file");
    let mut i = inputs(&[("BACKUP_REGISTRY", "registry.example.com:65535/backup")]);
    i.config_file = Some(path);
    let s = load(&i).expect("valid settings").settings;
    assert_eq!(s.insecure_registries, ["a.io:5000", "b.io"]);
    assert_eq!(s.namespaces_to_ignore.len(), 3);
    assert_eq!(s.context.as_deref(), Some("prod"));
    assert!(s.bare_pods);
    assert_eq!(s.max_concurrent_reconciles, 7);
    assert_eq!(s.retry_times, 2);
    assert_eq!(s.copy_timeout, Duration::from_secs(86400));
    assert_eq!(s.shutdown_grace, Duration::ZERO);
    assert_eq!(s.log_level, "warn,image_cloner::reconcile=debug");
    assert_eq!(s.pull_secret.as_deref(), Some("image-cloner.pull"));
    assert!(!s.pull_check);
}

#[test]
fn pull_secrets_are_off_and_the_pull_check_on_by_default() {
    let s = load(&inputs(&[("BACKUP_REGISTRY", "q.io/x")]))
        .expect("valid settings")
        .settings;
    assert_eq!(s.pull_secret, None);
    assert!(s.pull_check);
    let shown: Vec<(&str, String)> = s
        .describe()
        .into_iter()
        .filter(|(k, _, _)| matches!(*k, "pull_secret" | "pull_check"))
        .map(|(k, v, _)| (k, v))
        .collect();
    assert_eq!(
        shown,
        [
            (
                "pull_secret",
                "(none: no pull secret is provisioned)".to_owned()
            ),
            ("pull_check", "on".to_owned()),
        ]
    );
    let s = load(&inputs(&[
        ("BACKUP_REGISTRY", "q.io/x"),
        ("IMAGE_CLONER_PULL_SECRET", ""),
    ]))
    .expect("empty is off")
    .settings;
    assert_eq!(s.pull_secret, None);
}

fn bytes(b: &[u8]) -> OsString {
    OsString::from_vec(b.to_vec())
}

#[test]
fn a_non_utf8_variable_image_cloner_does_not_read_is_ignored() {
    let mut i = inputs(&[("BACKUP_REGISTRY", "q.io/x")]);
    i.env.push(("FOO".into(), bytes(b"\xff")));
    i.env.push((bytes(b"\xfe"), "x".into()));
    let s = load(&i).expect("FOO does not matter").settings;
    assert_eq!(s.backup_registry.to_string(), "q.io/x");
}

#[test]
fn a_non_utf8_setting_is_invalid_once_and_named() {
    let mut i = inputs(&[]);
    i.env
        .push(("BACKUP_REGISTRY".into(), bytes(b"quay.io/\xff")));
    i.env
        .push(("IMAGE_CLONER_LOG_LEVEL".into(), bytes(b"de\xffbug")));
    let p = problems(&i);
    let all = p.join("\n");
    assert_eq!(p.len(), 2, "no 'missing setting' besides: {all}");
    assert!(all.contains("invalid setting backup_registry = \"quay.io/\u{fffd}\" (from environment variable BACKUP_REGISTRY): expected UTF-8 text, a registry host"), "{all}");
    assert!(all.contains("invalid setting log_level = \"de\u{fffd}bug\" (from environment variable IMAGE_CLONER_LOG_LEVEL): expected UTF-8 text"), "{all}");

    let mut i = inputs(&[("BACKUP_REGISTRY", "q.io/x")]);
    i.env.retain(|(k, _)| k != "HOME");
    i.env.push(("HOME".into(), bytes(b"/home/\xff")));
    let all = problems(&i).join("\n");
    assert!(
        all.contains("invalid environment variable HOME = \"/home/\u{fffd}\": expected UTF-8 text"),
        "{all}"
    );
}

/// The system's CA certificates are read ahead only when the backup registry will need them.
#[test]
fn the_backup_verifies_tls_unless_it_is_an_insecure_registry() {
    let backup = ("BACKUP_REGISTRY", "Mirror.Example:5000/backup");
    let verifies = |insecure: Option<&str>| {
        let mut pairs = vec![backup];
        if let Some(list) = insecure {
            pairs.push(("IMAGE_CLONER_INSECURE_REGISTRIES", list));
        }
        load(&inputs(&pairs))
            .expect("valid settings")
            .settings
            .backup_verifies_tls()
    };
    assert!(verifies(None));
    assert!(
        verifies(Some("mirror.example,other.example:5000")),
        "another port"
    );
    assert!(!verifies(Some("other.example,mirror.example:5000")));
    assert!(
        !verifies(Some("MIRROR.example:5000")),
        "hosts compare without case"
    );
}
