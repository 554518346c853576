//! The list of settings: each one's key (the TOML key), its environment names, its flag, the
//! type of value it takes, what it expects and which commands use it. The loader, the error
//! messages, the command line and `check-config` all read this one table, so the names cannot
//! drift apart.
//!
//! A command validates only the settings it uses, and offers only their flags: `restore` needs
//! no backup registry and no skopeo, `copy` no kubeconfig. The others are still read from the
//! environment and the file without error (one ConfigMap carries them all); `check-config`
//! checks every one.

use std::time::Duration;

/// Prefix of every setting's environment variable.
pub const ENV_PREFIX: &str = "IMAGE_CLONER_";

/// A setting's name in each layer and what it expects; the single list that the loader,
/// the error messages and `check-config` share.
pub struct Spec {
    pub key: &'static str,
    /// Also read from the bare upper-case name, as the original ConfigMap wrote it.
    pub bare_env: bool,
    pub kind: Kind,
    /// The flag's value name in `--help`.
    pub value: &'static str,
    /// The commands that read it (`check-config` reads all); see [`Spec::used_by`].
    pub used_by: &'static [Task],
    /// A command that uses it cannot start without it (it has no default).
    pub required: bool,
    /// Shown in every message about a bad value and in `--help`; states the bounds of
    /// [`Kind::Number`] and [`Kind::Duration`] (a test holds them equal).
    pub expected: &'static str,
}

/// The type of value a setting takes. The environment and flags give text; in the TOML file
/// the value's TOML type must fit too (`context = -1` is not a context name).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A TOML string.
    Text,
    /// A TOML integer or its digits, within the bounds.
    Number { min: u64, max: u64 },
    /// A TOML boolean, or `true`/`false`.
    Bool,
    /// A TOML string such as `30m`, within the bounds: a bound on every duration keeps
    /// `1ns` (every copy times out) and `100000000000h` (a timer that overflows) out.
    Duration { min: Duration, max: Duration },
    /// A TOML array of strings, or one comma-separated string.
    List,
}

impl Kind {
    /// What the TOML file must hold, for the message when its type is wrong.
    pub fn toml_type(self) -> &'static str {
        match self {
            Kind::Text | Kind::Duration { .. } => "a TOML string",
            Kind::Number { .. } => "a TOML integer",
            Kind::Bool => "a TOML boolean (true or false)",
            Kind::List => "a TOML array of strings, or one comma-separated string",
        }
    }
}

/// A command, as far as the settings go: which of them it reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Task {
    /// `run`, the daemon (and `run --once`).
    Run,
    /// `copy IMAGE...`: registries only, no cluster.
    Copy,
    /// `plan`: the cluster's workloads and the backup names they would get.
    Plan,
    /// `plan --check-backup`: also asks the backup registry (manifest HEAD, falling back to
    /// `skopeo inspect`), so it needs the registry access settings and skopeo too.
    PlanCheckBackup,
    /// `restore`: the cluster only; the original images are in each workload's annotation.
    Restore,
    /// `check-config`: every setting, to check a ConfigMap or a file before it is used.
    #[default]
    CheckConfig,
}

impl Task {
    /// The subcommand's name, for messages.
    pub fn command(self) -> &'static str {
        match self {
            Task::Run => "run",
            Task::Copy => "copy",
            Task::Plan => "plan",
            Task::PlanCheckBackup => "plan --check-backup",
            Task::Restore => "restore",
            Task::CheckConfig => "check-config",
        }
    }
}

// Not `Copy`: it would shadow the derive.
use Task::{Plan, PlanCheckBackup, Restore, Run};

/// Every command but `check-config` (which uses every setting anyway).
const ALL: &[Task] = &[Run, Task::Copy, Plan, Restore];
/// Where copies go and what they are called.
const NAMING: &[Task] = &[Run, Task::Copy, Plan];
/// Asking or writing to registries: skopeo, credentials, TLS, timeouts.
const REGISTRY: &[Task] = &[Run, Task::Copy, PlanCheckBackup];
/// Whether and how pods pull the copies: what `run` does and `plan` shows.
const PULLING: &[Task] = &[Run, Plan];
/// The reference a copy is patched to (`plan --check-backup` shows the one it finds).
const PINNING: &[Task] = &[Run, Task::Copy, PlanCheckBackup];
/// Reaching registries without credentials: `plan` too asks whether sources are public, and
/// whether the backup registry answers anonymous pulls.
const REGISTRY_ACCESS: &[Task] = &[Run, Task::Copy, Plan];
/// Which sources are copied at all: what `run` and `copy` do, and `plan` shows.
const SOURCES: &[Task] = &[Run, Task::Copy, Plan];
/// Copying: only `run` and `copy` copy.
const COPYING: &[Task] = &[Run, Task::Copy];
/// Reaching the cluster.
const CLUSTER: &[Task] = &[Run, Plan, Restore];
/// Which workloads are planned and patched.
const WORKLOADS: &[Task] = &[Run, Plan];
/// The daemon's own life.
const DAEMON: &[Task] = &[Run];

const fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

pub const SPECS: &[Spec] = &[
    Spec {
        key: "backup_registry",
        bare_env: true,
        value: "REGISTRY",
        used_by: NAMING,
        required: true,
        kind: Kind::Text,
        expected: "a registry host with an optional path, e.g. quay.io/my-org or registry.example.com:5000/backup",
    },
    Spec {
        key: "max_concurrent_reconciles",
        bare_env: true,
        value: "N",
        used_by: COPYING,
        required: false,
        kind: Kind::Number { min: 1, max: 100 },
        expected: "a whole number from 1 to 100",
    },
    Spec {
        key: "namespaces_to_ignore",
        bare_env: true,
        value: "NAMESPACES",
        used_by: WORKLOADS,
        required: false,
        kind: Kind::List,
        expected: "a comma-separated list of namespace names",
    },
    Spec {
        key: "namespaces",
        bare_env: false,
        value: "NAMESPACES",
        used_by: WORKLOADS,
        required: false,
        kind: Kind::List,
        expected: "a comma-separated list of namespace names to act in (empty: all)",
    },
    Spec {
        key: "naming",
        bare_env: false,
        value: "flat|nested",
        used_by: NAMING,
        required: false,
        kind: Kind::Text,
        expected: "\"flat\" or \"nested\"",
    },
    Spec {
        key: "pin",
        bare_env: false,
        value: "digest|tag",
        used_by: PINNING,
        required: false,
        kind: Kind::Text,
        expected: "\"digest\" or \"tag\"",
    },
    Spec {
        key: "docker_config",
        bare_env: false,
        value: "PATH",
        used_by: REGISTRY,
        required: false,
        kind: Kind::Text,
        expected: "the path of a readable docker config.json",
    },
    Spec {
        key: "skopeo",
        bare_env: false,
        value: "PATH",
        used_by: REGISTRY,
        required: false,
        kind: Kind::Text,
        expected: "the path of the skopeo executable",
    },
    Spec {
        key: "copy_timeout",
        bare_env: false,
        value: "DURATION",
        used_by: COPYING,
        required: false,
        kind: Kind::Duration {
            min: secs(10),
            max: secs(24 * 3600),
        },
        expected: "a duration from 10s to 24h, such as 30m or 90s",
    },
    Spec {
        key: "inspect_timeout",
        bare_env: false,
        value: "DURATION",
        used_by: REGISTRY_ACCESS,
        required: false,
        kind: Kind::Duration {
            min: secs(1),
            max: secs(600),
        },
        expected: "a duration from 1s to 10m, such as 1m or 30s",
    },
    Spec {
        key: "retry_times",
        bare_env: false,
        value: "N",
        used_by: REGISTRY,
        required: false,
        kind: Kind::Number { min: 0, max: 10 },
        expected: "a whole number from 0 to 10",
    },
    Spec {
        key: "insecure_registries",
        bare_env: false,
        value: "HOSTS",
        used_by: REGISTRY_ACCESS,
        required: false,
        kind: Kind::List,
        expected: "a comma-separated list of host[:port]",
    },
    Spec {
        key: "cert_dir",
        bare_env: false,
        value: "DIR",
        used_by: REGISTRY_ACCESS,
        required: false,
        kind: Kind::Text,
        expected: "a directory of CA certificates (*.crt)",
    },
    Spec {
        key: "tmp_dir",
        bare_env: false,
        value: "DIR",
        used_by: COPYING,
        required: false,
        kind: Kind::Text,
        expected: "a writable directory for skopeo's temporary files",
    },
    Spec {
        key: "kubeconfig",
        bare_env: false,
        value: "PATH",
        used_by: CLUSTER,
        required: false,
        kind: Kind::Text,
        expected: "the path of a readable kubeconfig (default: $KUBECONFIG, ~/.kube/config, then in-cluster)",
    },
    Spec {
        key: "context",
        bare_env: false,
        value: "NAME",
        used_by: CLUSTER,
        required: false,
        kind: Kind::Text,
        expected: "the name of a context in the kubeconfig",
    },
    Spec {
        key: "bare_pods",
        bare_env: false,
        value: "true|false",
        used_by: WORKLOADS,
        required: false,
        kind: Kind::Bool,
        expected: "true or false",
    },
    Spec {
        key: "patch_gitops_managed",
        bare_env: false,
        value: "true|false",
        used_by: WORKLOADS,
        required: false,
        kind: Kind::Bool,
        expected: "true or false",
    },
    Spec {
        key: "shutdown_grace",
        bare_env: false,
        value: "DURATION",
        used_by: DAEMON,
        required: false,
        kind: Kind::Duration {
            min: secs(0),
            max: secs(3600),
        },
        expected: "a duration from 0s to 1h, such as 30s or 5m",
    },
    Spec {
        key: "metrics_address",
        bare_env: false,
        value: "ADDRESS",
        used_by: DAEMON,
        required: false,
        kind: Kind::Text,
        expected: "an address to listen on, such as 127.0.0.1:9090 or 0.0.0.0:9090",
    },
    Spec {
        key: "log_format",
        bare_env: false,
        value: "text|json",
        used_by: ALL,
        required: false,
        kind: Kind::Text,
        expected: "\"text\" or \"json\"",
    },
    Spec {
        key: "log_level",
        bare_env: false,
        value: "FILTER",
        used_by: ALL,
        required: false,
        kind: Kind::Text,
        expected: "a level (error, warn, info, debug, trace, off) or comma-separated directives such as info,image_cloner=debug or kube_runtime[reconcile]=trace",
    },
    Spec {
        key: "source_include",
        bare_env: false,
        value: "PATTERNS",
        used_by: SOURCES,
        required: false,
        kind: Kind::List,
        expected: "comma-separated glob patterns over source repositories such as docker.io/*,ghcr.io/* ('*' matches any characters, '/' included; '?' one); only matching sources are copied (empty: every source)",
    },
    Spec {
        key: "source_exclude",
        bare_env: false,
        value: "PATTERNS",
        used_by: SOURCES,
        required: false,
        kind: Kind::List,
        expected: "comma-separated glob patterns over source repositories such as *.internal/*; matching sources are never copied (wins over source_include)",
    },
    Spec {
        key: "copy_private_sources",
        bare_env: false,
        value: "false|true|REGISTRIES",
        used_by: SOURCES,
        required: false,
        kind: Kind::List,
        expected: "false, true, or a comma-separated list of registries (host[:port]) whose private images (served only with credentials) may be copied",
    },
    Spec {
        key: "pull_budget_reserve",
        bare_env: false,
        value: "N",
        used_by: COPYING,
        required: false,
        kind: Kind::Number { min: 0, max: 10000 },
        expected: "a whole number from 0 to 10000: pulls of a registry's reported budget (Docker Hub's ratelimit-remaining) left untouched for the nodes",
    },
    Spec {
        key: "pull_secret",
        bare_env: false,
        value: "NAME",
        used_by: PULLING,
        required: false,
        kind: Kind::Text,
        expected: "the name of the Secret image-cloner creates in each namespace it patches, holding only the backup registry's credentials (a DNS subdomain name such as image-cloner-pull), or empty for none",
    },
    Spec {
        key: "pull_check",
        bare_env: false,
        value: "on|off",
        used_by: PULLING,
        required: false,
        kind: Kind::Text,
        expected: "\"on\" (patch only where pods can pull the copy: a pull secret in place, or a backup registry that answers anonymous pulls) or \"off\" (the nodes have their own credentials for the backup registry)",
    },
];

impl Spec {
    pub fn env_name(&self) -> String {
        format!("{ENV_PREFIX}{}", self.key.to_ascii_uppercase())
    }

    /// The original ConfigMap's name (`BACKUP_REGISTRY`), for the three settings that have one.
    pub fn bare_env_name(&self) -> Option<String> {
        self.bare_env.then(|| self.key.to_ascii_uppercase())
    }

    pub fn flag(&self) -> String {
        format!("--{}", self.key.replace('_', "-"))
    }

    /// Whether `task` reads this setting. `plan --check-backup` reads what `plan` reads.
    pub fn used_by(&self, task: Task) -> bool {
        match task {
            Task::CheckConfig => true,
            Task::PlanCheckBackup => {
                self.used_by.contains(&Task::Plan) || self.used_by.contains(&Task::PlanCheckBackup)
            }
            task => self.used_by.contains(&task),
        }
    }

    pub(crate) fn find(key: &str) -> Option<&'static Spec> {
        SPECS.iter().find(|s| s.key == key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `24h` rather than humantime's `1day`: as an operator would write it.
    fn hms(d: Duration) -> String {
        match d.as_secs() {
            s if s > 0 && s % 3600 == 0 => format!("{}h", s / 3600),
            s if s > 0 && s % 60 == 0 => format!("{}m", s / 60),
            s => format!("{s}s"),
        }
    }

    /// The bounds the loader enforces are the ones every message states.
    #[test]
    fn expected_states_the_bounds() {
        for spec in SPECS {
            let (min, max) = match spec.kind {
                Kind::Number { min, max } => (min.to_string(), max.to_string()),
                Kind::Duration { min, max } => (hms(min), hms(max)),
                _ => continue,
            };
            let stated = format!("from {min} to {max}");
            assert!(
                spec.expected.contains(&stated),
                "{}: {:?} does not say {stated:?}",
                spec.key,
                spec.expected
            );
        }
    }
}
