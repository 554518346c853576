//! A test admission webhook: HTTPS on 127.0.0.1 with a certificate from `testbed::tls`,
//! answering `admission.k8s.io/v1` AdmissionReviews the way image-cloner's webhook will,
//! and recording every request it receives so a test can compare what two API servers sent.
//!
//! Paths:
//! - `/mutate/images`: every container image not yet under `backup.local/` is moved there
//!   (a JSONPatch `replace` per container), with a warning per image.
//! - `/mutate/chain/NAME`: appends `NAME saw IMAGE` (the first container's image as this
//!   webhook received it) to the annotation `test/chain`, to show the order of mutating
//!   webhooks and that each sees the previous one's result.
//! - `/validate`: denies an object labelled `deny=true` with the Status in its annotation
//!   `test/deny-status` (JSON), or controller-runtime's usual 403 Forbidden; warns always.
//! - `/garbage`: answers 200 with a body that is not an AdmissionReview.
//! - `/slow`: allows, after 3 s (longer than the webhook's `timeoutSeconds`).

#![allow(dead_code, clippy::unwrap_used)]

pub mod fixtures;
pub mod normalise;
pub mod requests;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

/// One request the webhook received: the request URI (path and query), its content type and
/// the AdmissionReview.
#[derive(Debug, Clone)]
pub struct Received {
    pub uri: String,
    pub content_type: String,
    pub review: Value,
}

/// A running test webhook; dropping it (or [`WebhookServer::stop`]) closes its port.
pub struct WebhookServer {
    pub address: SocketAddr,
    /// PEM of the CA that signed its certificate, for `clientConfig.caBundle`.
    pub ca_pem: String,
    received: Arc<Mutex<Vec<Received>>>,
    stop: Option<watch::Sender<bool>>,
}

impl WebhookServer {
    /// Starts on the current Tokio runtime.
    pub async fn start() -> WebhookServer {
        let certs = testbed::tls::generate().expect("certificates");
        let chain = vec![CertificateDer::from_pem_slice(certs.server_cert_pem.as_bytes()).unwrap()];
        let key = PrivateKeyDer::from_pem_slice(certs.server_key_pem.as_bytes()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().unwrap();
        let received = Arc::new(Mutex::new(Vec::new()));
        let (stop, mut stopped) = watch::channel(false);
        let log = Arc::clone(&received);
        tokio::spawn(async move {
            loop {
                let (tcp, _) = tokio::select! {
                    a = listener.accept() => match a { Ok(a) => a, Err(_) => continue },
                    _ = stopped.changed() => return,
                };
                let acceptor = acceptor.clone();
                let log = Arc::clone(&log);
                let mut stop_conn = stopped.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service = service_fn(move |req| {
                        let log = Arc::clone(&log);
                        async move { Ok::<_, Infallible>(answer(&log, req).await) }
                    });
                    let conn = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), service);
                    tokio::select! {
                        _ = conn => {}
                        _ = stop_conn.changed() => {}
                    }
                });
            }
        });
        WebhookServer {
            address,
            ca_pem: certs.ca_cert_pem,
            received,
            stop: Some(stop),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("https://{}{path}", self.address)
    }

    pub fn ca_bundle(&self) -> String {
        B64.encode(&self.ca_pem)
    }

    /// Every request received so far, oldest first.
    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    pub fn clear(&self) {
        self.received.lock().unwrap().clear();
    }

    /// Closes the port and every open connection: calls now fail with "connection refused".
    pub fn stop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(true);
        }
    }
}

impl Drop for WebhookServer {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn answer(
    log: &Mutex<Vec<Received>>,
    req: Request<hyper::body::Incoming>,
) -> Response<Full<Bytes>> {
    let uri = req.uri().to_string();
    let path = req.uri().path().to_owned();
    let content_type = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body = req.into_body().collect().await.unwrap().to_bytes();
    let review: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    log.lock().unwrap().push(Received {
        uri,
        content_type,
        review: review.clone(),
    });
    if path == "/slow" {
        tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    }
    if path == "/garbage" {
        return Response::new(Full::new(Bytes::from_static(b"not a review")));
    }
    let request = &review["request"];
    let mut response = json!({"uid": request["uid"], "allowed": true});
    let object = &request["object"];
    if path == "/mutate/images" {
        let (patch, warnings) = rewrite_images(object);
        if !patch.is_empty() {
            response["patchType"] = json!("JSONPatch");
            response["patch"] = json!(B64.encode(serde_json::to_vec(&patch).unwrap()));
        }
        if !warnings.is_empty() {
            response["warnings"] = json!(warnings);
        }
    } else if let Some(name) = path.strip_prefix("/mutate/chain/") {
        let patch = chain(object, name);
        response["patchType"] = json!("JSONPatch");
        response["patch"] = json!(B64.encode(serde_json::to_vec(&patch).unwrap()));
    } else if path == "/validate" {
        response["warnings"] = json!([format!(
            "validated {} {}",
            request["kind"]["kind"].as_str().unwrap_or_default(),
            request["operation"].as_str().unwrap_or_default()
        )]);
        if object["metadata"]["labels"]["deny"] == "true" {
            response["allowed"] = json!(false);
            let status = object["metadata"]["annotations"]["test/deny-status"]
                .as_str()
                .map(|s| serde_json::from_str::<Value>(s).unwrap())
                .unwrap_or_else(|| {
                    json!({"code": 403, "reason": "Forbidden", "message": "the label deny=true is set"})
                });
            if !status.is_null() {
                response["status"] = status;
            }
        }
    }
    let out = json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response});
    let mut resp = Response::new(Full::new(Bytes::from(serde_json::to_vec(&out).unwrap())));
    resp.headers_mut()
        .insert("content-type", "application/json".parse().unwrap());
    resp
}

/// Where the pod spec of an object of `kind` is, as a JSON pointer.
pub fn pod_spec_pointer(kind: &str) -> &'static str {
    match kind {
        "Pod" => "/spec",
        "CronJob" => "/spec/jobTemplate/spec/template/spec",
        _ => "/spec/template/spec",
    }
}

fn rewrite_images(object: &Value) -> (Vec<Value>, Vec<String>) {
    let kind = object["kind"].as_str().unwrap_or_default();
    let spec_ptr = pod_spec_pointer(kind);
    let mut patch = Vec::new();
    let mut warnings = Vec::new();
    let Some(spec) = object.pointer(spec_ptr) else {
        return (patch, warnings);
    };
    for list in ["initContainers", "containers"] {
        for (i, c) in spec[list].as_array().into_iter().flatten().enumerate() {
            let image = c["image"].as_str().unwrap_or_default();
            if image.starts_with("backup.local/") {
                continue;
            }
            let copy = format!("backup.local/{image}");
            patch.push(json!({"op": "replace", "path": format!("{spec_ptr}/{list}/{i}/image"), "value": copy}));
            warnings.push(format!("image \"{image}\" is served from {copy}"));
        }
    }
    (patch, warnings)
}

fn chain(object: &Value, name: &str) -> Vec<Value> {
    let kind = object["kind"].as_str().unwrap_or_default();
    let image = object
        .pointer(&format!("{}/containers/0/image", pod_spec_pointer(kind)))
        .and_then(Value::as_str)
        .unwrap_or_default();
    let entry = format!("{name} saw {image}");
    let mut patch = Vec::new();
    let annotations = &object["metadata"]["annotations"];
    if !annotations.is_object() {
        patch.push(json!({"op": "add", "path": "/metadata/annotations", "value": {}}));
    }
    let value = match annotations["test/chain"].as_str() {
        Some(before) => format!("{before}; {entry}"),
        None => entry,
    };
    patch.push(json!({"op": "add", "path": "/metadata/annotations/test~1chain", "value": value}));
    patch
}
