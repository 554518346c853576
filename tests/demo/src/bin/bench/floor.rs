//! The floor under image-cloner's own CPU in a cold round (issue 17): the API requests the run
//! cannot do without — one JSON patch and one `Cloned` Event per workload (DESIGN, pipeline
//! steps 5 and 6) — sent by the plainest client there is: hyper's HTTP/1.1 connection over
//! rustls, as many connections as image-cloner keeps calls in flight, no retry, no tower stack,
//! no parsing of the answers, on one thread. Its CPU is what those requests cost this machine
//! (TLS, HTTP and the kernel's loopback TCP) before image-cloner does anything else; set beside
//! the round's skopeo CPU, it shows how much of the 5 % target is left for everything else.
//!
//! It runs against a simulator of its own, populated like the round's, so that the round's
//! cluster (the warm restart's) is not touched, and its figures are checked: every request
//! answered 2xx, and the simulator counted exactly the patches and Events sent.
//!
//! Measured twice: alone ([`measure`]: all requests in one stream, onto idle cores) and beside
//! copies ([`beside_copies`]: each image's requests in one burst as its copy ends, while skopeo
//! and the registries keep the cores busy — the pace and the company image-cloner's requests
//! have in the round). The same requests cost more the second way: each burst starts from a
//! parked thread, with caches the copies have used meanwhile.

use std::sync::{Arc, Barrier};
use std::time::Duration;

use anyhow::{Context as _, Result, anyhow, bail, ensure};
use bytes::Bytes;
use demo::cost::cpu;
use http_body_util::{BodyExt, Full};
use kube_sim::Sim;
use serde_json::json;

use crate::client::{Sender, client_tls, connect};
use crate::{COLD_WORKLOADS, ORIGINAL_IMAGES, namespace_of, populate};

/// image-cloner's `MAX_CONNECTIONS` (src/reconcile/writer.rs): the connections its writes go
/// on. This client sends one request at a time on each (image-cloner's writer pipelines up to
/// `PIPELINE_DEPTH`), so image-cloner's connections can cost less than this floor's.
pub const CONNECTIONS: usize = 8;
/// What image-cloner's patches and Events ask back (`METADATA_ONLY`, src/reconcile/api.rs):
/// the written object's metadata alone.
const ACCEPT: &str =
    "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json";
/// The container name `workload` gives the bench's Deployments.
const CONTAINER: &str = "app";

/// What the floor cost.
pub struct Floor {
    pub requests: usize,
    /// The client thread's CPU, user + system (`/proc/thread-self/stat`, 10 ms ticks).
    pub cpu: Duration,
}

/// Sends the round's required requests for `images` (as the round's Deployments hold them) to a
/// fresh simulator and measures the client's CPU.
pub fn measure(source: &str, images: &[String], backup: &str) -> Result<Floor> {
    let (sim, requests) = cluster_and_requests(source, images, backup)?;
    let count = requests.len();
    let cpu = thread_cpu(send_all(&sim, requests))?;
    check_counted(&sim)?;
    Ok(Floor {
        requests: count,
        cpu,
    })
}

/// The same requests as [`measure`]'s, each image's — its Deployments' patches and Events —
/// sent in one burst when `copies` reports that image copied (by its index in `images`), as
/// image-cloner sends them once the image's copy is verified; and the client's CPU.
pub fn beside_copies(
    source: &str,
    images: &[String],
    backup: &str,
    copies: impl FnOnce(&(dyn Fn(usize) + Sync)) -> Result<()>,
) -> Result<Floor> {
    let (sim, requests) = cluster_and_requests(source, images, backup)?;
    let count = requests.len();
    let mut bursts: Vec<Vec<http::Request<Bytes>>> = images.iter().map(|_| Vec::new()).collect();
    // A patch and an Event per Deployment, Deployment `i` on image `i % images.len()`.
    for (n, r) in requests.into_iter().enumerate() {
        bursts[(n / 2) % images.len()].push(r);
    }
    let target = Arc::new(Target::of(&sim)?);
    let (copied, reports) = tokio::sync::mpsc::unbounded_channel::<usize>();
    let start = Barrier::new(2);
    let cpu = std::thread::scope(|s| {
        let client = s.spawn(|| {
            start.wait();
            thread_cpu(send_bursts(target, bursts, reports))
        });
        start.wait();
        let copies = copies(&|image| {
            // A client that stopped has its error joined below.
            let _ = copied.send(image);
        });
        drop(copied);
        let cpu = client
            .join()
            .map_err(|_| anyhow!("the floor client panicked"))?;
        copies?;
        cpu
    })?;
    check_counted(&sim)?;
    Ok(Floor {
        requests: count,
        cpu,
    })
}

/// A fresh simulator populated like the round's, its request counters reset, and the round's
/// required requests for it.
fn cluster_and_requests(
    source: &str,
    images: &[String],
    backup: &str,
) -> Result<(Sim, Vec<http::Request<Bytes>>)> {
    let sim = Sim::start(kube_sim::Options::default()).context("starting the simulator")?;
    populate(&sim, source, images)?;
    sim.faults().reset_counters();
    let requests = required_requests(source, images, backup)?;
    Ok((sim, requests))
}

/// The CPU this thread spends running `client` to its end on a runtime of its own.
fn thread_cpu(client: impl Future<Output = Result<()>>) -> Result<Duration> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the floor client's runtime")?;
    let before = cpu::this_thread()?;
    runtime.block_on(client)?;
    Ok(cpu::this_thread()?.since(&before).own)
}

/// The simulator counted exactly one patch and one Event per Deployment.
fn check_counted(sim: &Sim) -> Result<()> {
    let counted = crate::cost::api_requests(sim);
    let expected = [
        ("create events", COLD_WORKLOADS as u64),
        ("patch deployments", COLD_WORKLOADS as u64),
    ];
    for (request, n) in expected {
        let got = counted.get(request).copied().unwrap_or(0);
        ensure!(
            got == n,
            "the floor client's simulator counted {got} {request}, not {n}"
        );
    }
    Ok(())
}

/// One PATCH and one Event per Deployment, shaped like image-cloner's: the patch tests the
/// container's image, replaces it with a pinned backup reference and records the original; the
/// Event is an events.k8s.io/v1 `Cloned` Event on the Deployment; both ask for the written
/// object's metadata alone in the answer.
fn required_requests(
    source: &str,
    images: &[String],
    backup: &str,
) -> Result<Vec<http::Request<Bytes>>> {
    let digest = "0".repeat(64);
    let mut out = Vec::with_capacity(2 * COLD_WORKLOADS);
    for i in 0..COLD_WORKLOADS {
        let (namespace, name) = (namespace_of(i), format!("app-{i:05}"));
        let image = format!("{source}/{}", images[i % images.len()]);
        let pinned = format!("{backup}/{image}@sha256:{digest}");
        let path = "/spec/template/spec/containers/0/image";
        let original = json!([{"container": CONTAINER, "original": image, "backup": pinned}]);
        let patch = json!([
            {"op": "test", "path": path, "value": image},
            {"op": "replace", "path": path, "value": pinned},
            {"op": "add", "path": "/metadata/annotations", "value": {ORIGINAL_IMAGES: original.to_string()}},
        ]);
        out.push(request(
            http::Method::PATCH,
            format!(
                "/apis/apps/v1/namespaces/{namespace}/deployments/{name}?&fieldManager=image-cloner"
            ),
            "application/json-patch+json",
            &patch,
        )?);
        let event = json!({
            "apiVersion": "events.k8s.io/v1",
            "kind": "Event",
            "metadata": {"name": format!("{name}.{i:016x}"), "namespace": namespace},
            "eventTime": "2026-11-30T12:00:00.000000Z",
            "action": "Patch",
            "reason": "Cloned",
            "note": format!("container {CONTAINER}: {image} now runs from {pinned}"),
            "type": "Normal",
            "reportingController": "image-cloner.io/image-cloner",
            "reportingInstance": "bench",
            "regarding": {"apiVersion": "apps/v1", "kind": "Deployment", "namespace": namespace, "name": name},
        });
        out.push(request(
            http::Method::POST,
            format!("/apis/events.k8s.io/v1/namespaces/{namespace}/events?"),
            "application/json",
            &event,
        )?);
    }
    Ok(out)
}

fn request(
    method: http::Method,
    path: String,
    content_type: &'static str,
    body: &serde_json::Value,
) -> Result<http::Request<Bytes>> {
    http::Request::builder()
        .method(method)
        .uri(&path)
        .header(http::header::CONTENT_TYPE, content_type)
        .header(http::header::ACCEPT, ACCEPT)
        .body(Bytes::from(body.to_string()))
        .with_context(|| format!("a request to {path}"))
}

/// Where the floor's requests go, and what each carries.
struct Target {
    tls: tokio_rustls::TlsConnector,
    address: String,
    authorization: http::HeaderValue,
    host: http::HeaderValue,
}

impl Target {
    fn of(sim: &Sim) -> Result<Target> {
        Ok(Target {
            tls: client_tls(sim.ca_pem())?,
            address: sim.address().to_string(),
            authorization: http::HeaderValue::try_from(format!("Bearer {}", sim.token()))
                .context("the simulator's token is not a header value")?,
            host: http::HeaderValue::try_from(sim.address().to_string())
                .context("the simulator's address is not a header value")?,
        })
    }
}

/// `requests` dealt to [`CONNECTIONS`] lanes in turn.
fn lanes(requests: Vec<http::Request<Bytes>>) -> Vec<Vec<http::Request<Bytes>>> {
    let mut lanes: Vec<Vec<http::Request<Bytes>>> = (0..CONNECTIONS).map(|_| Vec::new()).collect();
    for (i, r) in requests.into_iter().enumerate() {
        lanes[i % CONNECTIONS].push(r);
    }
    lanes
}

/// One lane's requests on its connection, one after the other, each answered 2xx.
async fn send_lane(
    sender: &mut Sender,
    lane: Vec<http::Request<Bytes>>,
    target: &Target,
) -> Result<()> {
    for mut r in lane {
        let headers = r.headers_mut();
        headers.insert(http::header::AUTHORIZATION, target.authorization.clone());
        headers.insert(http::header::HOST, target.host.clone());
        let response = sender.send_request(r.map(Full::new)).await?;
        let status = response.status();
        response.into_body().collect().await?;
        if !status.is_success() {
            bail!("the simulator answered {status}");
        }
    }
    Ok(())
}

/// Sends `requests` over [`CONNECTIONS`] connections, each one after the other on its own.
async fn send_all(sim: &Sim, requests: Vec<http::Request<Bytes>>) -> Result<()> {
    let target = Arc::new(Target::of(sim)?);
    let mut tasks = tokio::task::JoinSet::new();
    for lane in lanes(requests) {
        let target = Arc::clone(&target);
        tasks.spawn(async move {
            let mut sender = connect(&target.address, &target.tls).await?;
            send_lane(&mut sender, lane, &target).await
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.context("a floor connection panicked")??;
    }
    Ok(())
}

/// Sends burst `k` over [`CONNECTIONS`] connections when `copied` reports image `k`, until
/// every burst is sent.
async fn send_bursts(
    target: Arc<Target>,
    bursts: Vec<Vec<http::Request<Bytes>>>,
    mut copied: tokio::sync::mpsc::UnboundedReceiver<usize>,
) -> Result<()> {
    let mut senders = Vec::with_capacity(CONNECTIONS);
    for _ in 0..CONNECTIONS {
        senders.push(connect(&target.address, &target.tls).await?);
    }
    let total = bursts.len();
    let mut bursts: Vec<Option<Vec<http::Request<Bytes>>>> = bursts.into_iter().map(Some).collect();
    for sent in 0..total {
        let Some(image) = copied.recv().await else {
            bail!("the copies ended with {sent} of {total} images reported copied");
        };
        let burst = bursts
            .get_mut(image)
            .and_then(Option::take)
            .with_context(|| format!("image {image} reported copied twice, or unknown"))?;
        let mut tasks = tokio::task::JoinSet::new();
        for (mut sender, lane) in senders.drain(..).zip(lanes(burst)) {
            let target = Arc::clone(&target);
            tasks.spawn(async move {
                send_lane(&mut sender, lane, &target).await?;
                anyhow::Ok(sender)
            });
        }
        while let Some(done) = tasks.join_next().await {
            senders.push(done.context("a floor connection panicked")??);
        }
    }
    Ok(())
}
