//! The skopeo processes a run started, as `skopeo-recorder` (this crate's stand-in for skopeo)
//! logged them: one line per process, its subcommand and its `docker://` references.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::Path;

use anyhow::{Context as _, Result};

/// The environment variable naming the file `skopeo-recorder` appends to.
pub const LOG_ENV: &str = "BENCH_SKOPEO_LOG";
/// The environment variable naming the real skopeo (default: `skopeo` on `PATH`).
pub const REAL_ENV: &str = "BENCH_SKOPEO_REAL";

const SUBCOMMANDS: &[&str] = &[
    "copy",
    "inspect",
    "delete",
    "list-tags",
    "login",
    "logout",
    "manifest-digest",
    "sync",
];

/// The line `skopeo-recorder` writes for one run: the subcommand, then the image references
/// (never a flag's value: an authfile path or anything else stays out of the log).
pub fn record_line(args: &[OsString]) -> String {
    let args: Vec<String> = args
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let subcommand = args
        .iter()
        .find(|a| SUBCOMMANDS.contains(&a.as_str()))
        .map_or("other", String::as_str);
    let mut line = subcommand.to_owned();
    for image in args.iter().filter(|a| a.starts_with("docker://")) {
        line.push(' ');
        line.push_str(image);
    }
    line.push('\n');
    line
}

/// Processes started, by subcommand, from a log `skopeo-recorder` wrote (absent: none).
pub fn processes(log: &Path) -> Result<BTreeMap<String, u64>> {
    let text = match std::fs::read_to_string(log) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e).with_context(|| format!("reading {}", log.display())),
    };
    let mut by_subcommand = BTreeMap::new();
    for line in text.lines() {
        let subcommand = line.split_whitespace().next().unwrap_or("other");
        *by_subcommand.entry(subcommand.to_owned()).or_default() += 1;
    }
    Ok(by_subcommand)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_names_the_subcommand_and_images_never_flag_values() {
        let args: Vec<OsString> = [
            "--tmpdir",
            "/var/tmp/x",
            "copy",
            "--authfile",
            "/etc/secret.json",
            "docker://a/b:1",
            "docker://c/d:1",
        ]
        .iter()
        .map(OsString::from)
        .collect();
        let line = record_line(&args);
        assert_eq!(line, "copy docker://a/b:1 docker://c/d:1\n");
    }

    #[test]
    fn processes_are_counted_by_subcommand() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let log = dir.path().join("skopeo.log");
        assert!(processes(&log).expect("absent is none").is_empty());
        std::fs::write(
            &log,
            "copy docker://a docker://b\ninspect docker://a\ncopy x\n",
        )
        .expect("write");
        let p = processes(&log).expect("read");
        assert_eq!((p["copy"], p["inspect"]), (2, 1));
    }
}
