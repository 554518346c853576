//! Where a reconcile's writes — a workload's patch, an Event — go: straight onto a few kept-alive
//! HTTP/1.1 connections to the API server, with kube's own TLS configuration, authentication
//! and extra headers, instead of through the kube client's whole stack.
//!
//! A cold run writes 4,000 times (a patch and an Event per workload) and reads nothing back but
//! the status. Through `kube::Client` each write crossed a `tower::Buffer` (a channel to a
//! worker task and a oneshot back), tracing, retry, decompression and body-mapping layers, and
//! hyper-util's pool (a checkout raced against a lazy connect, a pool lock on return): callgrind
//! of a cold `run --once` counted ~19,000 instructions a write in `request_text` and ~9,000 in
//! the buffer's worker, besides the connection's own work. Here a write is encoded once and
//! queued on one of a few pipelined connections ([`super::pipelined`]), whose task writes the
//! requests queued together at once and reads their answers back to back.
//!
//! HTTP/1.1, not one multiplexed HTTP/2 connection: fewer connections do not make a write
//! cheaper. Two bare hyper clients over rustls on loopback, each sending 4,000 PATCHes of
//! 900 bytes to a hyper server that answers both protocols, measured by the client thread's
//! CPU (`getrusage(RUSAGE_THREAD)`, four runs each): HTTP/1.1 on 8 connections 57–58 ms;
//! HTTP/2 on one connection, 8 streams at a time 73–97 ms, 40 at a time 71–83 ms. The system
//! time HTTP/2 saves by writing several requests at once, its streams, flow control and
//! header compression spend again, and more.
//!
//! What the kube client's stack did that matters is kept: the Authorization header from
//! kube's auth layer (a static token, or a token refreshed from a file or an exec plugin), the
//! configuration's extra headers (user agent, impersonation), the server's base path, kube's
//! TLS (its CA, client certificate, server name), a request sent on a kept-alive connection the
//! server had closed sent again on another (hyper-util's pool does the same for a request not
//! yet written; here, for one no byte of whose answer came), and
//! throttling answers (429, 503, 504) retried after a backoff or the server's `Retry-After`, as
//! kube's default retry policy does. Errors are kube's: an error status is the server's
//! `Status`, as `Client::request_text` reports it.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioIo;
use kube::client::ConfigExt;
use kube::client::middleware::{AuthLayer, ExtraHeaders};
use kube::core::Status;
use kube::{Client, Config};
use tower::util::Either;
use tower::{BoxError, Layer, Service, ServiceBuilder, ServiceExt};

use super::http1_answer::Answer;
use super::pipelined::{Pipelined, Unanswered};

/// Throttling answers retried at most this many times (kube's `RetryPolicy::server_retry`
/// allows 15; the call's own timeout ends the wait first).
const MAX_RETRIES: u32 = 15;
/// The first throttling retry's wait, doubled for each after it (kube's: 5 ms).
const FIRST_BACKOFF: Duration = Duration::from_millis(5);
/// The longest wait between two retries, whatever the server asks.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// The longest a new connection keeps others from opening while its first answer is awaited
/// ([`Shared::send`]): an API server answers a write in milliseconds, its session ticket ahead
/// of the answer.
const OPENING_HOLD: Duration = Duration::from_millis(500);
/// Connections opened at most: the API server works on one request of a connection at a
/// time, so this is also the most of our writes it has in hand at once.
pub const MAX_CONNECTIONS: usize = 8;
/// Requests meant to be outstanding on one connection at most: the calls in flight are bounded
/// to [`MAX_CONNECTIONS`] times this (`api::MAX_CONCURRENT_CALLS`), spread over the connections
/// by the fewest outstanding. Deeper queues would batch more, and hold more behind a slow answer.
pub const PIPELINE_DEPTH: usize = 4;

/// Sends reconciles' writes; cheap to clone.
#[derive(Clone)]
pub struct Writer {
    route: Route,
}

#[derive(Clone)]
enum Route {
    /// Through the kube client: `WorkloadApi::new`'s default, which the commands replace with
    /// [`Writer::for_config`]'s.
    Kube(Client),
    Direct(Direct),
}

impl Writer {
    /// Writes through `client`.
    pub fn through(client: Client) -> Writer {
        Writer {
            route: Route::Kube(client),
        }
    }

    /// Writes on connections of their own to the server `config` names, with its TLS,
    /// authentication and headers. A proxy is refused, never bypassed: kube's client is built
    /// without proxy support too (its `http-proxy` and `socks5` features are off), so such a
    /// configuration has already failed there.
    pub fn for_config(config: &Config) -> Result<Writer, kube::Error> {
        if let Some(proxy) = &config.proxy_url {
            return Err(kube::Error::ProxyProtocolDisabled {
                proxy_url: Box::new(proxy.clone()),
                protocol_feature: "kube/http-proxy",
            });
        }
        Ok(Writer {
            route: Route::Direct(Direct::new(config)?),
        })
    }

    /// Sends `request` (its URI a path, as kube's `Request` builds it) and answers its body;
    /// an error status is kube's `Error::Api` with the server's `Status`.
    pub async fn send(&self, request: Request<Vec<u8>>) -> Result<Bytes, kube::Error> {
        match &self.route {
            Route::Kube(client) => client.request_text(request).await.map(Bytes::from),
            Route::Direct(direct) => direct.send(request).await,
        }
    }
}

/// kube's request middleware — the configuration's extra headers, then its authentication
/// when it has any — over [`Connections`], named rather than boxed: a boxed stack was cloned
/// into a new box and its answer's future boxed for every write (two allocations, and a call
/// through a vtable at each layer).
type Stack = ExtraHeaders<Either<<AuthLayer as Layer<Connections>>::Service, Connections>>;

/// The direct route: kube's request middleware over [`Connections`].
#[derive(Clone)]
struct Direct {
    stack: Stack,
    /// The server URL's path, without its trailing slash: prefixed to every request's.
    base_path: Arc<str>,
}

impl Direct {
    fn new(config: &Config) -> Result<Direct, kube::Error> {
        let connections = Connections {
            shared: Arc::new(Shared {
                connector: config.rustls_https_connector_with_connector(http_connector())?,
                server: server_of(&config.cluster_url)?,
                host: host_header(&config.cluster_url),
                connect_timeout: config.connect_timeout,
                open: Mutex::new(Vec::new()),
                opening: tokio::sync::Mutex::new(()),
            }),
        };
        let stack = ServiceBuilder::new()
            .layer(config.extra_headers_layer()?)
            .option_layer(config.auth_layer()?)
            .service(connections);
        Ok(Direct {
            stack,
            base_path: config.cluster_url.path().trim_end_matches('/').into(),
        })
    }

    async fn send(&self, request: Request<Vec<u8>>) -> Result<Bytes, kube::Error> {
        let (mut parts, body) = request.into_parts();
        if !self.base_path.is_empty() {
            parts.uri = based(&self.base_path, &parts.uri)?;
        }
        let body = Bytes::from(body);
        // Kept for a retry. The first attempt sends the request's own parts: a clone's header
        // map has room for its entries alone, and the layers' headers (host, authorization, the
        // configuration's) then grew it twice a request, where the caller made room for them.
        let kept = parts.clone();
        let mut next = Some(parts);
        let mut backoff = FIRST_BACKOFF;
        let mut retries = 0;
        loop {
            let parts = next.take().unwrap_or_else(|| kept.clone());
            let request = Request::from_parts(parts, Full::new(body.clone()));
            let response = self
                .stack
                .clone()
                .oneshot(request)
                .await
                .map_err(kube_error)?;
            let status = response.status();
            if retryable(status) && retries < MAX_RETRIES {
                retries += 1;
                tokio::time::sleep(retry_after(&response).unwrap_or(backoff)).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
            let body = response.into_body();
            if status.is_client_error() || status.is_server_error() {
                return Err(api_error(status, &body));
            }
            return Ok(body);
        }
    }
}

/// The statuses kube's default retry policy retries.
fn retryable(status: StatusCode) -> bool {
    matches!(
        status,
        StatusCode::TOO_MANY_REQUESTS
            | StatusCode::SERVICE_UNAVAILABLE
            | StatusCode::GATEWAY_TIMEOUT
    )
}

/// The wait a `Retry-After` header asks for, in whole seconds, at most [`MAX_BACKOFF`].
fn retry_after(response: &Response<Bytes>) -> Option<Duration> {
    let seconds: u64 = response
        .headers()
        .get(http::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(seconds).min(MAX_BACKOFF))
}

/// An error answer as kube reports it: the server's `Status`, or one made of the text.
fn api_error(status: StatusCode, body: &[u8]) -> kube::Error {
    let status = serde_json::from_slice::<Status>(body).unwrap_or_else(|_| {
        let text = String::from_utf8_lossy(body);
        Status::failure(text.trim(), "Failed to parse error data").with_code(status.as_u16())
    });
    kube::Error::Api(status.boxed())
}

/// The middleware's or the connection's error as kube's client reports it.
fn kube_error(error: BoxError) -> kube::Error {
    error
        .downcast::<kube::Error>()
        .map(|e| *e)
        .or_else(|e| {
            e.downcast::<hyper::Error>()
                .map(|e| kube::Error::HyperError(*e))
        })
        .unwrap_or_else(kube::Error::Service)
}

/// `path` (a request's path and query) under the server's `base` path, as kube's base-URI
/// layer joins them.
fn based(base: &str, path: &http::Uri) -> Result<http::Uri, kube::Error> {
    let pq = path.path_and_query().map_or("/", |pq| pq.as_str());
    format!("{base}{pq}")
        .parse()
        .map_err(|e: http::uri::InvalidUri| kube::Error::HttpError(e.into()))
}

/// The server's scheme and authority: what a connection is opened to.
fn server_of(url: &http::Uri) -> Result<http::Uri, kube::Error> {
    let mut parts = http::uri::Parts::default();
    parts.scheme = url.scheme().cloned();
    parts.authority = url.authority().cloned();
    parts.path_and_query = Some(http::uri::PathAndQuery::from_static("/"));
    http::Uri::from_parts(parts).map_err(|e| kube::Error::HttpError(e.into()))
}

/// The `Host` header of every request to `server`, made once: `cluster::client::config` adds
/// it to the configuration's headers (left to hyper-util's client, kube's reads formatted it
/// for each request: callgrind, cold `run --once` of 4,000 requests, hyper-util's
/// `send_request` 57.3 M → 51.1 M instructions), and the Writer's connections, which hyper
/// does not give one, fall back on it. The value is the one hyper-util writes: the host, and
/// the port as written unless it is the scheme's default.
pub fn host_header(server: &http::Uri) -> Option<http::HeaderValue> {
    let host = server.host()?;
    let default_port = if matches!(server.scheme_str(), Some("https" | "wss")) {
        443
    } else {
        80
    };
    let value = match server.port() {
        Some(port) if port.as_u16() != default_port => format!("{host}:{port}"),
        _ => host.to_owned(),
    };
    http::HeaderValue::from_str(&value).ok()
}

type Connector = hyper_rustls::HttpsConnector<HttpConnector>;

/// kube's TCP connector (`ConfigExt::rustls_https_connector`'s), with Nagle's algorithm off: a
/// request written while the connection's earlier ones are unanswered would otherwise wait for
/// the server's acknowledgement of them (up to its delayed-ACK timer, 40 ms on Linux).
fn http_connector() -> HttpConnector {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http
}

/// Kept-alive pipelined HTTP/1.1 connections to the API server ([`Pipelined`]): a request goes
/// on an idle connection, or a new one while there are fewer than [`MAX_CONNECTIONS`], or
/// else behind the requests of the one with the fewest outstanding.
#[derive(Clone)]
struct Connections {
    shared: Arc<Shared>,
}

struct Shared {
    connector: Connector,
    server: http::Uri,
    /// The `Host` header when the request has none (the configuration's usually carries it).
    host: Option<http::HeaderValue>,
    connect_timeout: Option<Duration>,
    open: Mutex<Vec<Pipelined>>,
    /// Held from a new connection's start until its first answer comes (or [`OPENING_HOLD`]
    /// passes): see [`Shared::send`].
    opening: tokio::sync::Mutex<()>,
}

impl Service<Request<Full<Bytes>>> for Connections {
    type Response = Response<Bytes>;
    type Error = BoxError;
    type Future = futures::future::BoxFuture<'static, Result<Response<Bytes>, BoxError>>;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), BoxError>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Full<Bytes>>) -> Self::Future {
        let (parts, body) = request.into_parts();
        let request = Request::from_parts(parts, whole(body));
        let shared = Arc::clone(&self.shared);
        Box::pin(async move { shared.send(request).await })
    }
}

impl Shared {
    /// Sends `request` and reads its answer; a request the connection ended before answering
    /// (and before a byte of its answer came) is sent once more, on another connection.
    ///
    /// New connections are opened one at a time, each keeping the next from opening until its
    /// first answer comes. The API server sends a TLS 1.3 session ticket on each connection
    /// (Go sends one), ahead of that connection's first answer, and a ticket is used once:
    /// connections opened side by side found none and each made a full handshake, the
    /// server's certificate chain sent, signed for and checked (6 of a cold run's 9
    /// handshakes; callgrind: 1.5 M instructions of signature checks each, on this side
    /// alone). One after another, each resumes with the ticket the one before it received.
    /// Meanwhile requests queue on the connections already open, and wait only when there is
    /// none; a new connection holds the others back at most [`OPENING_HOLD`].
    async fn send(&self, request: Request<Bytes>) -> Result<Response<Bytes>, BoxError> {
        let request = encode(&request, self.host.as_ref());
        let mut sent_again = false;
        loop {
            let (connection, opening) = self.choose().await?;
            let Some(answer) = connection.send(request.clone()) else {
                if opening.is_some() {
                    return Err("the API server closed a new connection".into());
                }
                // Ended since it was chosen: it is dropped from the open ones at the next choice.
                continue;
            };
            let answered = match opening {
                Some(opening) => held_until_answered(answer, opening).await,
                None => answer.await,
            };
            let unanswered = match answered {
                Ok(Ok(answer)) => return Ok(response_of(answer)),
                Ok(Err(unanswered)) => unanswered,
                // The connection's task is gone without a word (it panicked).
                Err(_) => Unanswered::NotStarted("the connection's task ended".into()),
            };
            match unanswered {
                Unanswered::NotStarted(_) if !sent_again => sent_again = true,
                unanswered => return Err(unanswered.into()),
            }
        }
    }

    /// The connection to send on, and the opening gate when it is a new one: an idle one, else a
    /// new one, else (one is being opened) the least busy of those that have answered before.
    /// A connection yet to answer is not queued behind: its first answer may be slow to come (a
    /// write an admission webhook holds), and the next connection opens after [`OPENING_HOLD`].
    async fn choose(
        &self,
    ) -> Result<(Pipelined, Option<tokio::sync::MutexGuard<'_, ()>>), BoxError> {
        let choice = self.choice();
        if let Some(c) = choice.without_opening() {
            return Ok((c, None));
        }
        let opening = match self.opening.try_lock() {
            Ok(opening) => opening,
            // One is being opened: queue behind the least busy that has answered, or wait.
            Err(_) => {
                if let Some(c) = choice.least_busy_proven {
                    return Ok((c, None));
                }
                // Kept once granted, not dropped and tried again: the lock is handed to its
                // waiters in turn, and each would find it held by the next.
                let opening = self.opening.lock().await;
                if let Some(c) = self.choice().without_opening() {
                    return Ok((c, None));
                }
                opening
            }
        };
        let connection = self.connect().await?;
        self.open
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(connection.clone());
        Ok((connection, Some(opening)))
    }

    /// What [`Self::choose`] picks from; ended connections are forgotten.
    fn choice(&self) -> Choice {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        open.retain(|c| !c.is_closed());
        let least_busy = open.iter().min_by_key(|c| c.outstanding()).cloned();
        let least_busy_proven = open
            .iter()
            .filter(|c| c.has_answered())
            .min_by_key(|c| c.outstanding())
            .cloned();
        Choice {
            least_busy,
            least_busy_proven,
            open: open.len(),
        }
    }

    async fn connect(&self) -> Result<Pipelined, BoxError> {
        let connecting = self.connector.clone().oneshot(self.server.clone());
        let io = match self.connect_timeout {
            Some(limit) => tokio::time::timeout(limit, connecting)
                .await
                .map_err(|_| format!("connecting to the API server took over {limit:?}"))??,
            None => connecting.await?,
        };
        Ok(Pipelined::start(TokioIo::new(io)))
    }
}

/// The bytes of a body the layers above were handed whole (kube's refreshing-token layer takes
/// a body type, which `Bytes` is not): its one frame, there at once.
fn whole(mut body: Full<Bytes>) -> Bytes {
    use futures::FutureExt;
    match body.frame().now_or_never() {
        Some(Some(Ok(frame))) => frame.into_data().unwrap_or_default(),
        Some(Some(Err(never))) => match never {},
        Some(None) | None => Bytes::new(),
    }
}

/// The open connections as [`Shared::choose`] sees them.
struct Choice {
    /// The one with the fewest requests outstanding.
    least_busy: Option<Pipelined>,
    /// The same among those that have answered a request.
    least_busy_proven: Option<Pipelined>,
    open: usize,
}

impl Choice {
    /// The connection to send on without opening one: an idle one, or the least busy when no
    /// more may be opened.
    fn without_opening(&self) -> Option<Pipelined> {
        let least_busy = self.least_busy.as_ref()?;
        (least_busy.outstanding() == 0 || self.open >= MAX_CONNECTIONS).then(|| least_busy.clone())
    }
}

/// `request`'s head and body as sent: the request line, the `Host` header (`host` when the
/// request has none), its headers, and the body's length. Header names and values are the
/// `http` crate's, which admit no line break.
fn encode(request: &Request<Bytes>, host: Option<&http::HeaderValue>) -> Bytes {
    let headers = request.headers();
    let body = request.body();
    let path = request.uri().path_and_query().map_or("/", |pq| pq.as_str());
    let mut out = Vec::with_capacity(256 + path.len() + body.len());
    out.extend_from_slice(request.method().as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(path.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    if !headers.contains_key(http::header::HOST)
        && let Some(host) = host
    {
        push_header(&mut out, "host", host.as_bytes());
    }
    for (name, value) in headers {
        // The body's framing is ours to say.
        if name == http::header::CONTENT_LENGTH || name == http::header::TRANSFER_ENCODING {
            continue;
        }
        push_header(&mut out, name.as_str(), value.as_bytes());
    }
    if !body.is_empty() || !matches!(*request.method(), http::Method::GET | http::Method::HEAD) {
        use std::io::Write;
        // Writing to a Vec cannot fail.
        let _ = write!(out, "content-length: {}\r\n", body.len());
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    Bytes::from(out)
}

fn push_header(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// An answer as the layers above see it: its status, its `Retry-After` (the only header the
/// writer reads) and its body.
fn response_of(answer: Answer) -> Response<Bytes> {
    let mut response = Response::new(answer.body);
    *response.status_mut() = answer.status;
    if let Some(retry_after) = answer.retry_after {
        response
            .headers_mut()
            .insert(http::header::RETRY_AFTER, retry_after);
    }
    response
}

/// `answer`, the gate on opening connections held until it comes or [`OPENING_HOLD`] passes:
/// one slow answer (a write a slow admission webhook holds, say) must not keep every other
/// write from a connection of its own for longer.
async fn held_until_answered<F: Future>(
    answer: F,
    opening: tokio::sync::MutexGuard<'_, ()>,
) -> F::Output {
    let mut answer = std::pin::pin!(answer);
    tokio::select! {
        answered = &mut answer => answered,
        () = tokio::time::sleep(OPENING_HOLD) => {
            drop(opening);
            answer.await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_header_is_the_host_and_a_port_other_than_the_schemes_own() {
        let cases = [
            ("https://10.0.0.1:6443", Some("10.0.0.1:6443")),
            ("https://api.example.com", Some("api.example.com")),
            ("https://api.example.com:443", Some("api.example.com")),
            ("http://127.0.0.1:80", Some("127.0.0.1")),
            ("http://127.0.0.1:443", Some("127.0.0.1:443")),
            ("https://[::1]:6443/k8s/clusters/c-1", Some("[::1]:6443")),
            ("/no/authority", None),
        ];
        for (server, expected) in cases {
            let header = host_header(&server.parse().unwrap());
            assert_eq!(
                header.as_ref().map(|v| v.to_str().unwrap()),
                expected,
                "{server}"
            );
        }
    }
}
