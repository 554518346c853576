//! What happened to the workloads, observed as a user would: the images they run now, and for
//! every backup image, the digest the backup registry serves for it (`skopeo inspect --raw`).
//! The comparison with the expectations is `demo::check`'s.

use std::collections::BTreeMap;
use std::process::{Command, Stdio};

use anyhow::{Context as _, Result};
use demo::check::{Check, Checks, Expect, Observed, image_row, pinned_digest};
use demo::containers_of;

use crate::cluster::Cluster;

/// The digests the backup registry served, by image reference (each asked once).
#[derive(Default)]
pub struct Backup {
    pub host: String,
    served: BTreeMap<String, Result<String, String>>,
}

impl Backup {
    pub fn new(host: &str) -> Backup {
        Backup {
            host: host.to_owned(),
            served: BTreeMap::new(),
        }
    }

    /// For a pinned image in the backup registry: the digest it serves at that pin.
    fn served(&mut self, image: &str) -> Option<Result<String, String>> {
        if !image.starts_with(&format!("{}/", self.host)) {
            return None;
        }
        let digest = pinned_digest(image)?;
        let found = self
            .served
            .entry(image.to_owned())
            .or_insert_with(|| inspect(image, digest));
        Some(found.clone())
    }

    /// The images asked about, with what the registry served.
    pub fn asked(&self) -> &BTreeMap<String, Result<String, String>> {
        &self.served
    }
}

/// `skopeo inspect --raw docker://<name>@<digest>`: the sha256 of what the registry serves.
/// (skopeo takes a tag or a digest, not both: asked by the digest, which is what a node pulls.)
fn inspect(image: &str, digest: &str) -> Result<String, String> {
    let name_tag = image.split_once('@').map_or(image, |(n, _)| n);
    let name = match name_tag.rsplit_once(':') {
        Some((name, tag)) if !tag.contains('/') => name,
        _ => name_tag,
    };
    let out = Command::new("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false"])
        .arg(format!("docker://{name}@{digest}"))
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("running skopeo inspect: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "skopeo inspect failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(testbed::manifest_digest(&out.stdout))
}

/// One container of one workload: before, now, and the verdict.
pub struct Row {
    pub who: String,
    pub container: String,
    pub expect: Expect,
    pub observed: Observed,
    pub check: Check,
}

/// Observes a workload's containers against `before` and checks each against `expect`.
pub fn workload(
    cluster: &Cluster,
    backup: &mut Backup,
    (kind, ns, name): (&str, &str, &str),
    before: &[(&str, String)],
    expect: Expect,
) -> Result<Vec<Row>> {
    let obj = cluster.get(kind, ns, name)?;
    let now = containers_of(&obj);
    let who = format!("{kind} {ns}/{name}");
    let mut rows = Vec::new();
    for (container, image) in before {
        let after = now
            .iter()
            .find(|(n, _)| n == container)
            .map(|(_, i)| i.clone())
            .unwrap_or_default();
        let observed = Observed {
            before: image.clone(),
            served: backup.served(&after),
            after,
        };
        let subject = format!("{who} container {container}");
        let check = image_row(subject, expect, &observed, &backup.host);
        rows.push(Row {
            who: who.clone(),
            container: (*container).to_owned(),
            expect,
            observed,
            check,
        });
    }
    Ok(rows)
}

/// Whether every container of a workload runs a verified backup copy: "patched", as the demo
/// counts it (whatever was expected).
pub fn all_patched(rows: &[Row], backup_host: &str) -> bool {
    !rows.is_empty()
        && rows
            .iter()
            .all(|r| image_row(String::new(), Expect::Patched, &r.observed, backup_host).held)
}

/// Records each row's check and prints the table: expected, verdict, what it runs now.
pub fn record_and_print(checks: &mut Checks, rows: Vec<Row>) {
    let w_who = rows.iter().map(|r| r.who.len()).max().unwrap_or(0);
    let w_expect = rows
        .iter()
        .map(|r| r.expect.label().len())
        .max()
        .unwrap_or(0);
    println!(
        "  {:<w_who$} {:<9} {:<w_expect$} {:<3} NOW (digests shortened)",
        "WORKLOAD", "CONTAINER", "EXPECTED", "OK"
    );
    for r in rows {
        let ok = if r.check.held { "ok" } else { "NO" };
        let now = if r.observed.after == r.observed.before {
            "unchanged".to_owned()
        } else {
            short_digest(&r.observed.after)
        };
        println!(
            "  {:<w_who$} {:<9} {:<w_expect$} {ok:<3} {now}",
            r.who,
            r.container,
            r.expect.label()
        );
        if !r.check.held {
            println!(
                "      mismatch: expected {}, observed {}",
                r.check.expected, r.check.observed
            );
        }
        checks.record(r.check);
    }
}

pub fn short_digest(image: &str) -> String {
    match image.split_once("@sha256:") {
        Some((name, hex)) if hex.len() > 12 => format!("{name}@sha256:{}…", &hex[..12]),
        _ => image.to_owned(),
    }
}

/// The backup images asked about, as proof that each resolves at its pin.
pub fn print_proof(backup: &Backup) -> Result<()> {
    for (image, served) in backup.asked() {
        let pin = pinned_digest(image).context("only pinned images are asked about")?;
        let name_tag = image.split_once('@').map_or(image.as_str(), |(n, _)| n);
        match served {
            Ok(d) if d == pin => println!("  {name_tag:<62} {pin}  OK"),
            Ok(d) => println!("  {name_tag:<62} {pin}  MISMATCH: serves {d}"),
            Err(e) => println!("  {name_tag:<62} {pin}  {e}"),
        }
    }
    println!(
        "  ({} image(s) checked with `skopeo inspect --raw`: sha256 of the manifest = the pinned digest)",
        backup.asked().len()
    );
    Ok(())
}
