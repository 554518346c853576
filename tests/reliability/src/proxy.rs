//! An HTTP proxy on loopback in front of a registry: it logs every request (method, path,
//! status), so the suite counts what reached the registry — how often each repository was
//! pushed to — and it can answer like a registry that throttles (429 with `Retry-After`).
//!
//! Requests are forwarded with their `Host` header unchanged, so the registry builds its
//! upload `Location`s with the proxy's address and every later request comes back here. When
//! the registry cannot be reached, or the proxy is told the registry is down
//! ([`Proxy::set_down`]), the client's connection is closed without an answer, as a load
//! balancer with no backend does.
//!
//! An outage is made here rather than by killing the registry: docker-registry's filesystem
//! storage writes its link files in place, and a SIGKILL during an upload can leave one empty,
//! after which the registry answers 500 `invalid checksum digest format` for that blob for
//! ever — a broken registry, not an outage, and not what the suite means to test.

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};

type Body = BoxBody<Bytes, hyper::Error>;

/// One request as the proxy saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    /// 0 when the upstream could not be reached (the connection was closed).
    pub status: u16,
}

impl Seen {
    /// `PUT /v2/<repo>/manifests/<tag>` answered 201: a copy finished (a multi-arch copy
    /// pushes its platforms' manifests by digest, then the index under the tag, once).
    pub fn tag_push(&self) -> Option<&str> {
        if self.method != "PUT" || self.status != 201 {
            return None;
        }
        let rest = self.path.strip_prefix("/v2/")?;
        let (repo, reference) = rest.rsplit_once("/manifests/")?;
        (!reference.contains(':')).then_some(repo)
    }
}

/// How the proxy throttles: 429 with `Retry-After: retry_after` for one request in `every`
/// (counting from the first), while `remaining` lasts.
#[derive(Debug, Clone, Copy)]
pub struct Throttling {
    pub every: u64,
    pub retry_after: u64,
    pub remaining: u64,
}

struct State {
    upstream: String,
    log: Mutex<Vec<Seen>>,
    throttling: Mutex<Option<Throttling>>,
    counter: AtomicU64,
    throttled: AtomicU64,
    down: AtomicBool,
    /// Bumped when the registry goes down: every open connection is cut.
    cut: tokio::sync::watch::Sender<u64>,
}

impl State {
    fn record(&self, seen: Seen) {
        self.log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(seen);
    }

    fn throttle_now(&self) -> Option<u64> {
        let n = self.counter.fetch_add(1, Ordering::SeqCst);
        let mut guard = self
            .throttling
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let t = guard.as_mut()?;
        if t.remaining == 0 || !n.is_multiple_of(t.every.max(1)) {
            return None;
        }
        t.remaining -= 1;
        self.throttled.fetch_add(1, Ordering::SeqCst);
        Some(t.retry_after)
    }
}

/// A running proxy; stopped when dropped.
pub struct Proxy {
    host: String,
    state: Arc<State>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Proxy {
    /// Listens on a free loopback port and forwards to `upstream` (`host:port`).
    pub fn start(upstream: &str) -> std::io::Result<Proxy> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("proxy")
            .enable_all()
            .build()?;
        let listener = runtime.block_on(TcpListener::bind("127.0.0.1:0"))?;
        let host = listener.local_addr()?.to_string();
        let state = Arc::new(State {
            upstream: upstream.to_owned(),
            log: Mutex::new(Vec::new()),
            throttling: Mutex::new(None),
            counter: AtomicU64::new(0),
            throttled: AtomicU64::new(0),
            down: AtomicBool::new(false),
            cut: tokio::sync::watch::Sender::new(0),
        });
        runtime.spawn(accept(listener, Arc::clone(&state)));
        Ok(Proxy {
            host,
            state,
            runtime: Some(runtime),
        })
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    pub fn throttle(&self, t: Option<Throttling>) {
        *self
            .state
            .throttling
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = t;
    }

    /// Takes the registry out of reach (`true`) or back (`false`). Going down cuts every open
    /// connection, requests half sent or half answered included; while down, each request is
    /// logged with status 0 and its connection closed without an answer. The registry itself
    /// keeps running, and so do its uploads' server-side states.
    pub fn set_down(&self, down: bool) {
        self.state.down.store(down, Ordering::SeqCst);
        if down {
            self.state.cut.send_modify(|generation| *generation += 1);
        }
    }

    /// How many 429s were sent.
    pub fn throttled(&self) -> u64 {
        self.state.throttled.load(Ordering::SeqCst)
    }

    pub fn requests(&self) -> Vec<Seen> {
        self.state
            .log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Finished copies per repository (see [`Seen::tag_push`]).
    pub fn tag_pushes(&self) -> std::collections::BTreeMap<String, u64> {
        let mut out = std::collections::BTreeMap::new();
        for s in self.requests() {
            if let Some(repo) = s.tag_push() {
                *out.entry(repo.to_owned()).or_default() += 1;
            }
        }
        out
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

async fn accept(listener: TcpListener, state: Arc<State>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let state = Arc::clone(&state);
        // Subscribed before the first request is read: a cut after this point reaches it.
        let mut cut = state.cut.subscribe();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let state = Arc::clone(&state);
                async move { handle(req, &state).await }
            });
            let serve = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service);
            // Dropping the connection closes the client's socket and, with the request's body
            // or the response's, the upstream connection it was forwarded on.
            tokio::select! {
                _ = serve => {}
                _ = cut.changed() => {}
            }
        });
    }
}

fn full(status: StatusCode, body: &'static str) -> Response<Body> {
    let mut r = Response::new(
        Full::new(Bytes::from_static(body.as_bytes()))
            .map_err(|never: Infallible| match never {})
            .boxed(),
    );
    *r.status_mut() = status;
    r
}

async fn handle(req: Request<Incoming>, state: &State) -> Result<Response<Body>, std::io::Error> {
    let method = req.method().to_string();
    let path = req.uri().path().to_owned();
    if state.down.load(Ordering::SeqCst) {
        state.record(Seen {
            method,
            path,
            status: 0,
        });
        return Err(std::io::Error::other("the registry is down"));
    }
    if let Some(after) = state.throttle_now() {
        state.record(Seen {
            method,
            path,
            status: 429,
        });
        let mut r = full(
            StatusCode::TOO_MANY_REQUESTS,
            r#"{"errors":[{"code":"TOOMANYREQUESTS","message":"too many requests"}]}"#,
        );
        r.headers_mut()
            .insert("retry-after", hyper::header::HeaderValue::from(after));
        r.headers_mut().insert(
            "content-type",
            hyper::header::HeaderValue::from_static("application/json"),
        );
        return Ok(r);
    }
    match forward(req, &state.upstream).await {
        Ok(response) => {
            state.record(Seen {
                method,
                path,
                status: response.status().as_u16(),
            });
            Ok(response.map(BodyExt::boxed))
        }
        Err(e) => {
            state.record(Seen {
                method,
                path,
                status: 0,
            });
            Err(e)
        }
    }
}

async fn forward(req: Request<Incoming>, upstream: &str) -> std::io::Result<Response<Incoming>> {
    let stream = TcpStream::connect(upstream).await?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(std::io::Error::other)?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    sender
        .send_request(req)
        .await
        .map_err(std::io::Error::other)
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::time::Duration;

    use super::*;

    fn get(host: &str) -> TcpStream {
        let mut client = TcpStream::connect(host).unwrap();
        client
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        client
            .write_all(b"GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        client
    }

    /// What the client reads until the proxy closes the connection (an error if it never does).
    fn read_to_close(client: &mut TcpStream) -> std::io::Result<Vec<u8>> {
        let mut out = Vec::new();
        client.read_to_end(&mut out)?;
        Ok(out)
    }

    #[test]
    fn going_down_cuts_a_request_in_flight_and_refuses_the_next() {
        // An upstream that takes connections, says so, and never answers: a request forwarded
        // to it stays in flight.
        let upstream = TcpListener::bind("127.0.0.1:0").unwrap();
        let upstream_host = upstream.local_addr().unwrap().to_string();
        let (accepted, forwarded) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for stream in upstream.incoming().take(2) {
                held.push(stream);
                let _ = accepted.send(());
            }
            std::thread::sleep(Duration::from_secs(30));
        });
        let wait_forwarded = || forwarded.recv_timeout(Duration::from_secs(10)).unwrap();
        let proxy = Proxy::start(&upstream_host).unwrap();
        let mut in_flight = get(proxy.host());
        wait_forwarded();

        proxy.set_down(true);
        let answer = read_to_close(&mut in_flight).expect("the open connection is cut");
        assert!(answer.is_empty(), "no answer: {answer:?}");
        let answer = read_to_close(&mut get(proxy.host())).expect("a new one is closed");
        assert!(answer.is_empty(), "no answer: {answer:?}");
        let statuses: Vec<u16> = proxy.requests().iter().map(|s| s.status).collect();
        assert_eq!(
            statuses,
            [0],
            "the refused request is logged; the cut one never got a status"
        );

        proxy.set_down(false);
        let _after = get(proxy.host());
        wait_forwarded();
        assert_eq!(proxy.requests().len(), 1);
    }
}
