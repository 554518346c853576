//! Credentials never leave the places they belong: with a unique marker password (the
//! registries' htpasswd, the docker config) and token (the kubeconfig), every output image-cloner
//! produces — logs at trace, as text and JSON; Events; metrics; `plan`; `check-config`; error
//! messages from a wrong password and a wrong token; skopeo's argument lists — is searched for
//! them, plain and base64-encoded.

use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use testbed::{Credentials, RegistryOptions};

use crate::daemon::{self, Daemon, text};
use crate::report::Report;
use crate::rng::Rng;
use crate::scenarios::{convergence, populate};
use crate::source::Source;
use crate::world::{Bins, World};

/// Standard base64 with padding, as a docker config's `auth` holds it.
fn encode(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

pub fn run(bins: &Bins, rng: &mut Rng, report: &mut Report) -> Result<()> {
    report.section("credentials");
    let user = "reliability";
    let password = format!("RELIABILITY-MARKER-PW-{:016x}", rng.next_u64());
    let wrong_password = format!("RELIABILITY-WRONG-PW-{:016x}", rng.next_u64());
    let wrong_token = format!("RELIABILITY-MARKER-TOKEN-{:016x}", rng.next_u64());
    let creds = Credentials::new(user, &password);
    let auth = RegistryOptions {
        auth: Some(creds.clone()),
        ..Default::default()
    };
    let source = Source::start_with(auth.clone(), 3, rng.next_u64(), 16 * 1024)?;
    let mut world = World::with_backup(bins, auth)?;
    let host = source.registry.host();
    world.insecure.push(host.clone());
    let secrets = vec![
        password.clone(),
        encode(format!("{user}:{password}").as_bytes()),
        wrong_password.clone(),
        encode(format!("{user}:{wrong_password}").as_bytes()),
        world.sim.token().to_owned(),
        wrong_token.clone(),
    ];
    let good = world.path("docker-config.json");
    let proxy = world.backup_proxy.host().to_owned();
    testbed::write_docker_config(&good, &[(&host, &creds), (&proxy, &creds)])?;
    let bad = world.path("docker-config-wrong.json");
    let wrong = Credentials::new(user, &wrong_password);
    testbed::write_docker_config(&bad, &[(&host, &wrong), (&proxy, &wrong)])?;
    let kubeconfig = std::fs::read_to_string(&world.kubeconfig)?;
    let bad_kubeconfig = world.path("kubeconfig-wrong-token");
    std::fs::write(
        &bad_kubeconfig,
        kubeconfig.replace(world.sim.token(), &wrong_token),
    )?;
    let expected = populate::workloads(&world, &source, &host, "creds", 2, 12, 3)?;

    let good_s = good.to_string_lossy().into_owned();
    let base = |format: &'static str| -> Vec<(&'static str, String)> {
        vec![
            ("IMAGE_CLONER_DOCKER_CONFIG", good_s.clone()),
            ("IMAGE_CLONER_LOG_LEVEL", "trace".to_owned()),
            ("IMAGE_CLONER_LOG_FORMAT", format.to_owned()),
            // This world's source is served only with credentials, which the operator allows
            // copying; and its nodes pull with their own.
            ("IMAGE_CLONER_COPY_PRIVATE_SOURCES", "true".to_owned()),
            ("IMAGE_CLONER_PULL_CHECK", "off".to_owned()),
        ]
    };
    let mut outputs: Vec<(String, String)> = Vec::new();
    let mut one_shot = |name: &str, env: Vec<(&str, String)>, args: &[&str]| -> Result<()> {
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let mut cmd = world.command(&env);
        cmd.args(args);
        let o = daemon::run(cmd, Duration::from_secs(120))?;
        outputs.push((name.to_owned(), text(&o)));
        Ok(())
    };
    one_shot("check-config", base("text"), &["check-config"])?;
    one_shot("plan", base("text"), &["plan"])?;
    one_shot("plan -o json", base("json"), &["plan", "--output", "json"])?;
    one_shot(
        "plan --check-backup",
        base("text"),
        &["plan", "--check-backup"],
    )?;

    // The daemon at trace, as text, until converged; its metrics and health.
    let env: Vec<(&str, String)> = base("text");
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut d = Daemon::start(world.command(&env), &world.path("daemon-text.log"))?;
    let converged = convergence::wait(&world, &expected, Instant::now() + Duration::from_secs(120));
    report.check(
        converged.problems.is_empty(),
        format!(
            "not converged with credentials: {:?}",
            converged.problems.first()
        ),
    );
    for path in ["/metrics", "/readyz", "/healthz"] {
        let addr = d.metrics_address().context("the daemon's address")?;
        outputs.push((format!("daemon {path}"), crate::http::get(&addr, path)?.1));
    }
    d.stop(Duration::from_secs(30));
    outputs.push(("daemon log (trace, text)".into(), d.log()));
    // Again as JSON, on the converged cluster.
    let env: Vec<(&str, String)> = base("json");
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut d = Daemon::start(world.command(&env), &world.path("daemon-json.log"))?;
    std::thread::sleep(Duration::from_secs(4));
    if let Some(m) = d.metrics() {
        outputs.push(("daemon /metrics (json run)".into(), m));
    }
    d.stop(Duration::from_secs(30));
    outputs.push(("daemon log (trace, json)".into(), d.log()));

    let mut one_shot = |name: &str, env: Vec<(&str, String)>, args: &[&str]| -> Result<()> {
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let mut cmd = world.command(&env);
        cmd.args(args);
        let o = daemon::run(cmd, Duration::from_secs(120))?;
        outputs.push((name.to_owned(), text(&o)));
        Ok(())
    };
    one_shot("run --once", base("json"), &["run", "--once"])?;
    one_shot("copy", base("text"), &["copy", &source.reference(&host, 1)])?;
    one_shot("restore --dry-run", base("text"), &["restore", "--dry-run"])?;
    let mut wrong_env = base("text");
    wrong_env[0].1 = bad.to_string_lossy().into_owned();
    one_shot(
        "copy with a wrong password",
        wrong_env.clone(),
        &["copy", &source.reference(&host, 2)],
    )?;
    one_shot(
        "plan --check-backup with a wrong password",
        wrong_env,
        &["plan", "--check-backup"],
    )?;
    let mut token_env = base("json");
    token_env.push((
        "IMAGE_CLONER_KUBECONFIG",
        bad_kubeconfig.to_string_lossy().into_owned(),
    ));
    one_shot("plan with a wrong token", token_env.clone(), &["plan"])?;
    one_shot(
        "run --once with a wrong token",
        token_env,
        &["run", "--once"],
    )?;
    let events: Vec<String> = world
        .list("events", None)
        .iter()
        .map(|e| e.to_string())
        .collect();
    outputs.push(("Events".into(), events.join("\n")));
    outputs.push((
        "skopeo argument lists".into(),
        std::fs::read_to_string(&world.skopeo_log).unwrap_or_default(),
    ));

    let mut bytes = 0;
    let mut found = 0;
    for (name, out) in &outputs {
        bytes += out.len();
        for s in &secrets {
            let n = out.matches(s.as_str()).count();
            found += n;
            report.check(
                n == 0,
                format!("{name}: a credential marker appears {n} time(s)"),
            );
        }
    }
    let wrong_failed = outputs
        .iter()
        .any(|(n, o)| n == "copy with a wrong password" && o.contains("1 failed"));
    report.check(wrong_failed, "the copy with a wrong password did not fail");
    report.figure(format!(
        "{} outputs ({:.1} MB: logs at trace as text and JSON, Events, metrics, plan, check-config, errors from a wrong password and a wrong token, skopeo argument lists) searched for {} markers (password, token, their base64): {found} found",
        outputs.len(),
        bytes as f64 / 1e6,
        secrets.len()
    ));
    Ok(())
}
