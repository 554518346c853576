//! Hostile image strings in workloads: flags, other transports, shell, control characters,
//! lookalike Unicode, overlong names, broken hosts, tags and digests. `plan` must report each
//! as an invalid reference naming it (or plan a valid one like any other), `run --once` must
//! leave each unpatched (or patch it to a verified copy) with an Event, and the recording
//! skopeo must never see one as a flag or a transport.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Result;
use serde_json::{Value, json};

use crate::daemon::{self, text};
use crate::malformed::{Tally, no_panic};
use crate::report::Report;
use crate::source::Source;
use crate::world::World;

/// Hostile strings built around `good`, a valid reference on the loopback source.
pub fn hostile(good: &str, host: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for prefix in [
        "-",
        "--",
        "--help ",
        "--all ",
        "-v",
        "docker://",
        "oci:",
        "oci:/tmp/",
        "dir:/tmp/",
        "docker-archive:/tmp/x.tar:",
        "oci-archive:/tmp/x:",
        "containers-storage:",
        "ostree:",
        "docker-daemon:",
        "sif:",
        " ",
        "\t",
        "\n",
        "$(touch /tmp/x)",
        "`id`",
        ";",
        "|",
        "&&",
        "\u{202e}",
        "\u{200b}",
        "\u{feff}",
        "\\",
        "'",
        "\"",
        "#",
        "%00",
        "..",
        "../",
        "/",
    ] {
        out.push(format!("{prefix}{good}"));
    }
    for suffix in [
        " --help",
        " -v",
        "\n--all",
        "\r",
        "\0",
        ";rm -rf /",
        "$(id)",
        "|id",
        "&",
        "\u{0}x",
        ":",
        "::",
        ":-latest",
        ":--help",
        ":.x",
        "@",
        "@@",
        "@sha256:",
        "@sha256:abc",
        "@sha256:ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789",
        "@md5:d41d8cd98f00b204e9800998ecf8427e",
        "@sha256:--help",
        "/",
        "//",
        "/..",
        "/-x",
        "/x/-y",
        "\u{0301}",
        "é",
    ] {
        out.push(format!("{good}{suffix}"));
    }
    let repo = good.split_once('/').map_or(good, |(_, r)| r);
    for h in [
        "localhost:0",
        "h.io:99999",
        "h.io:-1",
        "[::1",
        "[]",
        "[::1]]",
        "-h.io",
        "h..io",
        "h_io.com",
        "h.io:",
        ":5000",
        "h.io:5000:6000",
        "user@h.io",
        "user:pw@h.io",
        "http://h.io",
        "https://h.io",
        "h.io/../..",
        "HOST:1",
    ] {
        out.push(format!("{h}/{repo}"));
    }
    for s in [
        "",
        " ",
        "-",
        "--",
        "--help",
        "-rf",
        "@",
        ":",
        "/",
        "//",
        "..",
        "...",
        ".",
        "*",
        "?",
        "nginx:latest@",
        "UPPER/case",
        "a/B",
        "ngіnx",
        "nginх:1",
        "ñginx",
        "\u{0}",
        "$(touch /tmp/reliability-pwned)",
        "`touch /tmp/reliability-pwned`",
        "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
    ] {
        out.push(s.to_owned());
    }
    out.push(format!("{host}/{}", "a".repeat(300)));
    out.push(format!("{host}/{}", vec!["a"; 200].join("/")));
    out.push(format!("{good}{}", "x".repeat(200)));
    out.push(format!("{host}/x:{}", "t".repeat(129)));
    out.push("x".repeat(100 * 1024));
    out.push(format!("{}{good}", "-".repeat(1000)));
    for c in ['\u{7}', '\u{1b}', '\u{7f}', '\u{85}', '\u{2028}'] {
        out.push(format!("{good}{c}"));
    }
    for sep in ["..", "._", "_.", "-.", ".-", "___", "__-"] {
        out.push(format!("{host}/team/a{sep}b:1"));
    }
    out.sort();
    out.dedup();
    out
}

/// Whether `error` names `input` (as Rust's `{:?}` shows it, or its first part when long).
fn names(error: &str, input: &str) -> bool {
    let shown = format!("{input:?}");
    let head: String = shown.chars().take(60).collect();
    error.contains(head.trim_end_matches('"'))
}

pub fn run(
    world: &World,
    source: &Source,
    short: bool,
    report: &mut Report,
    tally: &mut Tally,
) -> Result<()> {
    let host = source.registry.host();
    let good = source.reference(&host, 0);
    let mut strings = hostile(&good, &host);
    if short {
        strings.truncate(strings.len() * 2 / 3);
    }
    world.namespace("hostile", json!({}))?;
    let mut by_name = BTreeMap::new();
    let mut refused_by_server = 0;
    for (i, s) in strings.iter().enumerate() {
        let name = format!("h-{i}");
        let mut obj = kube_sim::fixtures::workload(
            "Deployment",
            "hostile",
            &name,
            &[("app", s)],
            &[],
            json!({}),
        );
        if i % 3 == 0 {
            // In an init container too.
            obj["spec"]["template"]["spec"]["initContainers"] =
                json!([{"name": "init", "image": s}]);
        }
        // What the API server itself refuses (an empty image) never reaches image-cloner.
        match world.create(obj) {
            Ok(()) => {
                by_name.insert(name, s.clone());
            }
            Err(_) => refused_by_server += 1,
        }
    }
    let mut cmd = world.command(&[("IMAGE_CLONER_NAMESPACES", "hostile")]);
    cmd.args(["plan", "--output", "json"]);
    let plan = daemon::run(cmd, Duration::from_secs(120))?;
    no_panic(report, tally, "plan of hostile images", &plan);
    let rows: Value = serde_json::from_slice(&plan.stdout).unwrap_or(Value::Null);
    report.check(
        rows.is_array() || rows.is_object(),
        format!("plan -o json printed no JSON: {}", text(&plan)),
    );
    let decisions = decisions_by_workload(&rows);
    let mut cmd = world.command(&[("IMAGE_CLONER_NAMESPACES", "hostile")]);
    cmd.args(["run", "--once"]);
    let once = daemon::run(cmd, Duration::from_secs(300))?;
    no_panic(report, tally, "run --once on hostile images", &once);
    for (name, input) in &by_name {
        let decided = decisions.get(name.as_str()).cloned().unwrap_or_default();
        let now = world
            .get("deployments", "hostile", name)
            .map(|o| {
                o["spec"]["template"]["spec"]["containers"][0]["image"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned()
            })
            .unwrap_or_default();
        let backup = format!("{}/", world.backup_registry());
        let clear = decided
            .iter()
            .any(|(d, e)| d == "invalid reference" && names(e, input));
        let planned_valid = !decided.is_empty() && decided.iter().all(|(d, _)| d == "clone");
        let untouched_or_copied = &now == input || (planned_valid && now.starts_with(&backup));
        report.check(
            (clear || planned_valid) && untouched_or_copied,
            format!("hostile image {input:?} ({name}): plan said {decided:?}, the workload now runs {now:?}"),
        );
        tally.count("hostile image strings", clear);
    }
    report.note(format!(
        "{refused_by_server} hostile image strings were refused by the API server itself"
    ));
    Ok(())
}

/// Workload name → its containers' `(decision, detail)` from `plan -o json` (one row per
/// container).
fn decisions_by_workload(v: &Value) -> BTreeMap<String, Vec<(String, String)>> {
    let mut out: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    for row in v.as_array().into_iter().flatten() {
        let field = |k: &str| row[k].as_str().unwrap_or_default().to_owned();
        out.entry(field("name"))
            .or_default()
            .push((field("decision"), field("detail")));
    }
    out
}
