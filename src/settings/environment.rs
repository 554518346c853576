//! The process environment as image-cloner reads it.
//!
//! A variable's name and value are bytes, not necessarily UTF-8. One that image-cloner never
//! reads must not matter (`std::env::vars()` panicked on any of them, so every command died
//! on `FOO=$'\xff'`); one it reads as text must be UTF-8, or it is an invalid setting, named,
//! with its value shown lossily. `PATH` is kept as bytes: skopeo is looked up in it and a
//! directory name need not be UTF-8.

use std::collections::BTreeSet;
use std::ffi::OsString;

use crate::settings::spec::{ENV_PREFIX, SPECS, Spec, Task};

/// The variables image-cloner (or kube, for the cluster configuration) reads as text besides
/// its settings, and what for.
pub const READ_AS_TEXT: &[(&str, &str)] = &[
    ("DOCKER_CONFIG", "the directory of the docker config.json"),
    (
        "HOME",
        "the home directory, for ~/.docker/config.json and ~/.kube/config",
    ),
    ("KUBECONFIG", "the kubeconfig path(s)"),
    (
        "KUBERNETES_SERVICE_HOST",
        "the in-cluster API server's address",
    ),
    (
        "KUBERNETES_SERVICE_PORT",
        "the in-cluster API server's port",
    ),
    ("POD_NAMESPACE", "the daemon's own namespace, never touched"),
    ("POD_NAME", "the daemon's name in Events and its Lease"),
    ("HOSTNAME", "the daemon's name when POD_NAME is not set"),
    ("WATCHDOG_USEC", "systemd's watchdog interval"),
];

/// The environment split into what loading uses.
#[derive(Debug, Default)]
pub(super) struct Environment {
    /// Every variable whose name and value are UTF-8.
    pub(super) text: Vec<(String, String)>,
    /// `PATH`, as bytes.
    pub(super) path: Option<OsString>,
    /// Settings whose environment value was not UTF-8 (already reported): not also "missing".
    pub(super) broken: BTreeSet<&'static str>,
}

/// Splits the environment, pushing one problem for each variable of image-cloner's that is not
/// UTF-8 and ignoring every other one that is not (a setting `task` does not use among them).
pub(super) fn read(
    env: &[(OsString, OsString)],
    task: Task,
    problems: &mut Vec<String>,
) -> Environment {
    let mut out = Environment::default();
    for (name, value) in env {
        if name == "PATH" {
            out.path = Some(value.clone());
        }
        match (name.to_str(), value.to_str()) {
            (Some(n), Some(v)) => out.text.push((n.to_owned(), v.to_owned())),
            (Some(n), None) => {
                let lossy = value.to_string_lossy();
                if let Some(problem) = bad_value(n, &lossy, task, &mut out.broken) {
                    problems.push(problem);
                }
            }
            (None, _) => {
                let lossy = name.to_string_lossy();
                if name.as_encoded_bytes().starts_with(ENV_PREFIX.as_bytes()) {
                    problems.push(format!(
                        "invalid environment variable name {lossy:?}: expected UTF-8 text (names starting with {ENV_PREFIX} are image-cloner's settings)"
                    ));
                }
            }
        }
    }
    out
}

/// The setting an environment variable sets, by its exact name.
fn setting_of(name: &str) -> Option<&'static Spec> {
    SPECS
        .iter()
        .find(|s| s.env_name() == name || s.bare_env_name().as_deref() == Some(name))
}

/// The problem with a non-UTF-8 value of `name`, when image-cloner reads `name`.
fn bad_value(
    name: &str,
    lossy: &str,
    task: Task,
    broken: &mut BTreeSet<&'static str>,
) -> Option<String> {
    if let Some(spec) = setting_of(name) {
        if !spec.used_by(task) {
            return None;
        }
        broken.insert(spec.key);
        return Some(format!(
            "invalid setting {} = {lossy:?} (from environment variable {name}): expected UTF-8 text, {}",
            spec.key, spec.expected
        ));
    }
    if name.starts_with(ENV_PREFIX) {
        return Some(format!(
            "invalid environment variable {name} = {lossy:?}: expected UTF-8 text (names starting with {ENV_PREFIX} are image-cloner's settings)"
        ));
    }
    READ_AS_TEXT.iter().find(|(n, _)| *n == name).map(|(_, what)| {
        format!(
            "invalid environment variable {name} = {lossy:?}: expected UTF-8 text (image-cloner reads it as {what})"
        )
    })
}

#[cfg(test)]
mod tests {
    use std::os::unix::ffi::OsStringExt;

    use super::*;

    fn bytes(b: &[u8]) -> OsString {
        OsString::from_vec(b.to_vec())
    }

    #[test]
    fn only_the_variables_image_cloner_reads_must_be_utf8() {
        let env = vec![
            (OsString::from("FOO"), bytes(b"\xff")),
            (bytes(b"BAR\xff"), OsString::from("x")),
            (OsString::from("PATH"), bytes(b"/opt/\xff/bin:/usr/bin")),
            (OsString::from("BACKUP_REGISTRY"), OsString::from("q.io/x")),
        ];
        let mut problems = Vec::new();
        let read = read(&env, Task::CheckConfig, &mut problems);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(
            read.text,
            [("BACKUP_REGISTRY".to_owned(), "q.io/x".to_owned())]
        );
        assert_eq!(read.path, Some(bytes(b"/opt/\xff/bin:/usr/bin")));
    }

    #[test]
    fn a_non_utf8_variable_of_image_cloner_is_named_with_its_value() {
        let env = vec![
            (OsString::from("BACKUP_REGISTRY"), bytes(b"quay.io/\xffx")),
            (OsString::from("IMAGE_CLONER_NAMING"), bytes(b"fl\xfeat")),
            (OsString::from("IMAGE_CLONER_NOT_A_SETTING"), bytes(b"\xff")),
            (OsString::from("KUBECONFIG"), bytes(b"/k/\xff")),
            (bytes(b"IMAGE_CLONER_\xff"), OsString::from("x")),
        ];
        let mut problems = Vec::new();
        let read = read(&env, Task::CheckConfig, &mut problems);
        let all = problems.join("\n");
        assert_eq!(problems.len(), 5, "{all}");
        assert!(all.contains("invalid setting backup_registry = \"quay.io/\u{fffd}x\" (from environment variable BACKUP_REGISTRY): expected UTF-8 text, a registry host"), "{all}");
        assert!(all.contains("invalid setting naming = \"fl\u{fffd}at\" (from environment variable IMAGE_CLONER_NAMING)"), "{all}");
        assert!(
            all.contains("IMAGE_CLONER_NOT_A_SETTING = \"\u{fffd}\""),
            "{all}"
        );
        assert!(all.contains("invalid environment variable KUBECONFIG = \"/k/\u{fffd}\": expected UTF-8 text (image-cloner reads it as the kubeconfig path(s))"), "{all}");
        assert!(
            all.contains("invalid environment variable name \"IMAGE_CLONER_\u{fffd}\""),
            "{all}"
        );
        assert_eq!(
            read.broken.into_iter().collect::<Vec<_>>(),
            ["backup_registry", "naming"]
        );
    }
}
