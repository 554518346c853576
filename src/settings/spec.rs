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
    /// `status`: what `plan --check-backup` reads (the workloads, and the backup registry to
    /// check the copies they run).
    Status,
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
            Task::Status => "status",
            Task::CheckConfig => "check-config",
        }
    }
}

mod table;
pub use table::SPECS;

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

    /// Whether `task` reads this setting. `plan --check-backup` reads what `plan` reads, and
    /// `status` what `plan --check-backup` reads.
    pub fn used_by(&self, task: Task) -> bool {
        match task {
            Task::CheckConfig => true,
            Task::PlanCheckBackup | Task::Status => {
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
