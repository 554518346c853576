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

use std::time::Duration;

use anyhow::{Context as _, Result, bail, ensure};
use bytes::Bytes;
use demo::cost::cpu;
use http_body_util::{BodyExt, Full};
use kube_sim::Sim;
use serde_json::json;

use crate::client::{client_tls, connect};
use crate::{COLD_WORKLOADS, ORIGINAL_IMAGES, namespace_of, populate};

/// image-cloner's `MAX_CONCURRENT_CALLS` (src/reconcile/api.rs): API calls in flight at once.
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
    let sim = Sim::start(kube_sim::Options::default()).context("starting the simulator")?;
    populate(&sim, source, images)?;
    let requests = required_requests(source, images, backup)?;
    let count = requests.len();
    sim.faults().reset_counters();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the floor client's runtime")?;
    let before = cpu::this_thread()?;
    runtime.block_on(send_all(&sim, requests))?;
    let cpu = cpu::this_thread()?.since(&before).own;
    let counted = crate::cost::api_requests(&sim);
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
    Ok(Floor {
        requests: count,
        cpu,
    })
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

/// Sends `requests` over [`CONNECTIONS`] connections, each one after the other on its own.
async fn send_all(sim: &Sim, requests: Vec<http::Request<Bytes>>) -> Result<()> {
    let tls = client_tls(sim.ca_pem())?;
    let authorization = http::HeaderValue::try_from(format!("Bearer {}", sim.token()))
        .context("the simulator's token is not a header value")?;
    let host = http::HeaderValue::try_from(sim.address().to_string())
        .context("the simulator's address is not a header value")?;
    let mut lanes: Vec<Vec<http::Request<Bytes>>> = (0..CONNECTIONS).map(|_| Vec::new()).collect();
    for (i, r) in requests.into_iter().enumerate() {
        lanes[i % CONNECTIONS].push(r);
    }
    let mut tasks = tokio::task::JoinSet::new();
    for lane in lanes {
        let (tls, address) = (tls.clone(), sim.address().to_string());
        let (authorization, host) = (authorization.clone(), host.clone());
        tasks.spawn(async move {
            let mut sender = connect(&address, &tls).await?;
            for mut r in lane {
                r.headers_mut()
                    .insert(http::header::AUTHORIZATION, authorization.clone());
                r.headers_mut().insert(http::header::HOST, host.clone());
                let response = sender.send_request(r.map(Full::new)).await?;
                let status = response.status();
                response.into_body().collect().await?;
                if !status.is_success() {
                    bail!("the simulator answered {status}");
                }
            }
            anyhow::Ok(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.context("a floor connection panicked")??;
    }
    Ok(())
}
