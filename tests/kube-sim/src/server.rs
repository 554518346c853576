//! The HTTPS front: authentication, routing of the Kubernetes REST paths, fault injection,
//! request counting, and watch streams.

use std::borrow::Cow;
use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::header::{CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::HandshakeKind;
use tokio_stream::StreamExt as _;
use tokio_stream::wrappers::ReceiverStream;

use crate::access_review;
use crate::admission;
use crate::discovery;
use crate::faults::{FailRule, Faults, Interference, LatencyRule, RequestRecord};
use crate::partial;
use crate::protobuf;
use crate::resources::{ResourceType, by_path};
use crate::selector::{FieldSelector, LabelSelector};
use crate::status::ApiError;
use crate::store::{self, ListOptions, Patch, Store, WatchStart};
use crate::table;
use crate::wire;

pub type Body = BoxBody<Bytes, Infallible>;

/// What every request handler shares.
pub struct Shared {
    pub store: Arc<Store>,
    pub faults: Arc<Faults>,
    pub token: String,
    pub address: String,
    pub bookmark_interval: Duration,
    /// How long a deleted namespace stays Terminating before its content and it are gone.
    pub namespace_finalize_delay: Duration,
}

/// Accepts connections until `shutdown` turns true.
pub async fn serve(
    listener: TcpListener,
    tls: TlsAcceptor,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let (tcp, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(_) => continue,
            },
            _ = shutdown.changed() => return,
        };
        shared.faults.connection_accepted();
        // As the real server (Go sets TCP_NODELAY on every connection): without it, the tail of
        // a response written in two parts waited for the client's delayed ACK, and about one
        // list page in six took 40 ms more to arrive (a page of 50 Deployments: ~48 ms, not ~5).
        let _ = tcp.set_nodelay(true);
        let tls = tls.clone();
        let shared = Arc::clone(&shared);
        let mut stop = shutdown.clone();
        tokio::spawn(async move {
            let Ok(stream) = tls.accept(tcp).await else {
                return;
            };
            let resumed = stream.get_ref().1.handshake_kind() == Some(HandshakeKind::Resumed);
            shared.faults.handshake_completed(resumed);
            let service = service_fn(move |req| {
                let shared = Arc::clone(&shared);
                async move {
                    let _in_flight = shared.faults.request_started();
                    Ok::<_, Infallible>(handle(&shared, req).await)
                }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                _ = conn => {}
                _ = stop.changed() => {}
            }
        });
    }
}

fn full(code: u16, content_type: &'static str, bytes: Vec<u8>) -> Response<Body> {
    let mut resp = Response::new(Full::new(Bytes::from(bytes)).boxed());
    *resp.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

/// A JSON response written from anything serializable: list bodies are written straight
/// from the stored objects ([`store::list_body`]).
fn json_response(code: u16, v: &impl serde::Serialize) -> Response<Body> {
    full(
        code,
        "application/json",
        serde_json::to_vec(v).unwrap_or_default(),
    )
}

/// An object read or written: the object, or its metadata alone when the client asked for that
/// ([`partial`]), marked so for the request log.
fn object_response(
    code: u16,
    whole: &impl serde::Serialize,
    object: &Value,
    metadata_only: Option<&str>,
) -> Response<Body> {
    match metadata_only {
        Some(api_version) => {
            let mut resp = json_response(code, &partial::of(api_version, object));
            resp.extensions_mut().insert(partial::MetadataOnly);
            resp
        }
        None => json_response(code, whole),
    }
}

fn error_response(e: &ApiError) -> Response<Body> {
    let mut resp = json_response(e.code, &e.body);
    if let Some(s) = e.retry_after
        && let Ok(v) = HeaderValue::from_str(&s.to_string())
    {
        resp.headers_mut().insert(RETRY_AFTER, v);
    }
    resp
}

/// Percent-decoding of one query component (`+` is a space in forms).
fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match u8::from_str_radix(&s[i + 1..i + 3], 16) {
                Ok(b) => {
                    out.push(b);
                    i += 2;
                }
                Err(_) => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn parse_query(q: Option<&str>) -> HashMap<String, String> {
    q.unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (decode(k), decode(v)),
            None => (decode(p), String::new()),
        })
        .collect()
}

/// A request for a resource: which one, where, and which subresource.
struct Target {
    r: &'static ResourceType,
    namespace: Option<String>,
    name: Option<String>,
    subresource: Option<String>,
}

fn parse_target(segs: &[&str]) -> Option<Target> {
    let (group, version, rest) = match segs {
        ["api", v, rest @ ..] => ("", *v, rest),
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => return None,
    };
    let t = |r, ns: Option<&str>, name: Option<&str>, sub: Option<&str>| {
        Some(Target {
            r,
            namespace: ns.map(str::to_owned),
            name: name.map(str::to_owned),
            subresource: sub.map(str::to_owned),
        })
    };
    match rest {
        ["namespaces", ns, plural, more @ ..]
            if by_path(group, version, plural).is_some_and(|r| r.namespaced) =>
        {
            let r = by_path(group, version, plural)?;
            match more {
                [] => t(r, Some(ns), None, None),
                [name] => t(r, Some(ns), Some(name), None),
                [name, sub] => t(r, Some(ns), Some(name), Some(sub)),
                _ => None,
            }
        }
        [plural, more @ ..] => {
            let r = by_path(group, version, plural)?;
            match more {
                [] => t(r, None, None, None),
                [name] if !r.namespaced => t(r, None, Some(name), None),
                [name, sub] if !r.namespaced => t(r, None, Some(name), Some(sub)),
                _ => None,
            }
        }
        _ => None,
    }
}

fn verb_of(
    method: &Method,
    target: &Target,
    query: &HashMap<String, String>,
) -> Option<&'static str> {
    let watch = matches!(query.get("watch").map(String::as_str), Some("true" | "1"));
    Some(match (method.as_str(), target.name.is_some()) {
        ("GET", true) => "get",
        ("GET", false) if watch => "watch",
        ("GET", false) => "list",
        ("POST", false) => "create",
        ("PUT", true) => "update",
        ("PATCH", true) => "patch",
        ("DELETE", true) => "delete",
        ("DELETE", false) => "deletecollection",
        _ => return None,
    })
}

pub async fn handle(sh: &Shared, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path().to_owned();
    if matches!(path.as_str(), "/healthz" | "/livez" | "/readyz") {
        return full(200, "text/plain", b"ok".to_vec());
    }
    let authorized = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|t| t.trim() == sh.token);
    if !authorized {
        return error_response(&ApiError::unauthorized());
    }
    if let Some(rest) = path.strip_prefix("/__sim/") {
        let rest = rest.to_owned();
        return admin(sh, req, &rest).await;
    }
    let latency = sh.faults.latency();
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    if let Some(doc) = discovery_document(sh, &segs) {
        return match doc {
            Some(v) => json_response(200, &v),
            None => error_response(&ApiError::page_not_found()),
        };
    }
    let Some(target) = parse_target(&segs) else {
        return error_response(&ApiError::page_not_found());
    };
    let query = parse_query(req.uri().query());
    let Some(verb) = verb_of(req.method(), &target, &query) else {
        return error_response(&ApiError::method_not_allowed());
    };
    let resource = match &target.subresource {
        Some(sub) => format!("{}/{sub}", target.r.plural),
        None => target.r.plural.to_owned(),
    };
    let mut record = RequestRecord {
        verb: verb.to_owned(),
        resource: resource.clone(),
        namespace: target.namespace.clone().unwrap_or_default(),
        name: target.name.clone().unwrap_or_default(),
        code: 0,
        metadata_only: false,
        answer_bytes: None,
        user_agent: req
            .headers()
            .get("user-agent")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned(),
    };
    let latency = sh.faults.latency_of(verb, &resource);
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let resp = match sh.faults.take_failure(verb, &resource) {
        Some(e) => error_response(&e),
        None => match resource_request(sh, req, &target, verb, &query).await {
            Ok(resp) => resp,
            Err(e) => error_response(&e),
        },
    };
    record.code = resp.status().as_u16();
    record.metadata_only = resp.extensions().get::<partial::MetadataOnly>().is_some();
    record.answer_bytes = hyper::body::Body::size_hint(resp.body()).exact();
    sh.faults.record(record);
    resp
}

/// Discovery and OpenAPI paths: Some(Some(doc)) served, Some(None) a known prefix with no
/// such document, None not a discovery path.
fn discovery_document(sh: &Shared, segs: &[&str]) -> Option<Option<Value>> {
    Some(match segs {
        ["version"] => Some(discovery::version()),
        ["api"] => Some(discovery::core_versions(&sh.address)),
        ["apis"] => Some(discovery::groups()),
        ["api", v] => discovery::resources("", v),
        ["apis", g] => discovery::group(g),
        ["apis", g, v] => discovery::resources(g, v),
        ["openapi", "v3"] => Some(discovery::openapi_index()),
        ["openapi", "v3", rest @ ..] => discovery::openapi_group(&rest.join("/")),
        ["openapi", ..] => None,
        _ => return None,
    })
}

fn list_options(target: &Target, query: &HashMap<String, String>) -> Result<ListOptions, ApiError> {
    let labels = LabelSelector::parse(query.get("labelSelector").map_or("", String::as_str))
        .map_err(ApiError::bad_request)?;
    let fields = FieldSelector::parse(
        query.get("fieldSelector").map_or("", String::as_str),
        target.r.plural,
    )
    .map_err(ApiError::bad_request)?;
    let limit = match query.get("limit").filter(|l| !l.is_empty()) {
        Some(l) => match l.parse::<usize>() {
            Ok(0) => None,
            Ok(n) => Some(n),
            Err(_) => return Err(ApiError::bad_request(format!("invalid limit: {l:?}"))),
        },
        None => None,
    };
    Ok(ListOptions {
        labels,
        fields,
        limit,
        continue_token: query.get("continue").filter(|c| !c.is_empty()).cloned(),
    })
}

async fn read_body(req: Request<Incoming>) -> Result<(String, Bytes), ApiError> {
    let content_type = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json")
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_owned();
    let body = req
        .into_body()
        .collect()
        .await
        .map_err(|e| ApiError::bad_request(format!("reading the request body: {e}")))?
        .to_bytes();
    Ok((content_type, body))
}

fn parse_object(r: &ResourceType, content_type: &str, body: &[u8]) -> Result<Value, ApiError> {
    // client-go's typed clients send protobuf: read for the types kubectl sends (src/protobuf/).
    if content_type == protobuf::MEDIA_TYPE {
        return protobuf::decode(body).map_err(|e| protobuf::api_error(r.kind, &e));
    }
    if content_type.contains("protobuf") || content_type.contains("cbor") {
        return Err(ApiError::unsupported_media_type(content_type));
    }
    let v: Value = if content_type.contains("yaml") {
        serde_yaml_ng::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?
    } else {
        serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("error decoding JSON: {e}")))?
    };
    if !v.is_object() {
        return Err(ApiError::bad_request("the body must be an object"));
    }
    Ok(v)
}

async fn resource_request(
    sh: &Shared,
    req: Request<Incoming>,
    target: &Target,
    verb: &str,
    query: &HashMap<String, String>,
) -> Result<Response<Body>, ApiError> {
    let r = target.r;
    let accept = req
        .headers()
        .get(hyper::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !r.verbs().contains(&verb) {
        return Err(ApiError::method_not_allowed());
    }
    protobuf::check_accept(accept)?;
    let as_table = table::wanted(accept);
    let metadata_only = partial::wanted(accept);
    let include = query
        .get("includeObject")
        .map_or("Metadata", String::as_str)
        .to_owned();
    let status_only = match target.subresource.as_deref() {
        None => false,
        Some("status") if r.status && matches!(verb, "get" | "update" | "patch") => true,
        Some(_) => return Err(ApiError::page_not_found()),
    };
    // Cluster-scoped resources have no namespace; namespaced ones use "" for cluster-wide.
    let ns = target.namespace.clone().unwrap_or_default();
    let name = target.name.clone().unwrap_or_default();
    let dry_run = query.get("dryRun").is_some_and(|d| d == "All");
    let store = &sh.store;
    if matches!(verb, "update" | "patch")
        && let Some(p) = sh.faults.take_interference(r.plural, &ns, &name)
    {
        let bytes = serde_json::to_vec(&p).unwrap_or_default();
        let _ = store.patch(r, &ns, &name, Patch::Merge(&bytes), false, false);
    }
    match verb {
        "get" => {
            let obj = store.get(r, &ns, &name)?;
            if as_table {
                let rv = obj["metadata"]["resourceVersion"].clone();
                let t = table::table(r, &[&*obj], json!({"resourceVersion": rv}), &include);
                return Ok(json_response(200, &t));
            }
            Ok(object_response(200, &*obj, &obj, metadata_only))
        }
        "list" => {
            let opts = list_options(target, query)?;
            let ns = target.namespace.as_deref().filter(|_| r.namespaced);
            let page = store.list(r, ns, &opts)?;
            if as_table {
                let items: Vec<&Value> = page.items.iter().map(|o| &**o).collect();
                let t = table::table(r, &items, store::list_metadata(&page), &include);
                return Ok(json_response(200, &t));
            }
            Ok(json_response(200, &store::list_body(r, &page)))
        }
        "watch" => watch(sh, target, query, as_table.then_some(include)),
        "create" => {
            let (ct, body) = read_body(req).await?;
            let obj = parse_object(r, &ct, &body)?;
            if access_review::is_review(r) {
                return Ok(json_response(201, &access_review::answer(r, obj)?));
            }
            if let Some(hooks) = admission::registered(store, r) {
                let opts = write_options(target, query, dry_run);
                let out = admission::create(&hooks, store, r, &ns, obj, &opts).await;
                return Ok(admitted(out, metadata_only));
            }
            let created = store.create_stored(r, &ns, obj, dry_run)?;
            let whole = wire::external(r, &created);
            Ok(object_response(201, &whole, &created, metadata_only))
        }
        "update" => {
            let (ct, body) = read_body(req).await?;
            let obj = parse_object(r, &ct, &body)?;
            if let Some(hooks) = admission::registered(store, r) {
                let opts = write_options(target, query, dry_run);
                let change = admission::Change::Put(obj);
                let out = admission::update(&hooks, store, r, (&ns, &name), change, &opts);
                return Ok(admitted(out.await, metadata_only));
            }
            let w = store.update(r, &ns, &name, obj, status_only, dry_run)?;
            let code = if w.created { 201 } else { 200 };
            Ok(object_response(code, &*w.object, &w.object, metadata_only))
        }
        "patch" => {
            let (ct, body) = read_body(req).await?;
            let patch = match ct.as_str() {
                "application/json-patch+json" => Patch::Json(&body),
                "application/merge-patch+json" => Patch::Merge(&body),
                "application/strategic-merge-patch+json" => Patch::Strategic(&body),
                "application/apply-patch+yaml" | "application/apply-patch+cbor" => {
                    if query.get("fieldManager").is_none_or(String::is_empty) {
                        return Err(ApiError::bad_request(
                            "PATCH request of type application/apply-patch+yaml requires a fieldManager query parameter",
                        ));
                    }
                    Patch::Apply {
                        body: &body,
                        force: query.get("force").is_some_and(|f| f == "true"),
                    }
                }
                other => return Err(ApiError::unsupported_media_type(other)),
            };
            if let Some(hooks) = admission::registered(store, r) {
                let opts = write_options(target, query, dry_run);
                let change = admission::Change::Patch(patch);
                let out = admission::update(&hooks, store, r, (&ns, &name), change, &opts);
                return Ok(admitted(out.await, metadata_only));
            }
            let w = store.patch(r, &ns, &name, patch, status_only, dry_run)?;
            let code = if w.created { 201 } else { 200 };
            Ok(object_response(code, &*w.object, &w.object, metadata_only))
        }
        "delete" => {
            let (_, body) = read_body(req).await?;
            let opts: Value = if body.is_empty() {
                Value::Null
            } else {
                serde_json::from_slice(&body)
                    .map_err(|e| ApiError::bad_request(format!("invalid DeleteOptions: {e}")))?
            };
            let dry_run = dry_run
                || opts["dryRun"]
                    .as_array()
                    .is_some_and(|d| d.iter().any(|x| x == "All"));
            let out = store.delete(r, &ns, &name, &opts["preconditions"], dry_run)?;
            if r.kind == "Namespace" && !dry_run {
                let store = Arc::clone(&sh.store);
                let delay = sh.namespace_finalize_delay;
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    store.finalize_namespace(&name);
                });
            }
            Ok(json_response(200, &out))
        }
        "deletecollection" => {
            let opts = list_options(target, query)?;
            let ns = target.namespace.as_deref().filter(|_| r.namespaced);
            let items = store.delete_collection(r, ns, &opts)?;
            let page = store::ListPage {
                items,
                resource_version: store.resource_version(),
                continue_token: None,
                remaining: None,
            };
            Ok(json_response(200, &store::list_body(r, &page)))
        }
        _ => Err(ApiError::method_not_allowed()),
    }
}

/// The query parameters of a write that admission webhooks see.
fn write_options(
    target: &Target,
    query: &HashMap<String, String>,
    dry_run: bool,
) -> admission::WriteOptions {
    admission::WriteOptions {
        dry_run,
        field_manager: query.get("fieldManager").cloned(),
        field_validation: query.get("fieldValidation").cloned(),
        subresource: target.subresource.clone(),
    }
}

/// The answer to a write that went through admission webhooks: their warnings become
/// `Warning: 299 - "text"` headers, on success and on failure alike (kubectl prints them).
fn admitted(out: admission::Admitted, metadata_only: Option<&str>) -> Response<Body> {
    let mut resp = match &out.result {
        Ok((code, object)) => object_response(*code, &**object, object, metadata_only),
        Err(e) => error_response(e),
    };
    for text in &out.warnings {
        // Go's net.NewWarningHeader: no control characters; `"` and `\` escaped.
        if text.chars().any(char::is_control) {
            continue;
        }
        let quoted = text.replace('\\', "\\\\").replace('"', "\\\"");
        if let Ok(v) = HeaderValue::from_bytes(format!("299 - \"{quoted}\"").as_bytes()) {
            resp.headers_mut().append("warning", v);
        }
    }
    resp
}

fn event_line(kind: &str, object: &Value) -> Bytes {
    let mut line = Vec::with_capacity(256);
    line.extend_from_slice(b"{\"type\":\"");
    line.extend_from_slice(kind.as_bytes());
    line.extend_from_slice(b"\",\"object\":");
    line.extend_from_slice(&serde_json::to_vec(object).unwrap_or_default());
    line.extend_from_slice(b"}\n");
    Bytes::from(line)
}

fn bookmark(r: &ResourceType, rv: u64, initial_events_end: bool) -> Bytes {
    let mut metadata = json!({"resourceVersion": rv.to_string(), "creationTimestamp": null});
    if initial_events_end {
        metadata["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    event_line(
        "BOOKMARK",
        &json!({"kind": r.kind, "apiVersion": r.api_version(), "metadata": metadata}),
    )
}

/// A watch event's object as the client asked: the object (serialized from the stored one,
/// not a copy of it), or a one-row Table.
fn shown<'a>(r: &ResourceType, as_table: Option<&str>, o: &'a Value) -> Cow<'a, Value> {
    match as_table {
        Some(include) => {
            let rv = o["metadata"]["resourceVersion"].clone();
            Cow::Owned(table::table(
                r,
                &[o],
                json!({"resourceVersion": rv}),
                include,
            ))
        }
        None => Cow::Borrowed(o),
    }
}

/// A watch: a chunked stream of JSON lines, `{"type": ..., "object": ...}`.
fn watch(
    sh: &Shared,
    target: &Target,
    query: &HashMap<String, String>,
    as_table: Option<String>,
) -> Result<Response<Body>, ApiError> {
    let r = target.r;
    let opts = list_options(target, query)?;
    let ns = target.namespace.clone().filter(|_| r.namespaced);
    let bookmarks = query
        .get("allowWatchBookmarks")
        .is_some_and(|b| b == "true");
    let streaming = query.get("sendInitialEvents").is_some_and(|b| b == "true");
    let start_rv = match query.get("resourceVersion").map(String::as_str) {
        _ if streaming => None,
        None | Some("" | "0") => None,
        Some(s) => Some(
            s.parse::<u64>()
                .map_err(|_| ApiError::bad_request(format!("invalid resource version: {s:?}")))?,
        ),
    };
    let timeout = query
        .get("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .map_or(Duration::from_secs(1800), Duration::from_secs);
    let (mut head, mut epoch) = sh.store.subscribe();
    let (tx, rx) = mpsc::channel::<Bytes>(256);
    let store = Arc::clone(&sh.store);
    let interval = sh.bookmark_interval;
    match store.watch_start(r, ns.as_deref(), start_rv, &opts) {
        Err(e) => {
            let _ = tx.try_send(event_line("ERROR", &e.body));
        }
        Ok(WatchStart {
            initial,
            backlog,
            cursor,
        }) => {
            tokio::spawn(async move {
                let mut cursor = cursor;
                let as_table = as_table.as_deref();
                for o in initial {
                    if tx
                        .send(event_line("ADDED", &shown(r, as_table, &o)))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
                if streaming && bookmarks && tx.send(bookmark(r, cursor, true)).await.is_err() {
                    return;
                }
                let send = |changes: Vec<Arc<store::Change>>| {
                    changes
                        .iter()
                        .filter_map(|c| {
                            store::visible(c, r, ns.as_deref(), &opts).map(|t| {
                                event_line(
                                    t.as_str(),
                                    &shown(r, as_table, &store::to_external(r, &c.object)),
                                )
                            })
                        })
                        .collect::<Vec<_>>()
                };
                for line in send(backlog) {
                    if tx.send(line).await.is_err() {
                        return;
                    }
                }
                let deadline = tokio::time::sleep(timeout);
                tokio::pin!(deadline);
                let mut tick =
                    tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
                loop {
                    tokio::select! {
                        _ = &mut deadline => return,
                        _ = epoch.changed() => return,
                        _ = tx.closed() => return,
                        _ = tick.tick(), if bookmarks => {
                            if tx.send(bookmark(r, cursor, false)).await.is_err() {
                                return;
                            }
                        }
                        changed = head.changed() => {
                            if changed.is_err() {
                                return;
                            }
                            let Some((changes, rv)) = store.changes_after(cursor) else {
                                return;
                            };
                            cursor = rv;
                            for line in send(changes) {
                                if tx.send(line).await.is_err() {
                                    return;
                                }
                            }
                        }
                    }
                }
            });
        }
    }
    let stream = ReceiverStream::new(rx).map(|b| Ok::<_, Infallible>(Frame::data(b)));
    let mut resp = Response::new(BodyExt::boxed(StreamBody::new(stream)));
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(resp)
}

/// `/__sim/...`: fault injection and observation over HTTP (for scripts and the benchmark).
async fn admin(sh: &Shared, req: Request<Incoming>, path: &str) -> Response<Body> {
    let method = req.method().clone();
    let body = match read_body(req).await {
        Ok((_, b)) => b,
        Err(e) => return error_response(&e),
    };
    fn parse<T: serde::de::DeserializeOwned>(body: &[u8], what: &str) -> Result<T, ApiError> {
        serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("{what}: {e}")))
    }
    let ok = || json_response(200, &json!({"ok": true}));
    match (method.as_str(), path) {
        ("GET", "counters") => {
            let counters: serde_json::Map<String, Value> = sh
                .faults
                .counters()
                .into_iter()
                .map(|((v, r), n)| (format!("{v} {r}"), json!(n)))
                .collect();
            json_response(
                200,
                &json!({"writes": sh.faults.writes(), "requests": counters,
                        "connections": sh.faults.connections(),
                        "resourceVersion": sh.store.resource_version()}),
            )
        }
        ("GET", "requests") => json_response(200, &json!(sh.faults.requests())),
        ("POST", "reset-counters") => {
            sh.faults.reset_counters();
            ok()
        }
        ("POST", "fail") => match parse::<FailRule>(&body, "a fail rule") {
            Ok(rule) => {
                sh.faults.fail_next(rule);
                ok()
            }
            Err(e) => error_response(&e),
        },
        ("POST", "interfere") => match parse::<Interference>(&body, "an interference") {
            Ok(i) => {
                sh.faults.interfere_next_write(i);
                ok()
            }
            Err(e) => error_response(&e),
        },
        ("POST", "latency") => match parse::<LatencyRule>(&body, "latency") {
            // Without verb and resource: every request (replacing the previous global
            // latency); with either: a rule added to the others.
            Ok(rule) if rule.verb.is_none() && rule.resource.is_none() => {
                sh.faults.set_latency(Duration::from_millis(rule.millis));
                ok()
            }
            Ok(rule) => {
                sh.faults.add_latency(rule);
                ok()
            }
            Err(e) => error_response(&e),
        },
        ("POST", "drop-watches") => {
            sh.store.drop_watches();
            ok()
        }
        ("POST", "expire") => {
            sh.store.expire();
            ok()
        }
        ("POST", "clear") => {
            sh.faults.clear();
            ok()
        }
        _ => error_response(&ApiError::page_not_found()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_route_like_the_real_server() {
        let t = |p: &str| {
            let segs: Vec<&str> = p.split('/').filter(|s| !s.is_empty()).collect();
            parse_target(&segs).map(|t| {
                (
                    t.r.plural,
                    t.namespace.unwrap_or_default(),
                    t.name.unwrap_or_default(),
                    t.subresource.unwrap_or_default(),
                )
            })
        };
        let own = |a: &'static str, b: &str, c: &str, d: &str| {
            Some((a, b.to_owned(), c.to_owned(), d.to_owned()))
        };
        assert_eq!(
            t("/apis/apps/v1/deployments"),
            own("deployments", "", "", "")
        );
        assert_eq!(
            t("/apis/apps/v1/namespaces/a/deployments/d/status"),
            own("deployments", "a", "d", "status")
        );
        assert_eq!(t("/api/v1/namespaces"), own("namespaces", "", "", ""));
        assert_eq!(t("/api/v1/namespaces/a"), own("namespaces", "", "a", ""));
        assert_eq!(
            t("/api/v1/namespaces/a/status"),
            own("namespaces", "", "a", "status")
        );
        assert_eq!(t("/api/v1/namespaces/a/pods"), own("pods", "a", "", ""));
        assert_eq!(t("/api/v1/pods/x"), None);
        assert_eq!(decode("app%3Dweb%2Ctier+in+%28a%29"), "app=web,tier in (a)");
    }
}
