//! The admission row of `make bench`: the mutating webhook's latency under 100 concurrent
//! AdmissionReviews with 1,000 images verified (DESIGN.md: p99 ≤ 10 ms, no process per request).
//!
//! 1,000 single-layer images are seeded into the source registry and 1,000 Deployments on them
//! into a fresh simulator; `image-cloner run` with the mutating webhook on copies, verifies and
//! patches them all (the mirror then holds 1,000 verified copies). Then 100 clients, each on one
//! kept-alive TLS connection as the API server keeps its own, POST AdmissionReviews of new
//! Deployments on those images to `/mutate`; every answer must carry the patch to the copy.
//! Processes: the daemon's children's CPU time (`cutime`+`cstime` in /proc/PID/stat, which
//! grows by every child it reaps) and its copy counter, before and after the burst.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use bytes::Bytes;
use demo::{Daemon, cloner_command, free_port, guard, scrape, secs, tail};
use http_body_util::{BodyExt as _, Full};
use kube_sim::Sim;
use serde_json::{Value, json};
use testbed::{Registry, RegistryOptions};

use crate::client::{Sender, client_tls, connect};
use crate::create;

pub const IMAGES: usize = 1000;
pub const CLIENTS: usize = 100;
const REVIEWS_PER_CLIENT: usize = 200;
const NAMESPACES: usize = 10;
const CONVERGE_TIMEOUT: Duration = Duration::from_secs(600);

/// What the webhook burst measured.
pub struct WebhookFigures {
    pub verified: usize,
    pub seed_and_copy: Duration,
    pub reviews: usize,
    pub patched: usize,
    pub p50: Duration,
    pub p99: Duration,
    pub max: Duration,
    pub wall: Duration,
    /// The daemon's own CPU per review, µs.
    pub cpu_per_review_us: f64,
    /// CPU time of processes the daemon started and reaped during the burst, clock ticks.
    pub children_ticks: u64,
    /// skopeo copies during the burst.
    pub copies: f64,
}

/// `bench webhook`: only these rows.
pub fn only() -> bool {
    std::env::args().nth(1).as_deref() == Some("webhook")
}

fn namespace(i: usize) -> String {
    format!("hooks-{:02}", i % NAMESPACES)
}

/// (utime+stime, cutime+cstime) of `pid`, clock ticks.
fn cpu_ticks(pid: u32) -> Result<(u64, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let after = stat.rsplit_once(')').map(|(_, a)| a).unwrap_or_default();
    let f: Vec<u64> = after
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    if f.len() < 15 {
        bail!("/proc/{pid}/stat: too few fields");
    }
    Ok((f[11] + f[12], f[13] + f[14]))
}

fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .stdin(Stdio::null())
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

fn copies_total(m: &std::collections::BTreeMap<String, f64>) -> f64 {
    m.iter()
        .filter(|(k, _)| k.starts_with("image_cloner_copies_total"))
        .map(|(_, v)| v)
        .sum()
}

/// Seeds the images, copies them with the daemon, then times the burst.
pub fn webhook_figures(
    cloner: &Path,
    testbed_bin: &Path,
    work: &Path,
    source: &str,
) -> Result<WebhookFigures> {
    let t = Instant::now();
    let images = seed(testbed_bin, work, source)?;
    let sim = Sim::start(kube_sim::Options::default()).context("starting the simulator")?;
    let kubeconfig = work.join("kubeconfig-webhook");
    sim.write_kubeconfig(&kubeconfig)?;
    populate(&sim, &images)?;
    let backup = guard().keep_registry(
        Registry::start(RegistryOptions::default()).context("starting the backup registry")?,
    )?;
    let certs = testbed::tls::generate().context("a webhook certificate")?;
    let (cert, key) = (work.join("webhook.crt"), work.join("webhook.key"));
    std::fs::write(&cert, &certs.server_cert_pem)?;
    std::fs::write(&key, &certs.server_key_pem)?;
    let address = format!("127.0.0.1:{}", free_port()?);
    let mut env = vec![
        ("BACKUP_REGISTRY", format!("{backup}/mirror")),
        ("IMAGE_CLONER_KUBECONFIG", kubeconfig.display().to_string()),
        ("IMAGE_CLONER_WEBHOOK_ADDRESS", address.clone()),
        ("IMAGE_CLONER_WEBHOOK_CERT_FILE", cert.display().to_string()),
        ("IMAGE_CLONER_WEBHOOK_KEY_FILE", key.display().to_string()),
    ];
    env.extend(daemon_env(source, &backup));
    let home = work.join("webhook-home");
    std::fs::create_dir_all(&home)?;
    let daemon = Daemon::start(
        cloner_command(cloner, &home, &env),
        &work.join("webhook.log"),
    )?;
    let metrics = daemon.metrics_address()?;
    let verified = wait_all_pinned(&sim, &daemon)?;
    let seed_and_copy = t.elapsed();

    let (_, before) = scrape(&metrics)?;
    let cpu_before = cpu_ticks(daemon.pid)?;
    let burst = burst(&address, &certs.ca_cert_pem, &images)?;
    let cpu_after = cpu_ticks(daemon.pid)?;
    let (_, after) = scrape(&metrics)?;
    daemon.stop(Duration::from_secs(10));
    drop(sim);
    guard().release_registry(&backup);

    let mut latencies = burst.latencies;
    latencies.sort();
    let at = |q: f64| {
        latencies[((latencies.len() as f64 * q).ceil() as usize).clamp(1, latencies.len()) - 1]
    };
    let own = cpu_after.0.saturating_sub(cpu_before.0) as f64 / clock_ticks();
    Ok(WebhookFigures {
        verified,
        seed_and_copy,
        reviews: latencies.len(),
        patched: burst.patched,
        p50: at(0.50),
        p99: at(0.99),
        max: at(1.0),
        wall: burst.wall,
        cpu_per_review_us: own * 1e6 / latencies.len().max(1) as f64,
        children_ticks: cpu_after.1.saturating_sub(cpu_before.1),
        copies: copies_total(&after) - copies_total(&before),
    })
}

/// The daemon's settings other than its addresses and files.
fn daemon_env(source: &str, backup: &str) -> Vec<(&'static str, String)> {
    vec![
        (
            "IMAGE_CLONER_INSECURE_REGISTRIES",
            format!("{source},{backup}"),
        ),
        ("MAX_CONCURRENT_RECONCILES", "5".into()),
        ("IMAGE_CLONER_METRICS_ADDRESS", "127.0.0.1:0".into()),
        // Start-up lines only: a log line per review would be timed too.
        (
            "IMAGE_CLONER_LOG_LEVEL",
            "warn,image_cloner::commands=info".into(),
        ),
        ("IMAGE_CLONER_SHUTDOWN_GRACE", "5s".into()),
        ("IMAGE_CLONER_MUTATING_WEBHOOK", "on".into()),
    ]
}

/// The namespaces, and one Deployment on each image: the daemon copies them all.
fn populate(sim: &Sim, images: &[String]) -> Result<()> {
    for i in 0..NAMESPACES {
        create(
            sim,
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace(i)}}),
        )?;
    }
    for (i, image) in images.iter().enumerate() {
        create(
            sim,
            deployment(&format!("app-{i:04}"), &namespace(i), image),
        )?;
    }
    Ok(())
}

fn deployment(name: &str, ns: &str, image: &str) -> Value {
    kube_sim::fixtures::workload("Deployment", ns, name, &[("app", image)], &[], json!({}))
}

/// `testbed seed` of IMAGES single-platform, single-layer images: their references.
fn seed(testbed_bin: &Path, work: &Path, source: &str) -> Result<Vec<String>> {
    let out = work.join("webhook-seed.txt");
    let images: Vec<String> = super::testbed_seed(
        testbed_bin,
        &[
            "--registry",
            source,
            "--prefix",
            "hook/app",
            "--count",
            &IMAGES.to_string(),
            "--platforms",
            "1",
            "--layers",
            "1",
            "--layer-kib",
            "4",
            "--push-jobs",
            "4",
        ],
        &out,
    )?
    .lines()
    .filter_map(|l| l.split_whitespace().next())
    .map(|repo_tag| format!("{source}/{repo_tag}"))
    .collect();
    if images.len() != IMAGES {
        bail!("testbed seed made {} images, not {IMAGES}", images.len());
    }
    Ok(images)
}

/// Waits until the daemon has patched every Deployment: every image verified.
fn wait_all_pinned(sim: &Sim, daemon: &Daemon) -> Result<usize> {
    let r = kube_sim::store::resource_of(&json!({"apiVersion": "apps/v1", "kind": "Deployment"}))
        .map_err(|e| anyhow::anyhow!("{}", e.message()))?;
    let deadline = Instant::now() + CONVERGE_TIMEOUT;
    loop {
        daemon.check_alive()?;
        let page = sim
            .store()
            .list(r, None, &kube_sim::store::ListOptions::default())
            .map_err(|e| anyhow::anyhow!("listing deployments: {}", e.message()))?;
        let pinned = page
            .items
            .iter()
            .filter(|d| d["metadata"]["annotations"]["image-cloner.io/original-images"].is_string())
            .count();
        if pinned == IMAGES {
            return Ok(pinned);
        }
        if Instant::now() > deadline {
            bail!(
                "{pinned}/{IMAGES} Deployments patched after {}; end of the daemon's log:\n{}",
                secs(CONVERGE_TIMEOUT),
                tail(&daemon.log(), 20)
            );
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

struct Burst {
    latencies: Vec<Duration>,
    patched: usize,
    wall: Duration,
}

/// An AdmissionReview of a new Deployment `i` on `image`, as the API server sends it.
fn review(i: usize, image: &str) -> Bytes {
    let object = deployment(&format!("new-{i:05}"), &namespace(i), image);
    let body = json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {
            "uid": format!("bench-{i}"),
            "kind": {"group": "apps", "version": "v1", "kind": "Deployment"},
            "resource": {"group": "apps", "version": "v1", "resource": "deployments"},
            "requestKind": {"group": "apps", "version": "v1", "kind": "Deployment"},
            "requestResource": {"group": "apps", "version": "v1", "resource": "deployments"},
            "name": object["metadata"]["name"], "namespace": namespace(i),
            "operation": "CREATE", "userInfo": {"username": "bench"},
            "object": object, "oldObject": null, "dryRun": false,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"}
        }
    });
    Bytes::from(body.to_string())
}

fn burst(address: &str, ca_pem: &str, images: &[String]) -> Result<Burst> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let tls = client_tls(ca_pem)?;
    rt.block_on(async {
        let mut senders = Vec::new();
        for _ in 0..CLIENTS {
            let mut s = connect(address, &tls).await?;
            post(&mut s, review(0, &images[0])).await?; // warm: TLS and keep-alive set up
            senders.push(s);
        }
        let started = Instant::now();
        let tasks: Vec<_> = senders
            .into_iter()
            .enumerate()
            .map(|(c, mut s)| {
                let bodies: Vec<Bytes> = (0..REVIEWS_PER_CLIENT)
                    .map(|r| {
                        let i = c * REVIEWS_PER_CLIENT + r;
                        review(i, &images[(i * 7919) % images.len()])
                    })
                    .collect();
                tokio::spawn(async move {
                    let mut out = Vec::new();
                    for body in bodies {
                        out.push(post(&mut s, body).await?);
                    }
                    anyhow::Ok(out)
                })
            })
            .collect();
        let mut latencies = Vec::new();
        let mut patched = 0;
        for t in tasks {
            for (latency, has_patch) in t.await?? {
                latencies.push(latency);
                patched += usize::from(has_patch);
            }
        }
        Ok(Burst {
            latencies,
            patched,
            wall: started.elapsed(),
        })
    })
}

/// One review: its latency, and whether the answer carried a patch.
async fn post(sender: &mut Sender, body: Bytes) -> Result<(Duration, bool)> {
    sender.ready().await?;
    let req = http::Request::post("/mutate?timeout=5s")
        .header(http::header::HOST, "127.0.0.1")
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Full::new(body))?;
    let t = Instant::now();
    let resp = sender.send_request(req).await?;
    let status = resp.status();
    let bytes = resp.into_body().collect().await?.to_bytes();
    let latency = t.elapsed();
    if !status.is_success() {
        bail!(
            "/mutate answered {status}: {}",
            String::from_utf8_lossy(&bytes)
        );
    }
    let answer: Value = serde_json::from_slice(&bytes)?;
    let allowed = answer["response"]["allowed"] == true;
    if !allowed {
        bail!("/mutate refused a review: {answer}");
    }
    Ok((latency, answer["response"]["patch"].is_string()))
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

/// The section's lines.
pub fn report(f: &WebhookFigures) {
    println!(
        "  {} images seeded, copied and verified by the daemon ({} Deployments patched) in {}",
        IMAGES,
        f.verified,
        secs(f.seed_and_copy)
    );
    println!(
        "  {} AdmissionReviews from {CLIENTS} clients at once ({REVIEWS_PER_CLIENT} each, one kept-alive TLS connection per client) in {}: {} answered with the patch to the copy",
        f.reviews,
        secs(f.wall),
        f.patched
    );
    println!(
        "  latency p50 {}, p99 {}, max {}; the daemon's CPU {:.0} µs per review",
        ms(f.p50),
        ms(f.p99),
        ms(f.max),
        f.cpu_per_review_us
    );
    println!(
        "  during the burst: {} clock tick(s) of CPU by processes the daemon started, {} skopeo copies",
        f.children_ticks, f.copies
    );
}

/// The rows of the results table: (figure, measured, target, met).
pub fn rows(f: &WebhookFigures) -> Vec<(String, String, String, &'static str)> {
    let verdict = |met: bool| if met { "met" } else { "MISSED" };
    vec![
        (
            "admission: /mutate p50, 100 concurrent, 1,000 verified".into(),
            ms(f.p50),
            String::new(),
            "",
        ),
        (
            "admission: /mutate p99, 100 concurrent, 1,000 verified".into(),
            ms(f.p99),
            "≤ 10 ms".into(),
            verdict(f.p99 <= Duration::from_millis(10)),
        ),
        (
            "admission: answers carrying the patch to the copy".into(),
            format!("{}/{}", f.patched, f.reviews),
            format!("= {}", f.reviews),
            verdict(f.patched == f.reviews),
        ),
        (
            "admission: processes started during the burst".into(),
            format!("{} CPU ticks, {} copies", f.children_ticks, f.copies),
            "= 0".into(),
            verdict(f.children_ticks == 0 && f.copies == 0.0),
        ),
    ]
}
