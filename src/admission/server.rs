//! HTTPS only: the webhooks' listener. Each connection is a TLS handshake (rustls, the current
//! identity of [`Resolver`](crate::admission::tls::Resolver)) and then HTTP/1.1 with
//! keep-alive, as the API server reuses its connections. `POST /mutate` and `POST /validate`
//! are answered by [`Admission::answer`]; anything else is 404 (405 for another method).

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

/// Binds `address` (so that a bad address fails at start, by name) and serves in the
/// background; returns the bound address.
pub async fn serve(
    address: SocketAddr,
    tls: Arc<rustls::ServerConfig>,
    admission: Arc<Admission>,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>), AdmissionError> {
    let listener = TcpListener::bind(address)
        .await
        .map_err(|source| AdmissionError::Listen { address, source })?;
    let bound = listener.local_addr().unwrap_or(address);
    let acceptor = TlsAcceptor::from(tls);
    let task = tokio::spawn(async move {
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
            tokio::spawn(async move {
                let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await
                {
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
            });
        }
    });
    Ok((bound, task))
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
