//! `make demo`: image-cloner end to end on this machine — the Kubernetes API simulator, a
//! "public" and a backup registry (real docker-registry processes), real multi-arch images,
//! workloads of every kind, `image-cloner plan`, then `image-cloner run` until converged, its
//! metrics, what changed, and what a user does while the daemon runs (a workload created in an
//! opted-out namespace, `restore`).
//!
//! The demo checks itself (`demo::check`): every row of its "expected" column is compared with
//! what happened — patched rows must resolve in the backup registry at their pinned digest
//! (`skopeo inspect`), every other row must be unchanged — the count it prints must agree with
//! the metric it scrapes, and the demo exits non-zero naming each mismatch. "Demo OK" only when
//! all held. `IMAGE_CLONER_DEMO_FLIP=<ns>/<name>` checks one workload against the opposite
//! expectation: the proof that the check can fail.
//!
//! Everything it starts is stopped and removed at the end, on failure and on Ctrl-C.

mod cluster;
mod live;
mod observe;
mod pull;
mod samples;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use demo::check::{Checks, Expect};
use demo::{
    Daemon, cloner_command, guard, heading, interrupted, kube_client, require_programs, secs,
    sibling_binary, tail,
};
use kube::api::{Api, ListParams};
use testbed::{Access, ImageSpec, Platform, PushOptions, Registry, RegistryOptions};

use cluster::Cluster;
use observe::Backup;
use samples::Sample;

const ORIGINAL_IMAGES: &str = "image-cloner.io/original-images";
const CONVERGE_TIMEOUT: Duration = Duration::from_secs(120);

fn main() -> ExitCode {
    if let Err(e) = demo::clean_up_on_signals() {
        eprintln!("demo: {e:#}");
        return ExitCode::FAILURE;
    }
    let mut checks = Checks::default();
    let result = run(&mut checks);
    if interrupted() {
        // The signal thread is cleaning up and exits the process.
        loop {
            std::thread::sleep(Duration::from_secs(1));
        }
    }
    heading("Cleanup");
    guard().cleanup();
    println!("  daemon stopped, registries stopped, temporary directories removed");
    if let Err(e) = result {
        eprintln!("\ndemo FAILED: {e:#}");
        return ExitCode::FAILURE;
    }
    match checks.verdict() {
        Ok(held) => {
            println!("\n{held} expectations checked, every one held.\nDemo OK.");
            ExitCode::SUCCESS
        }
        Err(mismatches) => {
            eprintln!("\ndemo FAILED: {mismatches}");
            ExitCode::FAILURE
        }
    }
}

/// What the sections share.
struct Setup {
    cloner: PathBuf,
    home: PathBuf,
    cluster: Cluster,
    backup: Backup,
    env: Vec<(&'static str, String)>,
    nginx: String,
    samples: Vec<Sample>,
}

impl Setup {
    fn cloner(&self) -> Command {
        cloner_command(&self.cloner, &self.home, &self.env)
    }
}

fn run(checks: &mut Checks) -> Result<()> {
    println!(
        "image-cloner demo: copies the images Kubernetes workloads run into a backup registry,"
    );
    println!(
        "verifies them, then points the workloads at the copies. Everything below runs on this"
    );
    println!("machine: a Kubernetes API simulator, two real registries, real images, real skopeo.");
    println!("At the end, every expectation is checked against what happened.");
    require_programs(&["skopeo", "docker-registry"])?;
    let cloner = sibling_binary("image-cloner", "IMAGE_CLONER_BIN")?;
    let work = guard().temp_dir("image-cloner-demo-")?;
    let home = work.join("home");
    // Registry credentials as an operator would have them (none needed here).
    std::fs::create_dir_all(home.join(".docker"))?;
    std::fs::write(home.join(".docker/config.json"), "{\"auths\": {}}\n")?;

    heading("1. Cluster and registries");
    let sim = kube_sim::Sim::start(kube_sim::Options::default())
        .context("starting the Kubernetes API simulator")?;
    let kubeconfig = work.join("kubeconfig");
    sim.write_kubeconfig(&kubeconfig)?;
    let source = guard().keep_registry(
        Registry::start(RegistryOptions::default()).context("starting the source registry")?,
    )?;
    let backup = guard().keep_registry(
        Registry::start(RegistryOptions::default()).context("starting the backup registry")?,
    )?;
    println!(
        "  Kubernetes API   {}  (kube-sim, bearer token; kubeconfig in a temp dir)",
        sim.url()
    );
    println!("  public registry  http://{source}  (docker-registry, plays docker.io)");
    println!("  backup registry  http://{backup}  (docker-registry, copies go under /mirror)");

    heading("2. Public images (built here: OCI image indexes for linux/amd64 + linux/arm64)");
    let refs = push_images(&source)?;
    let (nginx, redis, busybox) = (&refs[0], &refs[1], &refs[2]);

    heading("3. Workloads");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("a tokio runtime")?;
    let client = rt.block_on(kube_client(&kubeconfig))?;
    let (pull_cloner, pull_home) = (cloner.clone(), home.clone());
    let setup = Setup {
        env: settings(&backup, &kubeconfig, &source),
        cloner,
        home,
        cluster: Cluster { rt, client },
        backup: Backup::new(&backup),
        nginx: nginx.clone(),
        samples: samples::samples(nginx, redis, busybox),
    };
    samples::create(&setup.cluster, &setup.samples)?;
    plan(&setup)?;
    let nginx = nginx.clone();
    let result = with_daemon(checks, setup, &work).and_then(|()| {
        pull::section(&pull::Inputs {
            cloner: &pull_cloner,
            home: &pull_home,
            kubeconfig: &kubeconfig,
            source: &source,
            image: &nginx,
            work: &work,
        })
    });
    drop(sim);
    result
}

/// The daemon's settings, as environment variables.
fn settings(backup: &str, kubeconfig: &Path, source: &str) -> Vec<(&'static str, String)> {
    vec![
        ("BACKUP_REGISTRY", format!("{backup}/mirror")),
        ("NAMESPACES_TO_IGNORE", "legacy".into()),
        ("IMAGE_CLONER_KUBECONFIG", kubeconfig.display().to_string()),
        (
            "IMAGE_CLONER_INSECURE_REGISTRIES",
            format!("{source},{backup}"),
        ),
        ("IMAGE_CLONER_BARE_PODS", "true".into()),
        ("IMAGE_CLONER_METRICS_ADDRESS", "127.0.0.1:0".into()),
        // The reconciles' decisions too: how the demo knows the daemon has seen a workload it
        // leaves alone.
        (
            "IMAGE_CLONER_LOG_LEVEL",
            "info,image_cloner::reconcile=debug".into(),
        ),
        ("IMAGE_CLONER_SHUTDOWN_GRACE", "5s".into()),
    ]
}

fn push_images(source: &str) -> Result<Vec<String>> {
    let access = Access {
        tls_verify: false,
        ..Default::default()
    };
    let mut refs = Vec::new();
    for (i, (repo, tag)) in [
        ("library/nginx", "1.27"),
        ("library/redis", "7.4"),
        ("library/busybox", "1.36"),
    ]
    .into_iter()
    .enumerate()
    {
        let image = ImageSpec::new(repo, i as u64 + 1)
            .with_platforms(vec![Platform::linux_amd64(), Platform::linux_arm64()])
            .with_layers(2, 256 * 1024)
            .build()
            .with_context(|| format!("building {repo}:{tag}"))?;
        let push = PushOptions {
            all: true,
            ..Default::default()
        };
        let digest = testbed::push_to(&image, source, &access, repo, tag, push)
            .with_context(|| format!("pushing {repo}:{tag}"))?;
        let reference = format!("{source}/{repo}:{tag}");
        println!("  {reference:<42} {digest}");
        refs.push(reference);
    }
    Ok(refs)
}

fn plan(setup: &Setup) -> Result<()> {
    heading("4. image-cloner plan (what run would do; writes and copies nothing)");
    println!("  settings (environment):");
    for (k, v) in &setup.env {
        println!("    {k}={v}");
    }
    println!();
    let out = setup
        .cloner()
        .arg("plan")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .context("running image-cloner plan")?;
    if !out.status.success() {
        bail!(
            "image-cloner plan failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    print!("{}", String::from_utf8_lossy(&out.stdout));
    Ok(())
}

/// Sections 5 to 12: the daemon runs, converges, is checked, meets a user, and stops.
fn with_daemon(checks: &mut Checks, mut setup: Setup, work: &Path) -> Result<()> {
    heading("5. image-cloner run (the daemon) until every patchable workload is patched");
    let daemon = Daemon::start(setup.cloner(), &work.join("daemon.log"))?;
    let metrics = daemon.metrics_address()?;
    println!("  daemon pid {}, /metrics on http://{metrics}", daemon.pid);
    converge(checks, &setup, &daemon)?;

    heading("6. Metrics (one scrape of /metrics; histogram buckets left out)");
    let (text, parsed) = demo::scrape(&metrics)?;
    for line in text
        .lines()
        .filter(|l| l.starts_with("image_cloner_") && !l.contains("_bucket"))
    {
        println!("  {line}");
    }
    let patched_metric = parsed
        .get("image_cloner_workloads_patched_total")
        .copied()
        .unwrap_or(0.0) as u64;

    heading("7. Events");
    print_events(&setup.cluster)?;

    heading("8. Before and after, checked against the expected column");
    check_samples(checks, &mut setup, patched_metric)?;

    heading("9. Proof: every patched image resolves in the backup registry at its pinned digest");
    observe::print_proof(&setup.backup)?;

    heading("10. The namespace opt-out holds while the daemon runs");
    live::opt_out_holds(
        &setup.cluster,
        &daemon,
        &mut setup.backup,
        checks,
        &setup.nginx,
    )?;

    heading("11. image-cloner restore while the daemon runs");
    let sessions = setup
        .samples
        .iter()
        .find(|s| s.name == "sessions")
        .context("the sessions sample")?;
    let restore = setup.cloner();
    live::restore_while_running(
        &setup.cluster,
        &daemon,
        &mut setup.backup,
        checks,
        restore,
        sessions,
    )?;

    heading("12. Stopping the daemon (SIGTERM)");
    let status = daemon.stop(Duration::from_secs(10));
    let exited = status.map_or("killed".into(), |s| s.to_string());
    println!("  image-cloner run exited: {exited}");
    checks.expect_that(
        "image-cloner run, stopped with SIGTERM",
        "exits 0",
        exited,
        status.is_some_and(|s| s.success()),
    );
    still_unchanged(checks, &mut setup)
}

/// Waits until the workloads the demo means to be patched are; a timeout is a failed check.
fn converge(checks: &mut Checks, setup: &Setup, daemon: &Daemon) -> Result<()> {
    let patchable: Vec<&Sample> = setup
        .samples
        .iter()
        .filter(|s| s.expect == Expect::Patched)
        .collect();
    let mut waiting = Vec::new();
    let done = daemon.wait_until(CONVERGE_TIMEOUT, || {
        waiting.clear();
        for s in &patchable {
            let obj = setup.cluster.get(s.kind, s.ns, s.name)?;
            if obj["metadata"]["annotations"][ORIGINAL_IMAGES].is_null() {
                waiting.push(s.who());
            }
        }
        Ok(waiting.is_empty())
    })?;
    checks.expect_that(
        "the daemon converged",
        format!("within {}s", CONVERGE_TIMEOUT.as_secs()),
        if done {
            "yes".to_owned()
        } else {
            format!("still unpatched: {}", waiting.join(", "))
        },
        done,
    );
    if done {
        println!("  converged in {}", secs(daemon.started.elapsed()));
    } else {
        println!(
            "  NOT converged; end of the daemon's log:\n{}",
            tail(&daemon.log(), 30)
        );
    }
    let log = daemon.log();
    let warnings: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(" WARN ") || l.contains(" ERROR "))
        .collect();
    println!(
        "  daemon log: {} lines, {} warning(s)/error(s){}",
        log.lines().count(),
        warnings.len(),
        if warnings.is_empty() { "" } else { ":" }
    );
    for w in warnings.iter().take(10) {
        println!("    {w}");
    }
    Ok(())
}

fn print_events(cluster: &Cluster) -> Result<()> {
    let events = cluster
        .rt
        .block_on(
            Api::<k8s_openapi::api::events::v1::Event>::all(cluster.client.clone())
                .list(&ListParams::default()),
        )
        .context("listing events")?;
    for e in &events.items {
        let regarding = e.regarding.as_ref();
        println!(
            "  {:<7} {:<21} {}/{} {}",
            e.type_.as_deref().unwrap_or_default(),
            e.reason.as_deref().unwrap_or_default(),
            regarding
                .and_then(|r| r.kind.as_deref())
                .unwrap_or_default(),
            regarding
                .and_then(|r| r.name.as_deref())
                .unwrap_or_default(),
            shorten(e.note.as_deref().unwrap_or_default(), 90),
        );
    }
    Ok(())
}

/// Every sample's containers against its expectation, and the count of patched workloads
/// against the expected column and the metric.
fn check_samples(checks: &mut Checks, setup: &mut Setup, patched_metric: u64) -> Result<()> {
    let mut rows = Vec::new();
    let mut patched = 0u64;
    for s in &setup.samples {
        let who = (s.kind, s.ns, s.name);
        let observed = observe::workload(
            &setup.cluster,
            &mut setup.backup,
            who,
            &s.images(),
            s.check_as,
        )?;
        if observe::all_patched(&observed, &setup.backup.host) {
            patched += 1;
        }
        rows.extend(observed);
    }
    observe::record_and_print(checks, rows);
    let expected = setup
        .samples
        .iter()
        .filter(|s| s.check_as == Expect::Patched)
        .count() as u64;
    println!(
        "\n  {patched} workloads patched; image_cloner_workloads_patched_total says {patched_metric}"
    );
    checks.expect_eq(
        "workloads patched (counted here) against the expected column",
        expected,
        patched,
    );
    checks.expect_eq(
        "image_cloner_workloads_patched_total (section 6) against the count",
        patched,
        patched_metric,
    );
    Ok(())
}

/// After the daemon stopped (its running reconciles finished): every sample expected to be
/// left alone still is.
fn still_unchanged(checks: &mut Checks, setup: &mut Setup) -> Result<()> {
    let mut changed = Vec::new();
    for s in setup
        .samples
        .iter()
        .filter(|s| s.check_as != Expect::Patched)
    {
        let rows = observe::workload(
            &setup.cluster,
            &mut setup.backup,
            (s.kind, s.ns, s.name),
            &s.images(),
            s.check_as,
        )?;
        changed.extend(
            rows.into_iter()
                .filter(|r| !r.check.held)
                .map(|r| r.check.subject),
        );
    }
    let held = changed.is_empty();
    checks.expect_that(
        "workloads left alone, after the daemon stopped",
        "all unchanged",
        if held {
            "all unchanged".to_owned()
        } else {
            format!("changed: {}", changed.join(", "))
        },
        held,
    );
    println!(
        "  workloads left alone, after the daemon stopped: {}",
        if held { "all unchanged" } else { "CHANGED" }
    );
    Ok(())
}

fn shorten(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        format!("{}…", s.chars().take(max).collect::<String>())
    }
}
