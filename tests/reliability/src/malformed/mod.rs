//! Malformed input, generated from categories: settings, docker configs, kubeconfigs, hostile
//! image strings in workloads, hostile annotations for `restore`. Every case must end without
//! a panic (exit 101 or "panicked" anywhere fails it), with a clear message naming the input or
//! a clean skip; and whatever reached skopeo (through the recording skopeo) must hold no
//! input-derived flag and no transport but `docker://`.

pub mod annotations;
pub mod files;
pub mod images;
pub mod settings;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::process::Output;
use std::time::Duration;

use anyhow::Result;

use crate::daemon::{self, panicked, text};
use crate::report::Report;
use crate::source::Source;
use crate::world::{Bins, World};

/// How a settings case is given.
pub enum Input {
    /// A TOML file's text (passed with `--config`).
    File(String),
    FileBytes(Vec<u8>),
    /// Environment variables (names and values as bytes).
    Env(Vec<(OsString, OsString)>),
}

/// A settings case: `check-config` must exit 2 naming `names`.
pub struct Case {
    pub name: String,
    pub names: &'static str,
    pub input: Input,
}

impl Case {
    pub fn settings(name: String, names: &'static str, input: Input) -> Case {
        Case { name, names, input }
    }
}

/// Tallies per category: cases tried, and how each ended.
#[derive(Default)]
pub struct Tally {
    pub by_category: BTreeMap<&'static str, (usize, usize, usize)>,
    pub panics: usize,
}

impl Tally {
    /// Counts one case: `clear` (a message naming the input) or a clean skip.
    pub fn count(&mut self, category: &'static str, clear: bool) {
        let e = self.by_category.entry(category).or_default();
        e.0 += 1;
        if clear {
            e.1 += 1;
        } else {
            e.2 += 1;
        }
    }

    pub fn total(&self) -> usize {
        self.by_category.values().map(|t| t.0).sum()
    }
}

/// Checks one finished command: no panic. The failure names the case.
pub fn no_panic(report: &mut Report, tally: &mut Tally, case: &str, o: &Output) -> bool {
    let ok = !panicked(o);
    if !ok {
        tally.panics += 1;
    }
    report.check(ok, format!("{case}: panicked: {}", text(o)))
}

pub fn run(bins: &Bins, short: bool, report: &mut Report) -> Result<()> {
    report.section("malformed input");
    let mut tally = Tally::default();
    let mut world = World::new(bins)?;
    let source = Source::start(4, 900, 16 * 1024)?;
    world.insecure.push(source.registry.host());
    settings_cases(&world, report, &mut tally)?;
    files::docker_configs(&world, &source, report, &mut tally)?;
    files::flag_like_paths(&world, &source, report, &mut tally)?;
    files::kubeconfigs(&world, report, &mut tally)?;
    images::run(&world, &source, short, report, &mut tally)?;
    annotations::run(&world, &source, report, &mut tally)?;
    let (runs, violations) = crate::argv::check(&world.skopeo_log);
    for v in violations.iter().take(10) {
        report.check(false, v);
    }
    for (category, (tried, clear, skipped)) in &tally.by_category {
        report.figure(format!(
            "{category}: {tried} cases, {clear} refused with a message naming the input, {skipped} cleanly skipped or accepted"
        ));
    }
    report.figure(format!(
        "{} malformed inputs tried, {} panics; {} skopeo runs recorded, {} with an input-derived flag or a transport other than docker://",
        tally.total(),
        tally.panics,
        runs,
        violations.len()
    ));
    Ok(())
}

/// `check-config` with a case's settings over a valid base.
fn settings_cases(world: &World, report: &mut Report, tally: &mut Tally) -> Result<()> {
    let cases = settings::cases();
    check_table_is_complete(world, report)?;
    for (i, case) in cases.iter().enumerate() {
        let mut cmd = world.bare_command();
        cmd.arg("check-config");
        let base = "backup_registry = \"quay.io/base\"\n";
        let base = if case.names == "backup_registry" {
            ""
        } else {
            base
        };
        match &case.input {
            Input::File(text) => {
                let path = world.path(&format!("settings-{i}.toml"));
                std::fs::write(&path, format!("{base}{text}"))?;
                cmd.arg("--config").arg(path);
            }
            Input::FileBytes(bytes) => {
                let path = world.path(&format!("settings-{i}.toml"));
                std::fs::write(&path, bytes)?;
                cmd.arg("--config").arg(path);
            }
            Input::Env(vars) => {
                if case.names != "backup_registry" {
                    cmd.env("BACKUP_REGISTRY", "quay.io/base");
                }
                for (k, v) in vars {
                    cmd.env(k, v);
                }
            }
        }
        let o = daemon::run(cmd, Duration::from_secs(20))?;
        if !no_panic(report, tally, &case.name, &o) {
            continue;
        }
        let t = text(&o);
        let clear = o.status.code() == Some(2) && t.contains(case.names);
        report.check(
            clear,
            format!(
                "{}: expected exit 2 naming {}, got {:?}: {}",
                case.name,
                case.names,
                o.status.code(),
                t.trim()
            ),
        );
        tally.count("settings", clear);
    }
    // Non-UTF-8 variables image-cloner does not read: ignored (the probe's first finding).
    for (name, value) in [("FOO", b"\xff".as_slice()), ("LANG", b"\xc3\x28")] {
        let mut cmd = world.bare_command();
        cmd.env("BACKUP_REGISTRY", "quay.io/base");
        cmd.env(name, OsString::from_vec(value.to_vec()))
            .arg("check-config");
        let o = daemon::run(cmd, Duration::from_secs(20))?;
        let case = format!("{name} not UTF-8 (not image-cloner's)");
        if no_panic(report, tally, &case, &o) {
            let ok = o.status.success();
            report.check(ok, format!("{case}: not ignored: {}", text(&o)));
            tally.count("settings", false);
        }
    }
    Ok(())
}

use std::os::unix::ffi::OsStringExt as _;

/// Every setting `check-config` prints must be in the suite's table.
fn check_table_is_complete(world: &World, report: &mut Report) -> Result<()> {
    let mut cmd = world.command(&[]);
    cmd.arg("check-config");
    let o = daemon::run(cmd, Duration::from_secs(20))?;
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    let known = settings::keys();
    let printed: Vec<&str> = out
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|w| w.chars().all(|c| c.is_ascii_lowercase() || c == '_') && w.contains('_'))
        .collect();
    let missing: Vec<&&str> = printed.iter().filter(|k| !known.contains(k)).collect();
    report.check(
        o.status.success() && missing.is_empty(),
        format!(
            "settings check-config prints that the suite does not try (add them to malformed/settings.rs): {missing:?}; exit {:?}",
            o.status.code()
        ),
    );
    Ok(())
}
