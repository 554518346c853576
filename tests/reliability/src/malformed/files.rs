//! Broken and hostile files: docker configs (`docker_config`) and kubeconfigs (`kubeconfig`).
//!
//! A docker config is refused at start with a message naming it, or, when it is one image-cloner
//! can use (odd but valid), a `copy` with it runs to an end without a panic and without handing
//! skopeo anything but its path. A kubeconfig that cannot reach the simulator ends `plan` with
//! a message; none may panic or hang.

use std::time::Duration;

use anyhow::Result;

use crate::daemon::{self, text};
use crate::malformed::{Tally, no_panic};
use crate::report::Report;
use crate::source::Source;
use crate::world::World;

fn docker_config_cases() -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = [
        "",
        "{",
        "null",
        "[]",
        "1",
        "\"auths\"",
        "{\"auths\": []}",
        "{\"auths\": null}",
        "{\"auths\": {\"x.io\": 1}}",
        "{\"auths\": {\"x.io\": {\"auth\": 5}}}",
        "{\"auths\": {\"x.io\": {\"auth\": \"!!!\"}}}",
        "{\"auths\": {\"x.io\": {\"auth\": \"bm9jb2xvbg==\"}}}",
        "{\"auths\": {\"x.io\": {\"auth\": \"Og==\"}}}",
        "{\"auths\": {\"x.io\": {\"auth\": \"/w==\"}}}",
        "{\"auths\": {\"x.io\": {\"auth\": \"dTpw\", \"identitytoken\": 7}}}",
        "{\"auths\": {\"\": {\"auth\": \"dTpw\"}}}",
        "{\"auths\": {\"--help\": {\"auth\": \"dTpw\"}}}",
        "{\"auths\": {\"docker://x.io\": {\"auth\": \"dTpw\"}}}",
        "{\"auths\": {\"x.io\": {}}}",
        "{\"auths\": {\"x.io\": {\"identitytoken\": \"--help\"}}}",
        "{\"credsStore\": \"../../bin/sh\"}",
        "{\"credsStore\": 1}",
        "{\"credHelpers\": {\"x.io\": \"-rf\"}}",
        "{\"credHelpers\": []}",
        "{\"auths\": {}, \"unknown\": {\"deep\": [1, 2, 3]}}",
        "{}",
        "{\"auths\": {\"x.io\": {\"auth\": \"dTpw\"}}} trailing",
        "\u{feff}{}",
    ]
    .iter()
    .map(|s| (format!("docker config {s:?}"), s.as_bytes().to_vec()))
    .collect();
    out.push((
        "docker config nested 100,000 deep".into(),
        "[".repeat(100_000).into_bytes(),
    ));
    out.push((
        "docker config with a 1 MiB auth".into(),
        format!(
            "{{\"auths\": {{\"x.io\": {{\"auth\": \"{}\"}}}}}}",
            "A".repeat(1 << 20)
        )
        .into_bytes(),
    ));
    out.push((
        "docker config not UTF-8".into(),
        b"{\"auths\": {\"x.io\xff\": {\"auth\": \"dTpw\"}}}".to_vec(),
    ));
    out.push((
        "docker config with a NUL".into(),
        b"{\"auths\": {\"x\0.io\": {\"auth\": \"dTpw\"}}}".to_vec(),
    ));
    out
}

pub fn docker_configs(
    world: &World,
    source: &Source,
    report: &mut Report,
    tally: &mut Tally,
) -> Result<()> {
    let image = source.reference(&source.registry.host(), 0);
    let mut cases: Vec<(String, String)> = Vec::new();
    for (i, (name, bytes)) in docker_config_cases().into_iter().enumerate() {
        let path = world.path(&format!("docker-config-{i}.json"));
        std::fs::write(&path, bytes)?;
        cases.push((name, path.to_string_lossy().into_owned()));
    }
    // A path that looks like a flag (relative to the working directory), a directory, a device.
    std::fs::write(world.path("--help"), "{}")?;
    cases.push((
        "docker config at the relative path --help".into(),
        "--help".into(),
    ));
    cases.push((
        "docker config that is a directory".into(),
        world.path("home").to_string_lossy().into_owned(),
    ));
    cases.push(("docker config /dev/null".into(), "/dev/null".into()));
    for (name, path) in cases {
        let mut cmd = world.command(&[("IMAGE_CLONER_DOCKER_CONFIG", &path)]);
        cmd.arg("check-config");
        let o = daemon::run(cmd, Duration::from_secs(20))?;
        if !no_panic(report, tally, &name, &o) {
            continue;
        }
        let refused = o.status.code() == Some(2);
        if refused {
            let t = text(&o);
            let clear = t.contains("docker_config") && t.contains(&path[..path.len().min(40)]);
            report.check(clear, format!("{name}: refused without naming it: {t}"));
            tally.count("docker configs", clear);
            continue;
        }
        report.check(
            o.status.success(),
            format!(
                "{name}: check-config exited {:?}: {}",
                o.status.code(),
                text(&o)
            ),
        );
        let mut cmd = world.command(&[("IMAGE_CLONER_DOCKER_CONFIG", &path)]);
        cmd.args(["copy", &image]);
        let o = daemon::run(cmd, Duration::from_secs(120))?;
        if no_panic(report, tally, &name, &o) {
            report.check(
                matches!(o.status.code(), Some(0 | 1)),
                format!("{name}: copy exited {:?}: {}", o.status.code(), text(&o)),
            );
            tally.count("docker configs", false);
        }
    }
    Ok(())
}

/// Path settings whose value, relative to the working directory, looks like a flag: they are
/// accepted (the file or directory exists), and must still never reach skopeo as a flag.
pub fn flag_like_paths(
    world: &World,
    source: &Source,
    report: &mut Report,
    tally: &mut Tally,
) -> Result<()> {
    std::fs::create_dir_all(world.path("-tmp"))?;
    std::fs::create_dir_all(world.path("--cert-dir"))?;
    std::fs::write(world.path("-config.json"), "{}")?;
    // Each copies an image not copied before, so that skopeo runs.
    for (i, (key, value)) in [
        ("IMAGE_CLONER_TMP_DIR", "-tmp"),
        ("IMAGE_CLONER_CERT_DIR", "--cert-dir"),
        ("IMAGE_CLONER_DOCKER_CONFIG", "-config.json"),
    ]
    .into_iter()
    .enumerate()
    {
        let image = source.reference(&source.registry.host(), i + 1);
        let name = format!("{key}={value} (relative)");
        let mut cmd = world.command(&[(key, value)]);
        cmd.args(["copy", &image]);
        let before = crate::argv::read(&world.skopeo_log).0.len();
        let o = daemon::run(cmd, Duration::from_secs(120))?;
        for args in crate::argv::read(&world.skopeo_log).0.iter().skip(before) {
            report.note(format!("{name}: skopeo {}", args.join(" ")));
        }
        if no_panic(report, tally, &name, &o) {
            report.check(
                o.status.success(),
                format!("{name}: copy exited {:?}: {}", o.status.code(), text(&o)),
            );
            tally.count("flag-like relative paths", false);
        }
    }
    Ok(())
}

/// Marks a kubeconfig that is odd but valid: `plan` may succeed with it.
const ACCEPTED: &[&str] = &["(accepted)"];

/// Kubeconfigs derived from the world's working one, each with words its error may name
/// besides the kubeconfig's path.
fn kubeconfig_cases(
    good: &str,
    sim: &kube_sim::Sim,
) -> Vec<(String, Vec<u8>, &'static [&'static str])> {
    let url = sim.url();
    let token = sim.token().to_owned();
    let replace = |from: &str, to: &str| good.replace(from, to).into_bytes();
    let ca_line = good
        .lines()
        .find(|l| l.contains("certificate-authority-data"))
        .unwrap_or_default()
        .to_owned();
    let mut out: Vec<(String, Vec<u8>, &[&str])> = vec![
        ("an empty kubeconfig".into(), Vec::new(), &[]),
        ("a kubeconfig that is not YAML".into(), b"{[".to_vec(), &[]),
        (
            "a kubeconfig that is a YAML list".into(),
            b"- a\n- b\n".to_vec(),
            &[],
        ),
        (
            "a kubeconfig that is not UTF-8".into(),
            b"apiVersion: v1\nkind: \xff\n".to_vec(),
            &[],
        ),
        (
            "a kubeconfig without clusters".into(),
            b"apiVersion: v1\nkind: Config\ncurrent-context: x\n".to_vec(),
            &[],
        ),
        (
            "a current-context that does not exist".into(),
            replace("current-context: kube-sim", "current-context: nowhere"),
            &["nowhere"],
        ),
        (
            "a context naming a missing cluster".into(),
            replace("    cluster: kube-sim", "    cluster: gone"),
            &["gone"],
        ),
        (
            "a context naming a missing user".into(),
            replace("    user: kube-sim", "    user: gone"),
            &["gone"],
        ),
        ("an empty server".into(), replace(&url, "\"\""), &[]),
        (
            "a server that is not a URL".into(),
            replace(&url, "not a url"),
            &[],
        ),
        (
            "a server with another scheme".into(),
            replace(&url, "ftp://127.0.0.1:1"),
            &[],
        ),
        (
            "a server on a closed port".into(),
            replace(&url, "https://127.0.0.1:1"),
            &["127.0.0.1:1"],
        ),
        (
            "a server with a broken IPv6 literal".into(),
            replace(&url, "https://[::1"),
            &[],
        ),
        (
            "a server over plain HTTP".into(),
            replace(&url, &url.replace("https", "http")),
            &[],
        ),
        (
            "CA data that is not base64".into(),
            replace(&ca_line, "    certificate-authority-data: '!!!'"),
            &[],
        ),
        (
            "CA data that is not PEM".into(),
            replace(&ca_line, "    certificate-authority-data: aGVsbG8="),
            &[],
        ),
        (
            "no CA: an untrusted server".into(),
            replace(&ca_line, ""),
            &["certificate", "issuer"],
        ),
        (
            "a wrong token".into(),
            replace(&token, "wrong-token"),
            &["401", "Unauthorized", "nauthorized"],
        ),
        (
            "an exec plugin that does not exist".into(),
            replace(
                &format!("    token: {token}"),
                "    exec:\n      apiVersion: client.authentication.k8s.io/v1\n      command: /nonexistent/plugin\n      interactiveMode: Never",
            ),
            &["/nonexistent/plugin"],
        ),
        (
            "client certificate data that is garbage".into(),
            replace(
                &format!("    token: {token}"),
                "    client-certificate-data: aGVsbG8=\n    client-key-data: aGVsbG8=",
            ),
            &[],
        ),
        (
            "a proxy URL that is garbage".into(),
            replace(
                &format!("    server: {url}"),
                &format!("    server: {url}\n    proxy-url: '::'"),
            ),
            &[],
        ),
        (
            "a 5 MB kubeconfig".into(),
            format!("{good}\n# {}\n", "x".repeat(5 << 20)).into_bytes(),
            ACCEPTED,
        ),
    ];
    let bomb = "a: &a [\"x\",\"x\",\"x\",\"x\",\"x\",\"x\",\"x\",\"x\",\"x\"]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\ng: [*f,*f,*f,*f,*f,*f,*f,*f,*f]\n";
    out.push(("a YAML alias bomb".into(), bomb.as_bytes().to_vec(), &[]));
    out
}

pub fn kubeconfigs(world: &World, report: &mut Report, tally: &mut Tally) -> Result<()> {
    let good = std::fs::read_to_string(&world.kubeconfig)?;
    for (i, (name, bytes, names)) in kubeconfig_cases(&good, &world.sim).into_iter().enumerate() {
        let path = world.path(&format!("kubeconfig-{i}"));
        std::fs::write(&path, bytes)?;
        let path_text = path.to_string_lossy().into_owned();
        let mut cmd = world.command(&[("IMAGE_CLONER_KUBECONFIG", &path_text)]);
        cmd.arg("plan");
        let o = daemon::run(cmd, Duration::from_secs(60))?;
        if !no_panic(report, tally, &name, &o) {
            continue;
        }
        let t = text(&o);
        if names == ACCEPTED && o.status.success() {
            tally.count("kubeconfigs", false);
            continue;
        }
        let failed = !o.status.success();
        let named = t.contains(&path_text) || names.iter().any(|n| t.contains(n));
        let clear = failed && named && t.lines().count() < 40;
        report.check(
            clear,
            format!(
                "{name}: expected a failure naming the kubeconfig or the problem, got {:?}: {}",
                o.status.code(),
                t.trim()
            ),
        );
        tally.count("kubeconfigs", clear);
    }
    // The `context` setting naming a context the kubeconfig lacks.
    let mut cmd = world.command(&[("IMAGE_CLONER_CONTEXT", "no-such-context")]);
    cmd.arg("plan");
    let o = daemon::run(cmd, Duration::from_secs(60))?;
    let name = "context = no-such-context";
    if no_panic(report, tally, name, &o) {
        let clear = !o.status.success() && text(&o).contains("no-such-context");
        report.check(clear, format!("{name}: {}", text(&o)));
        tally.count("kubeconfigs", clear);
    }
    Ok(())
}
