//! The command line a newcomer meets: each subcommand's flags, its help, where flags may go.

use super::*;

fn parse_from(args: &[&str]) -> Result<(Cli, SettingFlags), clap::Error> {
    from_matches(&command().try_get_matches_from(args)?)
}

/// `image-cloner ARGS --help`, as printed.
fn help(args: &[&str]) -> String {
    let mut argv = vec!["image-cloner"];
    argv.extend(args);
    argv.push("--help");
    match command().try_get_matches_from(argv) {
        Err(e) if e.kind() == ErrorKind::DisplayHelp => e.render().to_string(),
        other => panic!("{args:?} --help did not print help: {other:?}"),
    }
}

/// Every setting flag in `text`, as `--flag <VALUE>` (so `--namespaces` is not found inside
/// `--namespaces-to-ignore`).
fn flags_in(text: &str) -> Vec<&'static str> {
    SPECS
        .iter()
        .filter(|s| text.contains(&format!("{} <{}>", s.flag(), s.value)))
        .map(|s| s.key)
        .collect()
}

#[test]
fn the_command_definition_is_consistent() {
    command().debug_assert();
}

#[test]
fn each_subcommand_offers_the_flags_of_the_settings_it_uses() {
    let all: Vec<&str> = SPECS.iter().map(|s| s.key).collect();
    let copy = [
        "backup_registry",
        "max_concurrent_reconciles",
        "naming",
        "pin",
        "docker_config",
        "skopeo",
        "copy_timeout",
        "inspect_timeout",
        "retry_times",
        "insecure_registries",
        "cert_dir",
        "tmp_dir",
        "log_format",
        "log_level",
        "source_include",
        "source_exclude",
        "copy_private_sources",
        "pull_budget_reserve",
    ];
    let plan = [
        "backup_registry",
        "namespaces_to_ignore",
        "namespaces",
        "naming",
        "pin",
        "docker_config",
        "skopeo",
        "inspect_timeout",
        "retry_times",
        "insecure_registries",
        "cert_dir",
        "kubeconfig",
        "context",
        "bare_pods",
        "patch_gitops_managed",
        "log_format",
        "log_level",
        "source_include",
        "source_exclude",
        "copy_private_sources",
        "pull_secret",
        "pull_check",
    ];
    let restore = ["kubeconfig", "context", "log_format", "log_level"];
    assert_eq!(flags_in(&help(&["copy"])), copy);
    assert_eq!(flags_in(&help(&["plan"])), plan);
    assert_eq!(flags_in(&help(&["restore"])), restore);
    assert_eq!(flags_in(&help(&["run"])), all);
    assert_eq!(flags_in(&help(&["check-config"])), all);
    let root = help(&[]);
    assert!(flags_in(&root).is_empty(), "{root}");
    assert!(root.contains("--config <PATH>"), "{root}");
}

#[test]
fn backup_registry_is_shown_required_with_both_environment_names() {
    for sub in ["copy", "run", "plan"] {
        let text = help(&[sub]);
        let line = text
            .lines()
            .find(|l| l.contains("--backup-registry <REGISTRY>"))
            .unwrap_or_else(|| panic!("{sub}: {text}"));
        let described = format!("{line}\n{}", text.split(line).nth(1).unwrap_or_default());
        assert!(
            described.contains("Required: a registry host")
                && described.contains("[env: BACKUP_REGISTRY or IMAGE_CLONER_BACKUP_REGISTRY]"),
            "{sub}: {text}"
        );
        assert!(!text.contains("cargaona"), "{text}");
    }
}

#[test]
fn plan_output_has_a_description() {
    let text = help(&["plan"]);
    let line = text
        .lines()
        .find(|l| l.contains("-o, --output <OUTPUT>"))
        .expect("plan --help lists -o");
    assert!(line.contains("How to print the plan"), "{text}");
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
    ])
    .expect("valid command line");
    assert!(matches!(cli.command, Command::Copy { ref images } if images == &["nginx"]));
    assert!(flags.contains(&("backup_registry", "quay.io/a".into())));
    assert!(flags.contains(&("max_concurrent_reconciles", "3".into())));

    let (_, flags) = parse_from(&[
        "image-cloner",
        "--log-level",
        "debug",
        "copy",
        "--log-level",
        "warn",
        "nginx",
    ])
    .expect("valid command line");
    assert_eq!(flags, [("log_level", "warn".to_owned())], "after wins");
}

#[test]
fn a_setting_flag_the_subcommand_does_not_use_is_refused_before_or_after_it() {
    let e = parse_from(&["image-cloner", "--kubeconfig", "k", "copy", "nginx"])
        .expect_err("copy does not use a kubeconfig");
    assert_eq!(e.kind(), ErrorKind::ArgumentConflict);
    assert!(
        e.to_string().contains("--kubeconfig is not used by `copy`"),
        "{e}"
    );
    let e =
        parse_from(&["image-cloner", "restore", "--pin", "tag"]).expect_err("restore does not pin");
    assert_eq!(e.kind(), ErrorKind::UnknownArgument, "{e}");
}

#[test]
fn commands_map_to_what_they_read() {
    let task = |args: &[&str]| parse_from(args).expect("valid").0.command.task();
    assert_eq!(task(&["image-cloner", "plan"]), Task::Plan);
    assert_eq!(
        task(&["image-cloner", "plan", "--check-backup"]),
        Task::PlanCheckBackup
    );
    assert_eq!(task(&["image-cloner", "restore"]), Task::Restore);
    assert_eq!(task(&["image-cloner", "copy", "x"]), Task::Copy);
}

#[test]
fn copy_needs_an_image() {
    assert!(parse_from(&["image-cloner", "copy"]).is_err());
}

/// Only the daemon runs until it is stopped; everything else, `run --once` among it, exits.
#[test]
fn only_the_daemon_runs_until_stopped() {
    let exits = |args: &[&str]| {
        let mut argv = vec!["image-cloner"];
        argv.extend(args);
        parse_from(&argv)
            .expect("a valid command line")
            .0
            .command
            .exits_when_done()
    };
    assert!(!exits(&["run"]));
    for args in [
        &["run", "--once"][..],
        &["copy", "nginx:1.27"],
        &["plan"],
        &["plan", "--check-backup"],
        &["check-config"],
        &["restore"],
        &["status"],
    ] {
        assert!(exits(args), "{args:?}");
    }
}
