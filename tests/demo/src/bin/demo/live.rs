//! What a user does while the daemon runs, and what the demo expects of it: a Deployment
//! created in the opted-out namespace stays as it is; `restore` leaves the workload restored
//! (opted out) until it is opted back in, and then the daemon patches it again.

use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context as _, Result};
use demo::Daemon;
use demo::check::{Checks, Expect};

use crate::cluster::Cluster;
use crate::observe::{self, Backup};
use crate::samples::Sample;

const SKIP: &str = "image-cloner.io/skip";
const ORIGINAL_IMAGES: &str = "image-cloner.io/original-images";
/// How long the daemon may take to act on a change.
const ACT_WITHIN: Duration = Duration::from_secs(30);

/// Waits for `what`; a timeout is a failed check (named at the end), not an abort.
fn wait(
    daemon: &Daemon,
    checks: &mut Checks,
    what: &str,
    check: impl FnMut() -> Result<bool>,
) -> Result<()> {
    let done = daemon.wait_until(ACT_WITHIN, check)?;
    checks.expect_that(
        what,
        format!("within {}s", ACT_WITHIN.as_secs()),
        if done { "yes" } else { "timed out" },
        done,
    );
    Ok(())
}

/// Whether image-cloner has patched the workload (it records the originals when it does).
fn patched(cluster: &Cluster, kind: &str, ns: &str, name: &str) -> Result<bool> {
    let obj = cluster.get(kind, ns, name)?;
    Ok(!obj["metadata"]["annotations"][ORIGINAL_IMAGES].is_null())
}

/// Whether the daemon logged its decision to leave the workload alone.
fn left_alone(daemon: &Daemon, kind: &str, ns: &str, name: &str) -> bool {
    daemon.logged_about(kind, ns, name, "decision=\"opt-out\"")
        || daemon.logged_about(kind, ns, name, "not patched")
}

/// A Deployment created in `frozen` (opted out) while the daemon runs, beside one in `shop`
/// on the same image: only the latter is patched.
pub fn opt_out_holds(
    cluster: &Cluster,
    daemon: &Daemon,
    backup: &mut Backup,
    checks: &mut Checks,
    nginx: &str,
) -> Result<()> {
    println!(
        "  created now: Deployment frozen/late-web and Deployment shop/late-web, both running nginx"
    );
    for ns in ["frozen", "shop"] {
        let obj = demo::workload("Deployment", ns, "late-web", &[("nginx", nginx)], &[], &[]);
        cluster.create(obj)?;
    }
    wait(
        daemon,
        checks,
        "the daemon left frozen/late-web alone and patched shop/late-web",
        || {
            Ok(left_alone(daemon, "Deployment", "frozen", "late-web")
                && patched(cluster, "Deployment", "shop", "late-web")?)
        },
    )?;
    let before = [("nginx", nginx.to_owned())];
    let mut rows = observe::workload(
        cluster,
        backup,
        ("Deployment", "frozen", "late-web"),
        &before,
        Expect::Unchanged("opt-out (namespace annotation)"),
    )?;
    rows.extend(observe::workload(
        cluster,
        backup,
        ("Deployment", "shop", "late-web"),
        &before,
        Expect::Patched,
    )?);
    observe::record_and_print(checks, rows);
    Ok(())
}

/// `image-cloner restore` of `sample` while the daemon runs: restored and opted out, it stays
/// restored; opted back in as restore says, the daemon patches it again.
pub fn restore_while_running(
    cluster: &Cluster,
    daemon: &Daemon,
    backup: &mut Backup,
    checks: &mut Checks,
    mut restore: Command,
    sample: &Sample,
) -> Result<()> {
    let (kind, ns, name) = (sample.kind, sample.ns, sample.name);
    let selector = format!("app={name}");
    println!("  $ image-cloner restore -n {ns} -l {selector}");
    let out = restore
        .args(["restore", "-n", ns, "-l", &selector])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .context("running image-cloner restore")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    for line in stdout.lines() {
        println!("    {line}");
    }
    checks.expect_that(
        "image-cloner restore",
        "exits 0",
        out.status.to_string(),
        out.status.success(),
    );
    let says = stdout
        .lines()
        .find(|l| l.contains(&format!("opted out ({SKIP}=true)")));
    checks.expect_that(
        "restore's output",
        "says the workload was opted out",
        says.unwrap_or("(no such line)"),
        says.is_some(),
    );
    wait(
        daemon,
        checks,
        &format!("the daemon saw the restored {kind} {ns}/{name} and left it alone"),
        || Ok(left_alone(daemon, kind, ns, name)),
    )?;
    let before = sample.images();
    let rows = observe::workload(
        cluster,
        backup,
        (kind, ns, name),
        &before,
        Expect::Unchanged("restored, opted out"),
    )?;
    observe::record_and_print(checks, rows);

    println!(
        "\n  opted back in, as restore says: kubectl annotate {} {name} -n {ns} {SKIP}-",
        kind.to_lowercase()
    );
    cluster.remove_annotation(kind, ns, name, SKIP)?;
    wait(
        daemon,
        checks,
        &format!("the daemon patched {kind} {ns}/{name} again"),
        || patched(cluster, kind, ns, name),
    )?;
    let rows = observe::workload(cluster, backup, (kind, ns, name), &before, Expect::Patched)?;
    observe::record_and_print(checks, rows);
    Ok(())
}
