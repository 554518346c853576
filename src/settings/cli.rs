//! The command line. Every setting is also a global flag (`--backup-registry`, ...), generated
//! from [`SPECS`] so that the flags, the environment names and the file keys never drift apart.

use std::path::PathBuf;

use clap::{Arg, ArgMatches, CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::settings::SPECS;

/// Copies the public images a Kubernetes cluster runs into a registry you own, and points the
/// workloads at the copies.
#[derive(Debug, Parser)]
#[command(name = "image-cloner", version, propagate_version = true)]
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
        #[arg(long, short, value_enum, default_value_t = Output::Table)]
        output: Output,
        /// Also ask the backup registry which copies already exist (no copy is made).
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
}

/// How `plan` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    Table,
    Json,
}

/// The full command definition: the derived commands plus one global flag per setting.
pub fn command() -> clap::Command {
    SPECS.iter().fold(Cli::command(), |cmd, spec| {
        cmd.arg(
            Arg::new(spec.key)
                .long(spec.flag().trim_start_matches("--").to_owned())
                .global(true)
                .value_name("VALUE")
                .help(format!(
                    "Setting `{}` (env {}): {}",
                    spec.key,
                    spec.env_name(),
                    spec.expected
                ))
                .help_heading("Settings (flags override environment and file)"),
        )
    })
}

/// Parses the process arguments: the typed CLI and the settings given as flags.
pub fn parse() -> (Cli, Vec<(&'static str, String)>) {
    let matches = command().get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    (cli, setting_flags(&matches))
}

fn setting_flags(matches: &ArgMatches) -> Vec<(&'static str, String)> {
    // Global args are propagated to the subcommand's matches.
    let sub = matches.subcommand().map_or(matches, |(_, m)| m);
    SPECS
        .iter()
        .filter_map(|spec| {
            sub.get_one::<String>(spec.key)
                .or_else(|| matches.get_one::<String>(spec.key))
                .map(|v| (spec.key, v.clone()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_from(args: &[&str]) -> (Cli, Vec<(&'static str, String)>) {
        let matches = command().try_get_matches_from(args).unwrap();
        (
            Cli::from_arg_matches(&matches).unwrap(),
            setting_flags(&matches),
        )
    }

    #[test]
    fn the_command_definition_is_consistent() {
        command().debug_assert();
    }

    #[test]
    fn setting_flags_work_before_and_after_the_subcommand() {
        let (cli, flags) = parse_from(&[
            "image-cloner",
            "--backup-registry",
            "quay.io/a",
            "copy",
            "--max-concurrent-reconciles",
            "3",
            "nginx",
        ]);
        assert!(matches!(cli.command, Command::Copy { ref images } if images == &["nginx"]));
        assert!(flags.contains(&("backup_registry", "quay.io/a".into())));
        assert!(flags.contains(&("max_concurrent_reconciles", "3".into())));
    }

    #[test]
    fn copy_needs_an_image() {
        assert!(
            command()
                .try_get_matches_from(["image-cloner", "copy"])
                .is_err()
        );
    }
}
