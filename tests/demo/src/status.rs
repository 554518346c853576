//! `make demo`'s last section: `image-cloner status`, the answer to "if the public registries
//! disappeared now, which workloads could not start, and why?", printed as a user sees it and
//! checked against what the demo's workloads must be (`--output json`).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;

use anyhow::{Context as _, Result, bail};
use serde_json::Value;

use crate::cloner_command;

/// Runs `image-cloner status` with `args`: its standard output.
fn status(cloner: &Path, home: &Path, env: &[(&str, String)], args: &[&str]) -> Result<String> {
    let out = cloner_command(cloner, home, env)
        .arg("status")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .context("running image-cloner status")?;
    if !out.status.success() {
        bail!(
            "image-cloner status failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Prints `image-cloner status`, then checks that `--output json` counts exactly `expected`
/// workloads in each state (every other state none).
pub fn section(
    cloner: &Path,
    home: &Path,
    env: &[(&str, String)],
    expected: &[(&str, u64)],
) -> Result<()> {
    for line in status(cloner, home, env, &[])?.lines() {
        println!("  {line}");
    }
    let json: Value = serde_json::from_str(&status(cloner, home, env, &["--output", "json"])?)
        .context("image-cloner status --output json is not JSON")?;
    let counts: BTreeMap<String, u64> = json["counts"]
        .as_object()
        .context("no counts in image-cloner status --output json")?
        .iter()
        .map(|(k, v)| (k.clone(), v.as_u64().unwrap_or(u64::MAX)))
        .collect();
    let mut wanted: BTreeMap<String, u64> = counts.keys().map(|k| (k.clone(), 0)).collect();
    for (state, n) in expected {
        wanted.insert((*state).to_owned(), *n);
    }
    if counts != wanted {
        bail!("image-cloner status counted {counts:?}, expected {wanted:?}");
    }
    let summary: Vec<String> = expected.iter().map(|(s, n)| format!("{n} {s}")).collect();
    println!(
        "\n  checked (--output json): {}, nothing else",
        summary.join(", ")
    );
    Ok(())
}
