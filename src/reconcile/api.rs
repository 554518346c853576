//! Every call a reconcile makes to the API server — reading a workload, patching it, publishing
//! an Event — goes through [`WorkloadApi`]: each is bounded by a timeout and reported to an
//! [`ApiObserver`] (counters and a latency histogram by verb and outcome), as linkerd2's policy
//! controller does for its status patches. Writes are also counted here, for `run --once`'s
//! summary and the tests that prove a converged cluster costs none.
//!
//! At most [`MAX_CONCURRENT_CALLS`] calls are in flight at once. Without a bound, `run --once`
//! had up to 2,000 patches and Events in flight when the copies finished, and hyper's pool
//! opens a new connection (a TCP and a TLS handshake) for every request that finds no idle
//! one: 125 connections for 4,000 requests in the cold bench, where a few suffice. The writes
//! now go pipelined on at most `writer::MAX_CONNECTIONS` connections, a few outstanding on
//! each. Nothing but the response status is read from a patch or an Event, so each asks for
//! the written object's metadata alone ([`send_unread`]), and that is not parsed either — but
//! for a patch's `resourceVersion` in the daemon ([`WorkloadApi::reading_versions`]), which
//! knows its own write in the watch's echo of it by that.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use kube::Client;
use kube::api::Api;
use kube::runtime::events::{EventType, Reporter};
use tokio::sync::Semaphore;

use crate::reconcile::error::ApiError;
use crate::reconcile::event_body::Regarding;
use crate::reconcile::events::{EventPublisher, Said};
use crate::reconcile::guard::{Unguarded, WriteGuard};
use crate::reconcile::patch::{self, Op};
use crate::reconcile::reasons;
use crate::reconcile::writer::{self, Writer};
use crate::workload::WorkloadKind;

/// The field manager our patches are recorded under.
pub const FIELD_MANAGER: &str = "image-cloner";
/// Kubernetes caps an Event's note at 1 kB.
const EVENT_NOTE_MAX: usize = 1000;
/// A patch or a read that has not been answered by then will not be: give up and retry later.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// Events are best effort: a slow Event never holds a reconcile for long.
pub const EVENT_TIMEOUT: Duration = Duration::from_secs(10);
/// What a patch or an Event asks back: a `meta.k8s.io/v1` PartialObjectMetadata, the written
/// object's metadata alone, which kube-apiserver answers gets, creates, updates and patches with
/// since 1.15 (checked on 1.20: tests/kube-sim/tests/fidelity.rs); plain JSON after it for a
/// server without it. Errors are Status objects either way.
const METADATA_ONLY: &str =
    "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json";
/// API calls of reconciles in flight at once; more wait their turn (within their timeout). The
/// writer's connections carry them, a few outstanding on each, so that the server has no more
/// than [`writer::MAX_CONNECTIONS`] of them in hand at once.
pub const MAX_CONCURRENT_CALLS: usize = writer::MAX_CONNECTIONS * writer::PIPELINE_DEPTH;

/// The verbs counted, as metric label values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verb {
    Get,
    Patch,
    CreateEvent,
    /// The pull secrets' calls (`crate::pullsecret`): one name per namespace, never listed.
    GetSecret,
    CreateSecret,
    PatchSecret,
    DeleteSecret,
}

impl Verb {
    /// Every verb, in the order declared (`verb as usize` is its place here).
    pub const ALL: [Verb; 7] = [
        Verb::Get,
        Verb::Patch,
        Verb::CreateEvent,
        Verb::GetSecret,
        Verb::CreateSecret,
        Verb::PatchSecret,
        Verb::DeleteSecret,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Verb::Get => "get",
            Verb::Patch => "patch",
            Verb::CreateEvent => "create_event",
            Verb::GetSecret => "get_secret",
            Verb::CreateSecret => "create_secret",
            Verb::PatchSecret => "patch_secret",
            Verb::DeleteSecret => "delete_secret",
        }
    }
}

/// How a call ended, as a metric label value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CallOutcome {
    Success,
    /// The server answered with an error status (a rejected patch included).
    Error,
    /// No answer within the timeout.
    Timeout,
}

impl CallOutcome {
    /// Every outcome, in the order declared (`outcome as usize` is its place here).
    pub const ALL: [CallOutcome; 3] = [
        CallOutcome::Success,
        CallOutcome::Error,
        CallOutcome::Timeout,
    ];

    pub fn label(self) -> &'static str {
        match self {
            CallOutcome::Success => "success",
            CallOutcome::Error => "error",
            CallOutcome::Timeout => "timeout",
        }
    }
}

/// Told about every API call (metrics).
pub trait ApiObserver: Send + Sync {
    fn api_call(&self, _verb: Verb, _outcome: CallOutcome, _duration: Duration) {}
}

/// An observer that ignores everything.
pub struct Unobserved;
impl ApiObserver for Unobserved {}

/// Runs one API call bounded by `timeout` and reports it to `observer`.
pub async fn observed<T>(
    observer: &dyn ApiObserver,
    verb: Verb,
    timeout: Duration,
    call: impl Future<Output = Result<T, kube::Error>>,
) -> Result<T, ApiError> {
    let started = Instant::now();
    let result = match tokio::time::timeout(timeout, call).await {
        Ok(r) => r.map_err(ApiError::Kube),
        Err(_) => Err(ApiError::Timeout(timeout)),
    };
    let outcome = match &result {
        Ok(_) => CallOutcome::Success,
        Err(ApiError::Timeout(_)) => CallOutcome::Timeout,
        Err(ApiError::Kube(_) | ApiError::NotLeading) => CallOutcome::Error,
    };
    observer.api_call(verb, outcome, started.elapsed());
    result
}

/// The API calls of reconciles.
pub struct WorkloadApi {
    client: Client,
    /// Where patches and Events go.
    writer: Writer,
    events: EventPublisher,
    observer: Arc<dyn ApiObserver>,
    writes: AtomicU64,
    guard: Arc<dyn WriteGuard>,
    /// One permit per call in flight.
    turns: Semaphore,
    /// Whether a patch's answer is read for the written `resourceVersion`.
    read_versions: bool,
}

impl WorkloadApi {
    pub fn new(client: Client, reporter: Reporter, observer: Arc<dyn ApiObserver>) -> Self {
        let writer = Writer::through(client.clone());
        WorkloadApi {
            events: EventPublisher::new(writer.clone(), reporter),
            writer,
            client,
            observer,
            writes: AtomicU64::new(0),
            guard: Arc::new(Unguarded),
            turns: Semaphore::new(MAX_CONCURRENT_CALLS),
            read_versions: false,
        }
    }

    /// The same, each patch answered with the `resourceVersion` it wrote: for a caller that
    /// watches the workloads and sees its own patch come back (`run --once` does not).
    pub fn reading_versions(self) -> Self {
        WorkloadApi {
            read_versions: true,
            ..self
        }
    }

    /// Patches and Events sent through `writer`.
    pub fn writing_through(self, writer: Writer) -> Self {
        WorkloadApi {
            events: self.events.writing_through(writer.clone()),
            writer,
            ..self
        }
    }

    /// Writes only while `guard` allows, each answered within what is left of its permission.
    pub fn guarded(self, guard: Arc<dyn WriteGuard>) -> Self {
        WorkloadApi { guard, ..self }
    }

    /// What is asked before each write.
    pub fn guard(&self) -> &Arc<dyn WriteGuard> {
        &self.guard
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Workload writes made so far.
    pub fn writes(&self) -> u64 {
        self.writes.load(Ordering::Relaxed)
    }

    /// One call, in its turn: the wait for a turn counts in the call's timeout (a call that
    /// cannot even start in time has timed out). `call` is boxed by the callers so that a
    /// reconcile's future, most of whose life is spent waiting on copies, does not carry the
    /// kube client's request futures inline.
    async fn observed<T>(
        &self,
        verb: Verb,
        timeout: Duration,
        call: impl Future<Output = Result<T, kube::Error>>,
    ) -> Result<T, ApiError> {
        let in_turn = async {
            // Never closed; were it, the call would go ahead unbounded rather than fail.
            let _turn = self.turns.acquire().await.ok();
            call.await
        };
        observed(self.observer.as_ref(), verb, timeout, in_turn).await
    }

    /// The one function that writes a workload: an RFC 6902 patch (`operations`),
    /// sent only while the guard allows, and given up when no answer came before the permission
    /// ends (the wait for a turn included). The written object's `resourceVersion` when this
    /// API reads versions ([`Self::reading_versions`]) and the answer has one.
    pub async fn patch<K: WorkloadKind>(
        &self,
        namespace: &str,
        name: &str,
        operations: &[Op],
    ) -> Result<Option<String>, ApiError> {
        let Some(timeout) = self.guard.permission().budget(WRITE_TIMEOUT) else {
            return Err(ApiError::NotLeading);
        };
        self.writes.fetch_add(1, Ordering::Relaxed);
        let read_versions = self.read_versions;
        let call = Box::pin(async move {
            let request = patch_request::<K>(namespace, name, operations)?;
            if read_versions {
                send_reading_version(&self.writer, request).await
            } else {
                send_unread(&self.writer, request).await.map(|()| None)
            }
        });
        self.observed(Verb::Patch, timeout, call).await
    }

    pub async fn get<K: WorkloadKind>(&self, namespace: &str, name: &str) -> Result<K, ApiError> {
        let api = Api::<K>::namespaced(self.client.clone(), namespace);
        let call = Box::pin(async move { api.get(name).await });
        self.observed(Verb::Get, WRITE_TIMEOUT, call).await
    }

    /// Publishes an Event on `obj` while the guard allows; a failure is logged, never fatal.
    pub async fn event<K: WorkloadKind>(
        &self,
        obj: &K,
        type_: EventType,
        reason: &str,
        note: String,
    ) {
        let Some(timeout) = self.guard.permission().budget(EVENT_TIMEOUT) else {
            tracing::debug!(reason, "Event not published: this replica does not lead");
            return;
        };
        let note = truncate_note(note);
        let said = Said {
            type_,
            reason,
            note: Some(&note),
            action: if reason == reasons::CLONED {
                reasons::ACTION_PATCH
            } else {
                reasons::ACTION_CLONE
            },
        };
        // What `obj.object_ref(&())` would copy, borrowed.
        let (api_version, kind, meta) = (K::api_version(&()), K::kind(&()), obj.meta());
        let regarding = Regarding {
            api_version: Some(&api_version),
            kind: Some(&kind),
            name: meta.name.as_deref(),
            namespace: meta.namespace.as_deref(),
            resource_version: meta.resource_version.as_deref(),
            uid: meta.uid.as_deref(),
        };
        let publish = Box::pin(self.events.publish(&said, &regarding));
        if let Err(e) = self.observed(Verb::CreateEvent, timeout, publish).await {
            tracing::warn!(reason, error = %e, "could not publish an Event");
        }
    }
}

/// The PATCH request of `operations` to workload `namespace/name`, as `Api::patch` builds it
/// with our field manager (its URL and headers written here: kube's builder formats the URL
/// twice and runs the query through a form encoder, ~6,000 instructions a patch).
fn patch_request<K: WorkloadKind>(
    namespace: &str,
    name: &str,
    operations: &[Op],
) -> Result<http::Request<Vec<u8>>, kube::Error> {
    if name.is_empty() {
        return Err(kube::Error::BuildRequest(
            kube::core::request::Error::Validation("A non-empty name is required".into()),
        ));
    }
    let mut url = collection_url::<K>(namespace);
    url.push('/');
    url.push_str(name);
    url.push_str("?fieldManager=");
    url.push_str(FIELD_MANAGER);
    json_request(
        http::Method::PATCH,
        url,
        JSON_PATCH,
        patch::operations_json(operations),
    )
}

/// A request's body type: JSON.
pub(crate) const JSON: &str = "application/json";
/// An RFC 6902 patch's.
const JSON_PATCH: &str = "application/json-patch+json";

/// The URL of `K`'s objects in `namespace`, as kube's `Resource::url_path` writes it
/// (`/apis/apps/v1/namespaces/shop/deployments`, `/api/v1/...` for the core group).
pub(crate) fn collection_url<K: kube::Resource<DynamicType = ()>>(namespace: &str) -> String {
    let (group, version, plural) = (K::group(&()), K::api_version(&()), K::plural(&()));
    // Room for the group and version, and for a patch's `/name?fieldManager=...` after.
    let mut url = String::with_capacity(112 + namespace.len() + plural.len());
    url.push_str(if group.is_empty() { "/api/" } else { "/apis/" });
    url.push_str(&version);
    url.push_str("/namespaces/");
    url.push_str(namespace);
    url.push('/');
    url.push_str(&plural);
    url
}

/// `url` (a path and query) as a request's URI, or kube's error for one that is not.
pub(crate) fn request_uri(url: String) -> Result<http::Uri, kube::Error> {
    http::Uri::try_from(url)
        .map_err(|e| kube::Error::BuildRequest(kube::core::request::Error::BuildRequest(e.into())))
}

/// A request of `method` to `url` carrying `body` of `content_type`.
pub(crate) fn json_request(
    method: http::Method,
    url: String,
    content_type: &'static str,
    body: Vec<u8>,
) -> Result<http::Request<Vec<u8>>, kube::Error> {
    Ok(json_request_to(
        method,
        request_uri(url)?,
        content_type,
        body,
    ))
}

/// [`json_request`] to a URI already parsed.
pub(crate) fn json_request_to(
    method: http::Method,
    uri: http::Uri,
    content_type: &'static str,
    body: Vec<u8>,
) -> http::Request<Vec<u8>> {
    let mut request = http::Request::new(body);
    // Room for the headers the writer adds (accept, host, authorization, the configuration's):
    // grown one at a time from none, the map was reallocated twice a request.
    *request.headers_mut() = http::HeaderMap::with_capacity(8);
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    request.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(content_type),
    );
    request
}

/// Sends a write whose answer is not read (a workload's patch, an Event), asking for the written
/// object's metadata alone in it: the whole object is most of the answer's bytes — a patched
/// Deployment's spec and status (several kB in a real cluster) to encrypt, send, decrypt and
/// drop, 2,000 times in a cold run. Only the status counts (an error's Status is read by the
/// [`Writer`]).
pub(crate) async fn send_unread(
    writer: &Writer,
    request: http::Request<Vec<u8>>,
) -> Result<(), kube::Error> {
    writer.send(metadata_only(request)).await.map(drop)
}

/// `request`, asking for the written object's metadata alone in its answer.
fn metadata_only(mut request: http::Request<Vec<u8>>) -> http::Request<Vec<u8>> {
    request.headers_mut().insert(
        http::header::ACCEPT,
        http::HeaderValue::from_static(METADATA_ONLY),
    );
    request
}

/// Sends a write asking for the written object's metadata alone, and reads its
/// `resourceVersion` from the answer (the rest of the metadata is skipped unparsed).
async fn send_reading_version(
    writer: &Writer,
    request: http::Request<Vec<u8>>,
) -> Result<Option<String>, kube::Error> {
    let answer = writer.send(metadata_only(request)).await?;
    Ok(std::str::from_utf8(&answer).ok().and_then(written_version))
}

/// The `metadata.resourceVersion` of a write's answer; `None` when the answer has none (or is
/// not an object's JSON): then the echo of the write is taken as any change.
pub(crate) fn written_version(answer: &str) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Answer {
        metadata: Metadata,
    }
    #[derive(serde::Deserialize)]
    struct Metadata {
        #[serde(rename = "resourceVersion")]
        resource_version: Option<String>,
    }
    serde_json::from_str::<Answer>(answer)
        .ok()
        .and_then(|a| a.metadata.resource_version)
        .filter(|v| !v.is_empty())
}

/// Cuts a note to what the API server accepts, on a character boundary.
fn truncate_note(mut note: String) -> String {
    if note.len() > EVENT_NOTE_MAX {
        let mut cut = EVENT_NOTE_MAX - 3;
        while !note.is_char_boundary(cut) {
            cut -= 1;
        }
        note.truncate(cut);
        note.push_str("...");
    }
    note
}

#[cfg(test)]
mod tests {
    use kube::api::{Patch, PatchParams};
    use kube::core::Request;

    use super::*;
    use crate::workload::{Kind, KindVisitor, dispatch};

    /// For each kind: the patch request written here against the one kube's `Request::patch`
    /// builds for the same operations and field manager.
    struct SameAsKubes;
    impl KindVisitor for SameAsKubes {
        type Output = ();
        fn visit<K: WorkloadKind>(self) {
            let operations = vec![
                Op::Test {
                    path: "/spec/template/spec/containers/0/image".into(),
                    value: serde_json::json!("nginx:1.27"),
                },
                Op::Replace {
                    path: "/spec/template/spec/containers/0/image".into(),
                    value: serde_json::json!("backup.example.com/nginx:1.27"),
                },
            ];
            let ours = patch_request::<K>("shop", "web-1", &operations).expect("a request");
            let params = PatchParams {
                field_manager: Some(FIELD_MANAGER.to_owned()),
                ..PatchParams::default()
            };
            let patch = Patch::Json::<()>(
                serde_json::from_value(serde_json::to_value(&operations).expect("JSON"))
                    .expect("a JSON patch"),
            );
            let kubes = Request::new(K::url_path(&(), Some("shop")))
                .patch("web-1", &params, &patch)
                .expect("kube's request");
            assert_eq!(ours.method(), kubes.method(), "{}", K::KIND);
            // kube's form encoder starts the query with an empty pair (`?&fieldManager=`).
            let query = |u: &http::Uri| -> Vec<String> {
                let q = u.query().unwrap_or_default().split('&');
                q.filter(|p| !p.is_empty()).map(str::to_owned).collect()
            };
            assert_eq!(ours.uri().path(), kubes.uri().path(), "{}", K::KIND);
            assert_eq!(query(ours.uri()), query(kubes.uri()), "{}", K::KIND);
            assert_eq!(
                ours.headers().get(http::header::CONTENT_TYPE),
                kubes.headers().get(http::header::CONTENT_TYPE),
                "{}",
                K::KIND
            );
            let body = |b: &[u8]| serde_json::from_slice::<serde_json::Value>(b).expect("JSON");
            assert_eq!(body(ours.body()), body(kubes.body()), "{}", K::KIND);
            assert_eq!(
                collection_url::<K>("shop"),
                K::url_path(&(), Some("shop")),
                "{}",
                K::KIND
            );
        }
    }

    #[test]
    fn a_patch_request_is_the_one_kube_builds_for_every_kind() {
        for kind in Kind::ALL {
            dispatch(*kind, SameAsKubes);
        }
        assert_eq!(
            collection_url::<k8s_openapi::api::events::v1::Event>("shop"),
            "/apis/events.k8s.io/v1/namespaces/shop/events"
        );
        assert_eq!(
            collection_url::<k8s_openapi::api::core::v1::Secret>("shop"),
            "/api/v1/namespaces/shop/secrets"
        );
        assert!(patch_request::<crate::workload::partial::Deployment>("shop", "", &[]).is_err());
    }

    #[test]
    fn notes_are_cut_at_a_character_boundary() {
        assert_eq!(truncate_note("short".into()), "short");
        let long = "é".repeat(600);
        let cut = truncate_note(long);
        assert!(cut.len() <= EVENT_NOTE_MAX, "{}", cut.len());
        assert!(cut.ends_with("..."));
    }

    #[test]
    fn labels_follow_prometheus_conventions() {
        for v in Verb::ALL {
            assert!(
                v.label()
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c == '_')
            );
        }
        assert_eq!(CallOutcome::Timeout.label(), "timeout");
    }

    /// The lists hold every variant once, each at its declared place (the metrics index them).
    #[test]
    fn every_verb_and_outcome_is_listed_at_its_place() {
        for (i, v) in Verb::ALL.into_iter().enumerate() {
            assert_eq!(v as usize, i, "{v:?}");
            // A verb added without a place here fails to compile in this match.
            match v {
                Verb::Get
                | Verb::Patch
                | Verb::CreateEvent
                | Verb::GetSecret
                | Verb::CreateSecret
                | Verb::PatchSecret
                | Verb::DeleteSecret => {}
            }
        }
        for (i, o) in CallOutcome::ALL.into_iter().enumerate() {
            assert_eq!(o as usize, i, "{o:?}");
        }
    }
}
