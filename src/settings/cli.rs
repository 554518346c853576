//! The command line. Each subcommand offers a flag for each setting it uses (`copy` has
//! `--backup-registry` but no `--kubeconfig`), generated from [`SPECS`] so that the flags, the
//! environment names and the file keys never drift apart. A setting flag may also come before
//! the subcommand (`image-cloner --backup-registry X copy nginx`), when that subcommand uses it.

use std::path::PathBuf;

use clap::error::ErrorKind;
use clap::{Arg, ArgMatches, CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::settings::spec::{SPECS, Spec, Task};

/// Copies the public images a Kubernetes cluster runs into a registry you own, and points the
/// workloads at the copies.
#[derive(Debug, Parser)]
#[command(
    name = "image-cloner",
    version,
    propagate_version = true,
    after_help = "Settings come from flags, environment variables and /etc/image-cloner/config.toml; `image-cloner <COMMAND> --help` lists the ones a command uses."
)]
pub struct Cli {
    /// TOML settings file (default: /etc/image-cloner/config.toml when it exists).
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the effective settings (credentials redacted) and where each came from; exit 2
    /// naming every invalid setting.
    CheckConfig,
    /// Clone the given images into the backup registry now and print where each went.
    Copy {
        /// Images as a pod spec would name them (nginx:1.27, ghcr.io/org/app@sha256:...).
        #[arg(required = true, value_name = "IMAGE")]
        images: Vec<String>,
    },
    /// The daemon: watch the cluster, clone the images workloads run, verify, patch.
    Run {
        /// Reconcile everything present once, wait for it, print a summary and exit (0 when
        /// all succeeded): for a cron job or CI.
        #[arg(long)]
        once: bool,
    },
    /// Print what `run` would do, without writing or copying anything.
    Plan {
        /// How to print the plan: a table for people, or JSON for scripts.
        #[arg(long, short, value_enum, default_value_t = Output::Table)]
        output: Output,
        /// Also ask the backup registry which copies already exist (no copy is made; needs
        /// skopeo, which a plain `plan` does not).
        #[arg(long)]
        check_backup: bool,
    },
    /// Put the original images back, from the annotation image-cloner recorded, and opt each
    /// restored workload out (image-cloner.io/skip=true) so that a running daemon leaves it.
    Restore {
        /// Only this namespace.
        #[arg(long, short)]
        namespace: Option<String>,
        /// Only workloads matching this label selector (app=web,tier!=db).
        #[arg(long, short = 'l')]
        selector: Option<String>,
        /// Show what would be restored; write nothing.
        #[arg(long)]
        dry_run: bool,
        /// Do not opt restored workloads out: a running daemon will patch them again.
        #[arg(long)]
        allow_repatch: bool,
        /// Also restore originals that their recorded backup is not a copy of (an annotation
        /// edited by hand); they must still be valid image references.
        #[arg(long)]
        allow_unmatched: bool,
    },
    /// If the public registries disappeared now, which workloads could not start, and why:
    /// counts and a table by state (protected, not yet copied, copy failing, backup copy
    /// missing, ...). Asks the backup registry about every copy in use; writes nothing.
    Status {
        /// A table for people, or JSON for scripts.
        #[arg(long, short, value_enum, default_value_t = Output::Table)]
        output: Output,
    },
}

impl Command {
    /// Whether the command does its work and exits: every one but the daemon (`run` without
    /// `--once`), which runs until it is stopped. The ones that exit run with transparent huge
    /// pages (`ops::huge_pages`).
    pub fn exits_when_done(&self) -> bool {
        !matches!(self, Command::Run { once: false })
    }

    /// What the command reads from the settings.
    pub fn task(&self) -> Task {
        match self {
            Command::CheckConfig => Task::CheckConfig,
            Command::Copy { .. } => Task::Copy,
            Command::Run { .. } => Task::Run,
            Command::Plan {
                check_backup: true, ..
            } => Task::PlanCheckBackup,
            Command::Plan { .. } => Task::Plan,
            Command::Restore { .. } => Task::Restore,
            Command::Status { .. } => Task::Status,
        }
    }
}

/// Settings given as flags: (key, value).
pub type SettingFlags = Vec<(&'static str, String)>;

/// How `plan` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    Table,
    Json,
}

/// The settings a subcommand offers flags for: `plan` offers those of `plan --check-backup`.
fn offered_by(subcommand: &str) -> Task {
    match subcommand {
        "run" => Task::Run,
        "copy" => Task::Copy,
        "plan" => Task::PlanCheckBackup,
        "restore" => Task::Restore,
        "status" => Task::Status,
        _ => Task::CheckConfig,
    }
}

/// A setting's flag: its expectation, whether it is required, and its environment names.
fn setting_arg(spec: &Spec) -> Arg {
    let env = match spec.bare_env_name() {
        Some(bare) => format!("{bare} or {}", spec.env_name()),
        None => spec.env_name(),
    };
    let expected = if spec.required {
        format!("Required: {}", spec.expected)
    } else {
        capitalized(spec.expected)
    };
    Arg::new(spec.key)
        .long(spec.flag().trim_start_matches("--").to_owned())
        .value_name(spec.value)
        .help(format!("{expected} [env: {env}]"))
        .help_heading("Settings (flags override environment and file)")
}

/// `expected` begins lower-case, to follow "expected" in a message; a help line begins upper.
fn capitalized(s: &str) -> String {
    let mut chars = s.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

/// The full command definition: the derived commands plus, on each subcommand, one flag per
/// setting it uses. The root takes every setting flag too, hidden (its help would list all
/// 22); [`from_matches`] refuses one the chosen subcommand does not use.
pub fn command() -> clap::Command {
    let root = SPECS.iter().fold(Cli::command(), |cmd, spec| {
        cmd.arg(setting_arg(spec).hide(true))
    });
    root.mut_subcommands(|sub| {
        let task = offered_by(sub.get_name());
        SPECS
            .iter()
            .filter(|spec| spec.used_by(task))
            .fold(sub, |sub, spec| sub.arg(setting_arg(spec)))
    })
}

/// Parses the process arguments: the typed CLI and the settings given as flags. Exits 2 on a
/// bad command line, as clap does.
pub fn parse() -> (Cli, SettingFlags) {
    let matches = command().get_matches();
    match from_matches(&matches) {
        Ok(parsed) => parsed,
        Err(e) => e.exit(),
    }
}

/// The typed CLI and the setting flags, the subcommand's over the root's.
pub fn from_matches(matches: &ArgMatches) -> Result<(Cli, SettingFlags), clap::Error> {
    let cli = Cli::from_arg_matches(matches)?;
    let (name, sub) = matches.subcommand().unwrap_or(("", matches));
    let offered = offered_by(name);
    let mut flags = Vec::new();
    for spec in SPECS {
        // `try_get_one`: the subcommand may not define this flag at all.
        let after = sub.try_get_one::<String>(spec.key).ok().flatten();
        let before = matches.try_get_one::<String>(spec.key).ok().flatten();
        if let Some(v) = after.or(before) {
            if !spec.used_by(offered) {
                return Err(command().error(
                    ErrorKind::ArgumentConflict,
                    format!(
                        "{} is not used by `{name}` (see `image-cloner {name} --help`)",
                        spec.flag()
                    ),
                ));
            }
            flags.push((spec.key, v.clone()));
        }
    }
    Ok((cli, flags))
}

#[cfg(test)]
mod tests;
