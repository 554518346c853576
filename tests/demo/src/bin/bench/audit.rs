//! `make bench`'s audit figures (DESIGN.md: "one registry request per distinct backup reference
//! in use, 10,000 workloads over 500 images → 500 requests, never per workload"), and the Pods
//! the rollout guard watches, added to the warm restart so that its memory figure holds with
//! the Pod watch holding something.
//!
//! The requests are counted at the backup registry's door: the daemon reaches it through a
//! loopback proxy that counts the HTTP requests going in (the daemon's manifest HEADs carry no
//! body, so each header block is one request).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use demo::{Daemon, cloner_command, guard, scrape, secs, tail, workload};
use kube_sim::Sim;
use kube_sim::store::{Patch, resource_of};
use serde_json::json;
use testbed::{Registry, RegistryOptions};

use super::{NAMESPACES, create, namespace_of};

pub const AUDIT_IMAGES: usize = 500;
pub const AUDIT_WORKLOADS: usize = 10_000;
/// Pods in the clusters, of which [`PODS_PENDING`] Pending: the rest are Running, which the
/// guard's field selector keeps on the server.
pub const PODS: usize = 2_000;
pub const PODS_PENDING: usize = 100;
const AUDIT_TIMEOUT: Duration = Duration::from_secs(300);

/// What the daemon asks once at start-up, whatever the number of workloads: whether the backup
/// registry answers anonymous pulls, about a probe repository (`src/pullsecret/mod.rs`).
const PULL_CHECK_PATH: &str = "/v2/mirror/image-cloner-pull-check/";
/// The key its requests are counted under, apart from the audit's.
const PULL_CHECK: &str = "start-up pull check";

/// Requests by HTTP method, counted as they pass.
type Counts = Arc<Mutex<BTreeMap<String, u64>>>;

/// A loopback TCP proxy to a registry that counts the requests sent through it.
pub struct CountingProxy {
    host: String,
    counts: Counts,
    stop: Arc<AtomicBool>,
}

impl CountingProxy {
    pub fn start(upstream: &str) -> Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").context("binding the counting proxy")?;
        listener.set_nonblocking(true)?;
        let host = listener.local_addr()?.to_string();
        let (counts, stop) = (Counts::default(), Arc::new(AtomicBool::new(false)));
        let (c, s, upstream) = (Arc::clone(&counts), Arc::clone(&stop), upstream.to_owned());
        std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((client, _)) => {
                        let (c, upstream) = (Arc::clone(&c), upstream.clone());
                        std::thread::spawn(move || relay(client, &upstream, &c));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Ok(CountingProxy { host, counts, stop })
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    pub fn counts(&self) -> BTreeMap<String, u64> {
        self.counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl Drop for CountingProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn relay(client: TcpStream, upstream: &str, counts: &Counts) {
    let _ = client.set_nonblocking(false);
    let Ok(server) = TcpStream::connect(upstream) else {
        return;
    };
    let (Ok(mut s_read), Ok(mut c_write)) = (server.try_clone(), client.try_clone()) else {
        return;
    };
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut s_read, &mut c_write);
        let _ = c_write.shutdown(Shutdown::Write);
    });
    let (mut c_read, mut s_write) = (client, server);
    let (mut buf, mut pending) = (vec![0u8; 16 * 1024], Vec::new());
    loop {
        let n = match c_read.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        pending.extend_from_slice(&buf[..n]);
        while let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
            let head: Vec<u8> = pending.drain(..end + 4).collect();
            let mut words = head.split(|b| *b == b' ');
            let method = String::from_utf8_lossy(words.next().unwrap_or_default());
            let path = words.next().unwrap_or_default();
            let key = if path.starts_with(PULL_CHECK_PATH.as_bytes()) {
                format!("{PULL_CHECK} {method}")
            } else {
                method.into_owned()
            };
            *counts
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .entry(key)
                .or_default() += 1;
        }
        if s_write.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = s_write.shutdown(Shutdown::Write);
}

/// `count` Pods spread over the namespaces, `pending` of them Pending (waiting to be created),
/// the rest Running.
pub fn add_pods(sim: &Sim, count: usize, pending: usize) -> Result<()> {
    let pod_r = resource_of(&json!({"apiVersion": "v1", "kind": "Pod"}))
        .map_err(|e| anyhow::anyhow!("{}", e.message()))?;
    let running = serde_json::to_vec(&json!({"status": {"phase": "Running"}}))?;
    let waiting = serde_json::to_vec(
        &json!({"status": {"phase": "Pending", "containerStatuses": [
        {"name": "app", "image": "busybox", "imageID": "", "ready": false, "restartCount": 0,
         "state": {"waiting": {"reason": "ContainerCreating"}}}]}}),
    )?;
    for i in 0..count {
        let (ns, name) = (namespace_of(i), format!("pod-{i:05}"));
        create(
            sim,
            workload("Pod", &ns, &name, &[("app", "busybox")], &[], &[]),
        )?;
        let status = if i < pending { &waiting } else { &running };
        sim.store()
            .patch(pod_r, &ns, &name, Patch::Merge(status), true, false)
            .map_err(|e| anyhow::anyhow!("writing a Pod's status: {}", e.message()))?;
    }
    Ok(())
}

/// What the audit run measured.
pub struct AuditFigures {
    /// Requests that reached the backup registry, by method, during the first audit.
    pub requests: BTreeMap<String, u64>,
    /// `image_cloner_audit_checks_total`.
    pub checks: f64,
    /// `image_cloner_audit_last_duration_seconds`: the audit's own wall time.
    pub audit_seconds: f64,
    /// Start → the first audit counted.
    pub until_done: Duration,
    /// `image_cloner_workloads{state="protected"}`.
    pub protected: f64,
    pub copies: f64,
    pub writes: u64,
    pub peak_rss_kib: u64,
}

impl AuditFigures {
    /// The requests of the audit: all but the start-up pull check.
    pub fn audit_requests(&self) -> u64 {
        self.requests
            .iter()
            .filter(|(key, _)| !key.starts_with(PULL_CHECK))
            .map(|(_, n)| n)
            .sum()
    }
}

/// 500 small images pushed straight into a fresh backup registry under the names the daemon
/// gives copies of `{source}/bench/audit-<i>:1.0`: `(backup reference, digest)` each.
fn seed_backup(
    testbed_bin: &Path,
    source: &str,
    backup: &str,
    work: &Path,
) -> Result<Vec<(String, String)>> {
    let folded = format!("{}_bench_audit", source.replace(':', "--"));
    let out = work.join("audit-seed.txt");
    let seeded: Vec<(String, String)> = super::testbed_seed(
        testbed_bin,
        &[
            "--registry",
            backup,
            "--prefix",
            &format!("mirror/{folded}"),
            "--count",
            &AUDIT_IMAGES.to_string(),
            "--platforms",
            "1",
            "--layers",
            "1",
            "--layer-kib",
            "1",
            "--push-jobs",
            "8",
        ],
        &out,
    )?
    .lines()
    .filter_map(|l| {
        let (reference, digest) = l.split_once(' ')?;
        Some((reference.to_owned(), digest.trim().to_owned()))
    })
    .collect();
    if seeded.len() != AUDIT_IMAGES {
        bail!(
            "testbed seed made {} images, not {AUDIT_IMAGES}",
            seeded.len()
        );
    }
    Ok(seeded)
}

/// The namespaces and 10,000 Deployments already running the 500 copies, originals recorded.
fn populate(sim: &Sim, source: &str, proxy: &str, seeded: &[(String, String)]) -> Result<()> {
    for n in 0..NAMESPACES {
        create(
            sim,
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace_of(n)}}),
        )?;
    }
    for i in 0..AUDIT_WORKLOADS {
        let k = i % AUDIT_IMAGES;
        // `mirror/<fold>-<k>:1.0` as seeded; the image index follows the seed's order.
        let (reference, digest) = &seeded[k];
        let index = reference
            .rsplit_once('-')
            .and_then(|(_, rest)| rest.split(':').next())
            .context("a seeded name ends in -<index>:<tag>")?;
        let backup = format!("{proxy}/{reference}@{digest}");
        let original = format!("{source}/bench/audit-{index}:1.0");
        let record = json!({"app": {"original": original, "backup": backup}}).to_string();
        create(
            sim,
            workload(
                "Deployment",
                &namespace_of(i),
                &format!("app-{i:05}"),
                &[("app", backup.as_str())],
                &[],
                &[("image-cloner.io/original-images", record.as_str())],
            ),
        )?;
    }
    Ok(())
}

/// Waits for the daemon's first audit and reads its figures.
fn first_audit(daemon: &Daemon, proxy: &CountingProxy, sim: &Sim) -> Result<AuditFigures> {
    let addr = daemon.metrics_address()?;
    let deadline = Instant::now() + AUDIT_TIMEOUT;
    loop {
        daemon.check_alive()?;
        let (_, m) = scrape(&addr)?;
        let get = |k: &str| m.get(k).copied().unwrap_or(0.0);
        if get("image_cloner_audit_runs_total") >= 1.0
            && get("image_cloner_workloads{state=\"protected\"}") > 0.0
        {
            return Ok(AuditFigures {
                requests: proxy.counts(),
                checks: get("image_cloner_audit_checks_total"),
                audit_seconds: get("image_cloner_audit_last_duration_seconds"),
                until_done: daemon.started.elapsed(),
                protected: get("image_cloner_workloads{state=\"protected\"}"),
                copies: get("image_cloner_copies_total{result=\"succeeded\"}")
                    + get("image_cloner_copies_total{result=\"failed\"}"),
                writes: sim.faults().writes(),
                peak_rss_kib: daemon.peak_rss_kib()?,
            });
        }
        if Instant::now() > deadline {
            bail!(
                "no audit within {}s; end of the daemon's log:\n{}",
                AUDIT_TIMEOUT.as_secs(),
                tail(&daemon.log(), 20)
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The audit of 10,000 workloads over 500 backup references, with the Pod watch holding
/// [`PODS_PENDING`] of [`PODS`] Pods.
pub fn run(cloner: &Path, testbed_bin: &Path, source: &str, work: &Path) -> Result<AuditFigures> {
    let backup = guard().keep_registry(
        Registry::start(RegistryOptions::default())
            .context("starting the audit's backup registry")?,
    )?;
    let t = Instant::now();
    let seeded = seed_backup(testbed_bin, source, &backup, work)?;
    println!(
        "  {AUDIT_IMAGES} copies seeded into a fresh backup registry in {}",
        secs(t.elapsed())
    );
    let proxy = CountingProxy::start(&backup)?;
    let sim = Sim::start(kube_sim::Options::default()).context("starting the simulator")?;
    let kubeconfig = work.join("kubeconfig-audit");
    sim.write_kubeconfig(&kubeconfig)?;
    populate(&sim, source, proxy.host(), &seeded)?;
    add_pods(&sim, PODS, PODS_PENDING)?;
    println!(
        "  {AUDIT_WORKLOADS} Deployments over the {AUDIT_IMAGES} copies, {PODS} Pods ({PODS_PENDING} Pending); the daemon reaches the backup registry through a counting proxy ({})",
        proxy.host()
    );
    let env = super::base_env(source, proxy.host(), &kubeconfig);
    let home = work.join("audit-home");
    std::fs::create_dir_all(&home)?;
    sim.faults().reset_counters();
    let daemon = Daemon::start(cloner_command(cloner, &home, &env), &work.join("audit.log"))?;
    let figures = first_audit(&daemon, &proxy, &sim);
    daemon.stop(Duration::from_secs(10));
    drop(sim);
    guard().release_registry(&backup);
    figures
}

/// The audit's rows of the results table: (figure, measured, target, verdict).
pub fn rows(a: &AuditFigures) -> Vec<(String, String, String, &'static str)> {
    let verdict = super::verdict;
    vec![
        (
            format!(
                "audit: registry requests, {AUDIT_WORKLOADS} workloads over {AUDIT_IMAGES} copies"
            ),
            format!(
                "{} ({})",
                a.audit_requests(),
                super::by_request(&a.requests)
            ),
            format!("= {AUDIT_IMAGES}"),
            verdict(a.audit_requests() == AUDIT_IMAGES as u64),
        ),
        (
            "audit: image_cloner_audit_checks_total".into(),
            a.checks.to_string(),
            String::new(),
            "",
        ),
        (
            "audit: wall time of the audit (the daemon's own)".into(),
            format!("{:.2} s", a.audit_seconds),
            String::new(),
            "",
        ),
        (
            "audit: daemon start → first audit counted".into(),
            secs(a.until_done),
            String::new(),
            "",
        ),
        (
            "audit: workloads counted protected".into(),
            a.protected.to_string(),
            format!("= {AUDIT_WORKLOADS}"),
            verdict(a.protected == AUDIT_WORKLOADS as f64),
        ),
        (
            "audit: copies, API writes".into(),
            format!("{}, {}", a.copies, a.writes),
            "= 0, 0".into(),
            verdict(a.copies == 0.0 && a.writes == 0),
        ),
        (
            format!("audit: daemon peak RSS, Pod watch on ({PODS} Pods, {PODS_PENDING} Pending)"),
            super::mib(a.peak_rss_kib),
            "≤ 64 MiB".into(),
            verdict(a.peak_rss_kib <= 64 * 1024),
        ),
    ]
}
