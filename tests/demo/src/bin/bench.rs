//! `make bench`: DESIGN.md's performance targets, measured on the Kubernetes API simulator with
//! real registries and real skopeo. A benchmark, not a test: it reports each figure next to its
//! target and exits 0 whether targets are met or not; non-zero only when it cannot run.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, ExitCode, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, Result, bail};
use demo::{
    Daemon, cloner_command, guard, heading, interrupted, require_programs, scrape, secs,
    sibling_binary, tail, workload,
};
use kube_sim::Sim;
use kube_sim::store::{ListOptions, resource_of};
use serde_json::{Value, json};
use testbed::{Registry, RegistryOptions};

const IMAGES: usize = 50;
const PLATFORMS: usize = 2;
const LAYERS: usize = 2;
const LAYER_KIB: usize = 1024;
const NAMESPACES: usize = 20;
const COLD_WORKLOADS: usize = 2_000;
const WARM_WORKLOADS: usize = 10_000;
const CONCURRENCY: usize = 5;
const CONVERGE_TIMEOUT: Duration = Duration::from_secs(300);
/// Reconciles are over when the last-success timestamp has not moved for this long.
const QUIET: Duration = Duration::from_secs(3);
const ORIGINAL_IMAGES: &str = "image-cloner.io/original-images";

fn main() -> ExitCode {
    if let Err(e) = demo::clean_up_on_signals() {
        eprintln!("bench: {e:#}");
        return ExitCode::FAILURE;
    }
    let result = run();
    if interrupted() {
        loop {
            std::thread::sleep(Duration::from_secs(1));
        }
    }
    guard().cleanup();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("\nbench could not run: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}

fn namespace_of(i: usize) -> String {
    format!("bench-{:02}", i % NAMESPACES)
}

fn create(sim: &Sim, obj: Value) -> Result<()> {
    let r = resource_of(&obj).map_err(|e| anyhow::anyhow!("{}", e.message()))?;
    let ns = obj["metadata"]["namespace"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    sim.store()
        .create(r, &ns, obj, false)
        .map_err(|e| anyhow::anyhow!("creating an object: {}", e.message()))?;
    Ok(())
}

fn deployments(sim: &Sim) -> Result<Vec<std::sync::Arc<Value>>> {
    let r = resource_of(&json!({"apiVersion": "apps/v1", "kind": "Deployment"}))
        .map_err(|e| anyhow::anyhow!("{}", e.message()))?;
    let page = sim
        .store()
        .list(r, None, &ListOptions::default())
        .map_err(|e| anyhow::anyhow!("listing deployments: {}", e.message()))?;
    Ok(page.items)
}

/// What one daemon run measured.
struct RunFigures {
    /// Start → the daemon's last list request served (its initial lists, paged).
    lists: Duration,
    /// Start → the daemon logged "ready: every initial list is cached" (None: never).
    ready: Option<Duration>,
    /// What `/readyz` answered at the end.
    readyz: u16,
    /// Start → the workloads patched (cold only).
    converged: Option<Duration>,
    /// Start → the last successful reconcile.
    settled: Duration,
    metrics: BTreeMap<String, f64>,
    peak_rss_kib: u64,
    writes: u64,
    writes_to_deployments: u64,
    writes_by_resource: BTreeMap<String, u64>,
}

/// Runs the daemon until `patched` workloads are patched (if given) and reconciles go quiet.
fn daemon_run(
    cloner: &Path,
    env: &[(&str, String)],
    home: &Path,
    log: &Path,
    sim: &Sim,
    patched: Option<usize>,
) -> Result<RunFigures> {
    sim.faults().reset_counters();
    let start_unix = unix_now();
    let daemon = Daemon::start(cloner_command(cloner, home, env), log)?;
    let addr = daemon.metrics_address()?;
    let mut ready = None;
    let mut lists_seen = 0;
    let mut lists = Duration::ZERO;
    let mut converged = None;
    let mut last_ts = 0.0;
    let mut last_change = Instant::now();
    let deadline = Instant::now() + CONVERGE_TIMEOUT;
    let metrics = loop {
        daemon.check_alive()?;
        if ready.is_none() && daemon.log().contains("ready: every initial list is cached") {
            ready = Some(daemon.started.elapsed());
        }
        let list_requests: u64 = sim
            .faults()
            .counters()
            .iter()
            .filter(|((verb, _), _)| verb == "list")
            .map(|(_, n)| n)
            .sum();
        if list_requests != lists_seen {
            lists_seen = list_requests;
            lists = daemon.started.elapsed();
        }
        let (_, m) = scrape(&addr)?;
        let n_patched = m
            .get("image_cloner_workloads_patched_total")
            .copied()
            .unwrap_or(0.0);
        if let Some(want) = patched
            && converged.is_none()
            && n_patched >= want as f64
        {
            converged = Some(daemon.started.elapsed());
        }
        let ts = m
            .get("image_cloner_last_successful_reconcile_timestamp_seconds")
            .copied()
            .unwrap_or(0.0);
        if ts != last_ts {
            last_ts = ts;
            last_change = Instant::now();
        }
        let in_flight = m
            .get("image_cloner_copies_in_flight")
            .copied()
            .unwrap_or(0.0);
        let done = lists_seen > 0
            && (patched.is_none() || converged.is_some())
            && last_ts > 0.0
            && in_flight == 0.0
            && last_change.elapsed() >= QUIET;
        if done {
            break m;
        }
        if Instant::now() > deadline {
            bail!(
                "the daemon did not settle within {}s ({n_patched} workloads patched, {lists_seen} list requests, last reconcile {:.1}s ago, {in_flight} copies in flight); end of its log:\n{}",
                CONVERGE_TIMEOUT.as_secs(),
                last_change.elapsed().as_secs_f64(),
                tail(&daemon.log(), 20)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let peak_rss_kib = daemon.peak_rss_kib()?;
    let readyz = demo::http_get(&addr, "/readyz").map_or(0, |(status, _)| status);
    let counters = sim.faults().counters();
    let mut writes_by_resource = BTreeMap::new();
    for ((verb, resource), n) in &counters {
        if kube_sim::faults::is_write(verb) {
            *writes_by_resource
                .entry(format!("{verb} {resource}"))
                .or_default() += n;
        }
    }
    let figures = RunFigures {
        lists,
        ready,
        readyz,
        converged,
        settled: Duration::from_secs_f64((last_ts - start_unix).max(0.0)),
        metrics,
        peak_rss_kib,
        writes: sim.faults().writes(),
        writes_to_deployments: sim.faults().writes_to("deployments"),
        writes_by_resource,
    };
    daemon.stop(Duration::from_secs(10));
    Ok(figures)
}

fn copies(m: &BTreeMap<String, f64>, result: &str) -> u64 {
    m.get(&format!("image_cloner_copies_total{{result=\"{result}\"}}"))
        .copied()
        .unwrap_or(0.0) as u64
}

fn catalog_size(host: &str) -> Result<usize> {
    let (status, body) = demo::http_get(host, "/v2/_catalog?n=1000")?;
    if status != 200 {
        bail!("GET http://{host}/v2/_catalog answered {status}");
    }
    let v: Value = serde_json::from_str(&body).context("the catalog")?;
    Ok(v["repositories"].as_array().map_or(0, Vec::len))
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "MISSED" }
}

fn run() -> Result<()> {
    println!(
        "image-cloner bench: DESIGN.md \"Performance targets\" on the Kubernetes API simulator,"
    );
    println!(
        "real docker-registry processes and real skopeo; {} CPU core(s).",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    require_programs(&["skopeo", "docker-registry"])?;
    let cloner = sibling_binary("image-cloner", "IMAGE_CLONER_BIN")?;
    let testbed_bin = sibling_binary("testbed", "TESTBED_BIN")?;
    let work = guard().temp_dir("image-cloner-bench-")?;

    heading("Setup");
    let sim = Sim::start(kube_sim::Options::default()).context("starting the simulator")?;
    let kubeconfig = work.join("kubeconfig");
    sim.write_kubeconfig(&kubeconfig)?;
    let start_registry = |what: &str| -> Result<String> {
        guard().keep_registry(
            Registry::start(RegistryOptions::default())
                .with_context(|| format!("starting the {what} registry"))?,
        )
    };
    let source = start_registry("source")?;
    let backup = start_registry("backup")?;
    let baseline = start_registry("baseline")?;
    println!(
        "  simulator {}; registries: source {source}, backup {backup}, baseline {baseline}",
        sim.url()
    );

    let t = Instant::now();
    let seed_out = work.join("seed.txt");
    let pid = guard().spawn(
        "testbed seed",
        Command::new(&testbed_bin)
            .args([
                "seed",
                "--registry",
                &source,
                "--tls-verify=false",
                "--prefix",
                "bench/app",
            ])
            .args(["--count", &IMAGES.to_string()])
            .args(["--platforms", &PLATFORMS.to_string()])
            .args(["--layers", &LAYERS.to_string()])
            .args(["--layer-kib", &LAYER_KIB.to_string()])
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&seed_out)?)
            .stderr(Stdio::inherit()),
    )?;
    let status = guard().wait(pid)?;
    if !status.success() {
        bail!("testbed seed failed ({status})");
    }
    let images: Vec<String> = std::fs::read_to_string(&seed_out)?
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect();
    if images.len() != IMAGES {
        bail!("testbed seed made {} images, not {IMAGES}", images.len());
    }
    println!(
        "  {IMAGES} images seeded in {}: OCI indexes of {PLATFORMS} platforms, {LAYERS} layers of {LAYER_KIB} KiB per platform ({} MiB per image)",
        secs(t.elapsed()),
        PLATFORMS * LAYERS * LAYER_KIB / 1024
    );

    heading(&format!(
        "Cold, baseline: skopeo copy --all of the {IMAGES} images, {CONCURRENCY} at a time (as xargs -P{CONCURRENCY})"
    ));
    let baseline_home = work.join("baseline-home");
    std::fs::create_dir_all(&baseline_home)?;
    let queue = Mutex::new(images.clone().into_iter());
    let failures = Mutex::new(Vec::new());
    let t = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..CONCURRENCY {
            s.spawn(|| {
                loop {
                    let next = queue.lock().map(|mut q| q.next()).ok().flatten();
                    let Some(image) = next else { break };
                    let outcome = guard()
                        .spawn(
                            "skopeo copy",
                            Command::new("skopeo")
                                .args([
                                    "copy",
                                    "--all",
                                    "--src-tls-verify=false",
                                    "--dest-tls-verify=false",
                                ])
                                .arg(format!("docker://{source}/{image}"))
                                .arg(format!("docker://{baseline}/{image}"))
                                .env("HOME", &baseline_home)
                                .stdin(Stdio::null())
                                .stdout(Stdio::null())
                                .stderr(Stdio::null()),
                        )
                        .and_then(|pid| guard().wait(pid));
                    match outcome {
                        Ok(st) if st.success() => {}
                        Ok(st) => failures
                            .lock()
                            .map(|mut f| f.push(format!("{image}: {st}")))
                            .unwrap_or_default(),
                        Err(e) => failures
                            .lock()
                            .map(|mut f| f.push(format!("{image}: {e:#}")))
                            .unwrap_or_default(),
                    }
                }
            });
        }
    });
    let baseline_time = t.elapsed();
    let failures = failures.into_inner().unwrap_or_default();
    if !failures.is_empty() {
        bail!("baseline skopeo copies failed: {}", failures.join("; "));
    }
    println!("  {IMAGES} copies in {}", secs(baseline_time));

    heading(&format!(
        "Cold, image-cloner: {COLD_WORKLOADS} Deployments in {NAMESPACES} namespaces over the {IMAGES} images, MAX_CONCURRENT_RECONCILES={CONCURRENCY}"
    ));
    for n in 0..NAMESPACES {
        create(
            &sim,
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace_of(n)}}),
        )?;
    }
    for i in 0..COLD_WORKLOADS {
        let image = format!("{source}/{}", images[i % IMAGES]);
        create(
            &sim,
            workload(
                "Deployment",
                &namespace_of(i),
                &format!("app-{i:05}"),
                &[("app", image.as_str())],
                &[],
                &[],
            )?,
        )?;
    }
    let env: Vec<(&str, String)> = vec![
        ("BACKUP_REGISTRY", format!("{backup}/mirror")),
        ("IMAGE_CLONER_KUBECONFIG", kubeconfig.display().to_string()),
        (
            "IMAGE_CLONER_INSECURE_REGISTRIES",
            format!("{source},{backup}"),
        ),
        ("MAX_CONCURRENT_RECONCILES", CONCURRENCY.to_string()),
        ("IMAGE_CLONER_METRICS_ADDRESS", "127.0.0.1:0".into()),
        ("IMAGE_CLONER_LOG_LEVEL", "info".into()),
        ("IMAGE_CLONER_SHUTDOWN_GRACE", "5s".into()),
    ];
    let cold_home = work.join("cold-home");
    std::fs::create_dir_all(&cold_home)?;
    let cold = daemon_run(
        &cloner,
        &env,
        &cold_home,
        &work.join("cold.log"),
        &sim,
        Some(COLD_WORKLOADS),
    )?;
    let cold_time = cold.converged.unwrap_or_default();
    let in_backup = deployments(&sim)?
        .iter()
        .filter(|d| {
            !d["metadata"]["annotations"][ORIGINAL_IMAGES].is_null()
                && d["spec"]["template"]["spec"]["containers"][0]["image"]
                    .as_str()
                    .is_some_and(|i| i.starts_with(&format!("{backup}/")) && i.contains("@sha256:"))
        })
        .count();
    let backup_repos = catalog_size(&backup)?;
    println!(
        "  converged in {} (initial lists served after {}, last reconcile at {}); {in_backup}/{COLD_WORKLOADS} Deployments pinned to the backup",
        secs(cold_time),
        secs(cold.lists),
        secs(cold.settled)
    );
    report_ready(&cold);

    heading(&format!(
        "Warm restart: {WARM_WORKLOADS} converged Deployments, a new daemon"
    ));
    let converged: Vec<std::sync::Arc<Value>> = deployments(&sim)?;
    for i in COLD_WORKLOADS..WARM_WORKLOADS {
        let model = &converged[i % converged.len()];
        create(
            &sim,
            json!({
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {
                    "name": format!("app-{i:05}"),
                    "namespace": namespace_of(i),
                    "labels": model["metadata"]["labels"],
                    "annotations": model["metadata"]["annotations"],
                },
                "spec": model["spec"],
            }),
        )?;
    }
    let total = deployments(&sim)?.len();
    println!("  {total} Deployments, all pinned to the backup");
    let warm_home = work.join("warm-home");
    std::fs::create_dir_all(&warm_home)?;
    let warm = daemon_run(
        &cloner,
        &env,
        &warm_home,
        &work.join("warm.log"),
        &sim,
        None,
    )?;
    let warm_settle = warm.settled.saturating_sub(warm.lists);
    println!(
        "  initial lists served after {}, last reconcile at {}",
        secs(warm.lists),
        secs(warm.settled)
    );
    report_ready(&warm);

    heading("Results (figure, measured, target)");
    let ratio = cold_time.as_secs_f64() / baseline_time.as_secs_f64();
    let cold_copies = copies(&cold.metrics, "succeeded");
    let rows: Vec<(String, String, String, &str)> = vec![
        (
            "cold: image-cloner run, start → 2,000 patched".into(),
            secs(cold_time),
            String::new(),
            "",
        ),
        (
            "cold: skopeo copy --all ×50, 5 at a time".into(),
            secs(baseline_time),
            String::new(),
            "",
        ),
        (
            "cold: ratio image-cloner / skopeo".into(),
            format!("{ratio:.2}×"),
            "≤ 1.05×".into(),
            verdict(ratio <= 1.05),
        ),
        (
            "cold: skopeo copies made (metric)".into(),
            format!(
                "{cold_copies} (+{} failed)",
                copies(&cold.metrics, "failed")
            ),
            "= 50".into(),
            verdict(cold_copies == IMAGES as u64),
        ),
        (
            "cold: repositories in the backup registry".into(),
            backup_repos.to_string(),
            "= 50".into(),
            verdict(backup_repos == IMAGES),
        ),
        (
            "cold: API writes to Deployments".into(),
            cold.writes_to_deployments.to_string(),
            "≤ 2,000 (one per workload)".into(),
            verdict(cold.writes_to_deployments <= COLD_WORKLOADS as u64),
        ),
        (
            "cold: API writes, all resources".into(),
            cold.writes.to_string(),
            "(events included)".into(),
            "",
        ),
        (
            "cold: settle, start → last reconcile".into(),
            secs(cold.settled),
            String::new(),
            "",
        ),
        (
            "cold: daemon peak RSS (VmHWM)".into(),
            mib(cold.peak_rss_kib),
            String::new(),
            "",
        ),
        (
            "warm: start → initial lists served".into(),
            secs(warm.lists),
            String::new(),
            "",
        ),
        (
            "warm: settle, initial lists → last reconcile".into(),
            secs(warm_settle),
            "≤ 2 s".into(),
            verdict(warm_settle <= Duration::from_secs(2)),
        ),
        (
            "warm: skopeo copies".into(),
            (copies(&warm.metrics, "succeeded") + copies(&warm.metrics, "failed")).to_string(),
            "= 0".into(),
            verdict(copies(&warm.metrics, "succeeded") + copies(&warm.metrics, "failed") == 0),
        ),
        (
            "warm: API writes".into(),
            warm.writes.to_string(),
            "= 0".into(),
            verdict(warm.writes == 0),
        ),
        (
            "warm: daemon peak RSS (VmHWM)".into(),
            mib(warm.peak_rss_kib),
            "≤ 64 MiB".into(),
            verdict(warm.peak_rss_kib <= 64 * 1024),
        ),
    ];
    let w = rows.iter().map(|r| r.0.chars().count()).max().unwrap_or(0);
    for (figure, measured, target, status) in &rows {
        let pad = w - figure.chars().count();
        println!(
            "  {figure}{}  {measured:<16} {target:<27} {status}",
            " ".repeat(pad)
        );
    }
    println!(
        "\n  cold writes by request: {}",
        by_request(&cold.writes_by_resource)
    );
    println!(
        "  warm writes by request: {}",
        by_request(&warm.writes_by_resource)
    );
    println!(
        "\n{} of {} targets met (a benchmark: it reports, exit status 0 either way).",
        rows.iter().filter(|r| r.3 == "met").count(),
        rows.iter().filter(|r| !r.3.is_empty()).count()
    );
    drop(sim);
    Ok(())
}

/// The daemon's own readiness signal, next to what the simulator saw.
fn report_ready(f: &RunFigures) {
    match f.ready {
        Some(d) => println!(
            "  the daemon logged \"ready: every initial list is cached\" after {}; /readyz answered {}",
            secs(d),
            f.readyz
        ),
        None => println!(
            "  note: the daemon never logged \"ready: every initial list is cached\" (/readyz answered {}); initial lists are timed by the simulator's list requests",
            f.readyz
        ),
    }
}

fn by_request(m: &BTreeMap<String, u64>) -> String {
    if m.is_empty() {
        return "none".into();
    }
    m.iter()
        .map(|(k, v)| format!("{k}: {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}
