//! Cases for every setting: a value of the wrong TOML type, out of range or badly formed, not
//! UTF-8 in the environment, and given under both of its names with different values. Each
//! must stop `check-config` with exit 2 and a message naming the setting.
//!
//! The table below says what each setting takes; the suite also reads the settings
//! `check-config` prints and fails on one missing here, so a new setting cannot go untested.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt as _;

use crate::malformed::{Case, Input};

/// What a setting takes, as far as its wrong values go.
#[derive(Clone, Copy)]
enum Takes {
    /// A string; these strings are wrong.
    Text(&'static [&'static str]),
    Number {
        min: u64,
        max: u64,
    },
    Bool,
    /// Bounds in seconds.
    Duration {
        min: u64,
        max: u64,
    },
    /// A list; these items are wrong.
    List(&'static [&'static str]),
    /// `false`, `true` or a list (`copy_private_sources`): a TOML boolean fits too.
    BoolOrList,
}

/// key, also read under its bare upper-case name, what it takes.
const SETTINGS: &[(&str, bool, Takes)] = &[
    (
        "backup_registry",
        true,
        Takes::Text(&[
            "x:99999",
            "quay.io:0/x",
            "quay.io/Upper",
            "nohost",
            "https://quay.io/x",
            "quay.io//x",
            "-x.io/a",
            "quay.io/x y",
            "[::1]:5000/x",
            "quay.io/x\n--help",
            "quay.io/$(touch /tmp/x)",
            "--help",
        ]),
    ),
    (
        "max_concurrent_reconciles",
        true,
        Takes::Number { min: 1, max: 100 },
    ),
    (
        "namespaces_to_ignore",
        true,
        Takes::List(&["Bad_NS", "a b", "-x", "x/y"]),
    ),
    ("namespaces", false, Takes::List(&["UPPER", "a.b", "-x"])),
    (
        "naming",
        false,
        Takes::Text(&["Flat", "nest", "-", "flat,nested"]),
    ),
    ("pin", false, Takes::Text(&["sha", "Digest", "tag@"])),
    (
        "docker_config",
        false,
        Takes::Text(&["/nonexistent/config.json", "/", "/dev/null"]),
    ),
    (
        "skopeo",
        false,
        Takes::Text(&["/nonexistent/skopeo", "/", "--help"]),
    ),
    (
        "copy_timeout",
        false,
        Takes::Duration {
            min: 10,
            max: 24 * 3600,
        },
    ),
    (
        "inspect_timeout",
        false,
        Takes::Duration { min: 1, max: 600 },
    ),
    ("retry_times", false, Takes::Number { min: 0, max: 10 }),
    (
        "insecure_registries",
        false,
        Takes::List(&["https://x.io", "a b", "x.io:99999", "-x.io"]),
    ),
    (
        "cert_dir",
        false,
        Takes::Text(&["/nonexistent", "/dev/null"]),
    ),
    (
        "tmp_dir",
        false,
        Takes::Text(&["/nonexistent", "/dev/null"]),
    ),
    ("kubeconfig", false, Takes::Text(&["/nonexistent", "/"])),
    ("context", false, Takes::Text(&[])),
    ("bare_pods", false, Takes::Bool),
    ("patch_gitops_managed", false, Takes::Bool),
    (
        "shutdown_grace",
        false,
        Takes::Duration { min: 0, max: 3600 },
    ),
    (
        "metrics_address",
        false,
        Takes::Text(&[
            "localhost",
            "1.2.3.4",
            ":99999",
            "127.0.0.1:-1",
            "[::1]",
            "0.0.0.0:9090x",
        ]),
    ),
    // The settings of the source policy, pull secrets, leader election, the audit and the
    // webhooks: every wrong TOML type and a value that is not UTF-8 (their bad texts are in
    // the settings' own unit tests).
    ("source_include", false, Takes::Text(&[])),
    ("source_exclude", false, Takes::Text(&[])),
    ("copy_private_sources", false, Takes::BoolOrList),
    (
        "pull_budget_reserve",
        false,
        Takes::Number { min: 0, max: 10000 },
    ),
    ("pull_secret", false, Takes::Text(&[])),
    ("pull_check", false, Takes::Text(&[])),
    ("leader_election", false, Takes::Text(&[])),
    ("lease_name", false, Takes::Text(&[])),
    ("lease_namespace", false, Takes::Text(&[])),
    (
        "lease_duration",
        false,
        Takes::Duration { min: 5, max: 300 },
    ),
    (
        "audit_interval",
        false,
        Takes::Duration {
            min: 1,
            max: 7 * 24 * 3600,
        },
    ),
    ("on_backup_missing", false, Takes::Text(&[])),
    (
        "rollout_guard_after",
        false,
        Takes::Duration {
            min: 1,
            max: 24 * 3600,
        },
    ),
    ("mutating_webhook", false, Takes::Text(&[])),
    ("validating_webhook", false, Takes::Text(&[])),
    ("webhook_address", false, Takes::Text(&[])),
    ("webhook_cert_file", false, Takes::Text(&[])),
    ("webhook_key_file", false, Takes::Text(&[])),
    ("webhook_tls", false, Takes::Text(&[])),
    ("log_format", false, Takes::Text(&["JSON", "yaml", ""])),
    (
        "log_level",
        false,
        Takes::Text(&[
            "-1",
            "99999",
            "1.5",
            " ",
            "inof",
            "info,=debug",
            "x[",
            "[{",
            "info,,,x",
        ]),
    ),
];

/// The keys the table covers, for the completeness check.
pub fn keys() -> Vec<&'static str> {
    SETTINGS.iter().map(|(k, _, _)| *k).collect()
}

/// TOML values of every type, and which kinds take them.
const TOML_VALUES: &[(&str, &str)] = &[
    ("an integer", "-1"),
    ("a float", "1.5"),
    ("a boolean", "true"),
    ("an array of mixed types", "[\"a\", 1]"),
    ("an empty table", "{}"),
    ("a table", "{ a = 1 }"),
    ("a datetime", "1979-05-27T07:32:00Z"),
];

fn toml_fits(takes: Takes, what: &str) -> bool {
    match takes {
        // The config crate reads a TOML datetime as its text: a setting that takes any text
        // (a context name) takes it too, and a later error names it if no such context exists.
        Takes::Text(&[]) => what == "a datetime",
        Takes::Number { .. } => what == "an integer",
        Takes::Bool | Takes::BoolOrList => what == "a boolean",
        _ => false,
    }
}

/// Out-of-range and badly formed values, as text.
fn bad_texts(takes: Takes) -> Vec<String> {
    match takes {
        Takes::Text(bad) | Takes::List(bad) => bad.iter().map(|s| (*s).to_owned()).collect(),
        Takes::BoolOrList => Vec::new(),
        Takes::Number { min, max } => {
            let mut v: Vec<String> = vec![
                (max + 1).to_string(),
                "-1".into(),
                "1.5".into(),
                "1e3".into(),
                "99999999999999999999999".into(),
                "0x10".into(),
                "five".into(),
            ];
            if min > 0 {
                v.push((min - 1).to_string());
            }
            v
        }
        Takes::Bool => ["yes", "1", "TRUE", "on", "maybe"]
            .map(String::from)
            .to_vec(),
        Takes::Duration { min, max } => {
            let mut v: Vec<String> = vec![
                format!("{}s", max + 1),
                "100000000000h".into(),
                "soon".into(),
                "-1s".into(),
                "1.5.5s".into(),
                "30".into(),
            ];
            if min > 0 {
                v.push("1ns".into());
                v.push(format!("{}ms", min * 1000 - 1));
            }
            v
        }
    }
}

fn env_name(key: &str) -> String {
    format!("IMAGE_CLONER_{}", key.to_ascii_uppercase())
}

/// A TOML string literal.
fn toml_string(s: &str) -> String {
    serde_json::Value::from(s).to_string()
}

/// Every settings case.
pub fn cases() -> Vec<Case> {
    let mut out = Vec::new();
    for &(key, bare, takes) in SETTINGS {
        for (what, toml) in TOML_VALUES {
            if !toml_fits(takes, what) {
                out.push(Case::settings(
                    format!("{key} = {toml} in the file ({what})"),
                    key,
                    Input::File(format!("{key} = {toml}\n")),
                ));
            }
        }
        for bad in bad_texts(takes) {
            out.push(Case::settings(
                format!("{key} = {bad:?} in the file"),
                key,
                Input::File(format!("{key} = {}\n", toml_string(&bad))),
            ));
            if !bad.is_empty() && !bad.contains('\n') {
                out.push(Case::settings(
                    format!("{} = {bad:?}", env_name(key)),
                    key,
                    Input::Env(vec![(env_name(key).into(), bad.clone().into())]),
                ));
            }
        }
        let mut names = vec![env_name(key)];
        if bare {
            names.push(key.to_ascii_uppercase());
        }
        for name in &names {
            out.push(Case::settings(
                format!("{name} not UTF-8"),
                key,
                Input::Env(vec![(
                    name.into(),
                    OsString::from_vec(b"x\xff\xfe".to_vec()),
                )]),
            ));
        }
        if bare {
            let (a, b) = conflicting(takes);
            out.push(Case::settings(
                format!("{} and {} set to different values", names[1], names[0]),
                key,
                Input::Env(vec![
                    (names[1].clone().into(), a.into()),
                    (names[0].clone().into(), b.into()),
                ]),
            ));
        }
    }
    out.push(Case::settings(
        "an unknown key in the file".into(),
        "backup_registy",
        Input::File("backup_registy = \"quay.io/x\"\n".into()),
    ));
    out.push(Case::settings(
        "a file that is not TOML".into(),
        "config file",
        Input::File("backup_registry = [\n".into()),
    ));
    out.push(Case::settings(
        "a file that is not UTF-8".into(),
        "config file",
        Input::FileBytes(b"backup_registry = \"q.io/\xff\"\n".to_vec()),
    ));
    out
}

/// Two valid, different values.
fn conflicting(takes: Takes) -> (&'static str, &'static str) {
    match takes {
        Takes::Number { .. } => ("5", "6"),
        Takes::List(_) => ("a,b", "a,c"),
        _ => ("quay.io/one", "quay.io/two"),
    }
}
