//! HTTPS only: the webhooks' listener. Each connection is a TLS handshake (rustls, the current
//! identity of [`Resolver`](crate::admission::tls::Resolver)) and then HTTP/1.1 with
//! keep-alive, as the API server reuses its connections. It runs on a runtime of its own
//! ([`super::start`]), so that answers never wait behind the controllers' work. `POST /mutate`
//! and `POST /validate` are answered by [`Admission::answer`]; anything else is 404 (405 for
//! another method).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::admission::Admission;
use crate::admission::error::AdmissionError;

/// An AdmissionReview carries the object and, on update, the old one: each at most 1.5 MB in
/// etcd, base64 and JSON add a third.
const MAX_BODY: usize = 8 * 1024 * 1024;
/// A client that connects and never finishes its handshake holds nothing for longer.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Binds `address` (so that a bad address fails at start, by name) and serves on `runtime`;
/// returns the bound address.
pub fn serve(
    address: SocketAddr,
    tls: Arc<rustls::ServerConfig>,
    admission: Arc<Admission>,
    runtime: &tokio::runtime::Handle,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>), AdmissionError> {
    let listen = |source| AdmissionError::Listen { address, source };
    let std_listener = std::net::TcpListener::bind(address).map_err(listen)?;
    std_listener.set_nonblocking(true).map_err(listen)?;
    let bound = std_listener.local_addr().unwrap_or(address);
    let acceptor = TlsAcceptor::from(tls);
    let task = runtime.spawn(async move {
        let listener = match TcpListener::from_std(std_listener) {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(error = %e, "the webhook listener could not start");
                return;
            }
        };
        loop {
            let (tcp, peer) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(error = %e, "accepting a webhook connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let _ = tcp.set_nodelay(true);
            let (acceptor, admission) = (acceptor.clone(), Arc::clone(&admission));
            tokio::spawn(connection(acceptor, tcp, peer, admission));
        }
    });
    Ok((bound, task))
}

/// One connection: the TLS handshake, then HTTP/1.1 requests until the client closes it.
async fn connection(
    acceptor: TlsAcceptor,
    tcp: tokio::net::TcpStream,
    peer: SocketAddr,
    admission: Arc<Admission>,
) {
    let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            tracing::debug!(%peer, error = %e, "webhook TLS handshake failed");
            return;
        }
        Err(_) => return,
    };
    let service = service_fn(move |req| {
        let admission = Arc::clone(&admission);
        async move { Ok::<_, Infallible>(handle(&admission, req).await) }
    });
    if let Err(e) = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(tls), service)
        .await
    {
        tracing::debug!(%peer, error = %e, "webhook connection ended");
    }
}

async fn handle(admission: &Admission, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_owned();
    if req.method() != Method::POST {
        let known = matches!(path.as_str(), "/mutate" | "/validate");
        let status = if known {
            StatusCode::METHOD_NOT_ALLOWED
        } else {
            StatusCode::NOT_FOUND
        };
        return reply(
            status,
            "text/plain",
            Bytes::from_static(b"POST an AdmissionReview\n"),
        );
    }
    let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(body) => body.to_bytes(),
        Err(e) => {
            return reply(
                StatusCode::PAYLOAD_TOO_LARGE,
                "text/plain",
                Bytes::from(format!("reading the request: {e}\n")),
            );
        }
    };
    let (status, answer) = admission.answer(&path, &body).await;
    let content_type = if status == StatusCode::OK {
        "application/json"
    } else {
        "text/plain"
    };
    reply(status, content_type, Bytes::from(answer))
}

fn reply(status: StatusCode, content_type: &'static str, body: Bytes) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(body));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    resp
}
