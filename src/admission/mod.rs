//! The admission webhooks: a second entry into the daemon's plan, at create and update time.
//!
//! - `/mutate` ([`mutate`]): images whose copy the mirror has verified are rewritten to the
//!   pinned backup reference, with the original-images annotation, exactly as the daemon's
//!   patch would; the copies of the others are queued, and the object is admitted unchanged.
//! - `/validate` ([`validate`]): images not in the backup registry get a warning (`warn`) or
//!   refuse the object (`deny`), naming each image and its backup reference; copies queued.
//!
//! Both plan with [`review::assess`]: the daemon's own [`plan::decide`](crate::reconcile::plan)
//! and opt-outs, the namespace cache, for Pods their owners ([`owners`]), and the mirror's
//! verified copies plus one bounded registry check ([`copies`]). Neither ever waits on skopeo
//! nor blocks a deploy because image-cloner or a registry is down: the manifests register
//! them with `failurePolicy: Ignore` and a short `timeoutSeconds`, and every internal error or
//! an answer that takes longer than [`Limits::answer`] is answered "allowed, unchanged".
//!
//! Served over HTTPS only ([`server`], [`tls`]), from certificate files re-read when they
//! change or from a CA generated at start whose bundle the daemon writes into its own webhook
//! configurations ([`ca_bundle`]). A webhook switched off answers 404 on its path.

mod answer;
pub mod ca_bundle;
mod copies;
pub mod error;
pub mod mutate;
pub mod owners;
pub mod review;
pub mod server;
pub mod tls;
pub mod validate;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use http::StatusCode;
use kube::core::DynamicObject;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview};
use kube::core::response::Status;

pub use self::error::AdmissionError;
use self::review::{Assessment, Skip};
use self::validate::Verdict;
use crate::reconcile::Context;
use crate::settings::webhooks::{Validating, WebhookTls, Webhooks};
use crate::workload::{KindVisitor, WorkloadKind};

/// How long each step of an answer may take.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// One round of registry checks for images the mirror has no record of.
    pub lookup: Duration,
    /// Each GET of a Pod's owner.
    pub owner: Duration,
    /// The pull gate's answer for the namespace (the pull secret put in place, or an anonymous
    /// pull of the copy asked), once a copy is to be patched in.
    pub pull: Duration,
    /// Waiting for the namespace cache to see a namespace created with the object.
    pub namespace_wait: Duration,
    /// The whole answer; past it, "allowed, unchanged".
    pub answer: Duration,
}

impl Limits {
    /// The limits the webhooks use: everything well within the API server's `timeoutSeconds`
    /// (5 s in the manifests).
    pub const DEFAULT: Limits = Limits {
        lookup: Duration::from_millis(800),
        owner: Duration::from_millis(800),
        pull: Duration::from_millis(1200),
        namespace_wait: Duration::from_millis(500),
        answer: Duration::from_millis(2500),
    };
}

/// Told about every review answered (metrics).
pub trait AdmissionObserver: Send + Sync {
    /// `webhook`: `mutate` or `validate`; `outcome`: `patched`, `unchanged`, `allowed`,
    /// `warned`, `denied`, `standby`, `error` or `timeout`.
    fn reviewed(&self, _webhook: &'static str, _outcome: &'static str, _took: Duration) {}
}

/// What both webhooks share.
pub struct Admission {
    pub ctx: Arc<Context>,
    /// Where queued copies run: the daemon's runtime, with every other copy (skopeo runs
    /// from there, never from a webhook thread).
    pub copies: tokio::runtime::Handle,
    pub observer: Arc<dyn AdmissionObserver>,
    pub mutating: bool,
    pub validating: Validating,
    pub limits: Limits,
}

/// Worker threads of the webhooks' own runtime. The daemon's runtime has one thread, busy with
/// the controllers' lists and reconciles (a cold start decodes thousands of objects in a row);
/// answers served there would wait behind that work. Two threads also let a burst of reviews
/// use both cores of a small host: measured 100 concurrent reviews, p50 3.4 ms (one thread: 6.4).
const WEBHOOK_THREADS: usize = 2;

/// The webhooks being served; dropping it stops them.
pub struct Running {
    pub address: SocketAddr,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    /// Dropped after the tasks are aborted (fields drop after `drop`).
    _runtime: OwnRuntime,
}

impl Drop for Running {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// The webhooks' runtime, always dropped inside the daemon's: at shutdown, and when `start`
/// fails after building it (a taken address, a key that is not the certificate's). Tokio's
/// blocking shutdown panics there, and the panic hid the error that stopped the start; this
/// shuts down in the background instead.
struct OwnRuntime {
    runtime: Option<tokio::runtime::Runtime>,
    handle: tokio::runtime::Handle,
}

impl OwnRuntime {
    fn build() -> Result<OwnRuntime, AdmissionError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(WEBHOOK_THREADS)
            .thread_name("webhooks")
            .enable_all()
            .build()
            .map_err(|e| AdmissionError::Runtime(e.to_string()))?;
        Ok(OwnRuntime {
            handle: runtime.handle().clone(),
            runtime: Some(runtime),
        })
    }
}

impl Drop for OwnRuntime {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

/// Serves the webhooks the settings turn on, on `webhook_address`. `namespace`: the daemon's
/// own, where the manifests' Service is (for the generated certificate's names).
pub async fn start(
    settings: &Webhooks,
    ctx: Arc<Context>,
    observer: Arc<dyn AdmissionObserver>,
    namespace: &str,
) -> Result<Running, AdmissionError> {
    let client = ctx.api.client().clone();
    let guard = Arc::clone(ctx.api.guard());
    let runtime = OwnRuntime::build()?;
    let admission = Arc::new(Admission {
        copies: tokio::runtime::Handle::current(),
        ctx,
        observer,
        mutating: settings.mutating,
        validating: settings.validating,
        limits: Limits::DEFAULT,
    });
    let mut tasks = Vec::new();
    let (resolver, ca_pem) = match (&settings.tls, &settings.cert_file, &settings.key_file) {
        (WebhookTls::Files, Some(cert), Some(key)) => {
            let resolver = tls::Resolver::from_files(cert, key)?;
            tasks.push(tls::watch_files(Arc::clone(&resolver), cert, key));
            (resolver, None)
        }
        _ => {
            let hosts = ca_bundle::hosts(&client, settings.address, namespace).await;
            let generated = tls::self_signed(&hosts)?;
            tracing::info!(hosts = ?hosts, "generated a CA and a webhook certificate");
            (
                tls::Resolver::new(generated.identity),
                Some(generated.ca_pem),
            )
        }
    };
    let config = tls::server_config(Arc::clone(&resolver))?;
    let (address, server) = server::serve(settings.address, config, admission, &runtime.handle)?;
    tasks.push(server);
    if let Some(ca_pem) = ca_pem {
        tasks.push(ca_bundle::keep_written(client, ca_pem, guard));
    }
    Ok(Running {
        address,
        tasks,
        _runtime: runtime,
    })
}

/// Which kind a review is about, read before the review itself is decoded into that kind.
#[derive(serde::Deserialize)]
struct Peek {
    request: Option<PeekRequest>,
}

#[derive(serde::Deserialize)]
struct PeekRequest {
    kind: kube::core::GroupVersionKind,
}

/// One review of an object of a kind image-cloner reads, decoded straight into its type.
struct Review<'a> {
    adm: &'a Admission,
    body: &'a [u8],
    mutating: bool,
}

type Answered = (AdmissionResponse, &'static str);

impl<'a> KindVisitor for Review<'a> {
    type Output = BoxFuture<'a, Result<Answered, String>>;
    fn visit<K: WorkloadKind>(self) -> Self::Output {
        Box::pin(async move {
            let review: AdmissionReview<K> = serde_json::from_slice(self.body)
                .map_err(|e| format!("not an AdmissionReview of a {}: {e}", K::KIND))?;
            let req: AdmissionRequest<K> = review
                .try_into()
                .map_err(|_| "an AdmissionReview without a request".to_owned())?;
            Ok(self.adm.decide(&req, self.mutating).await)
        })
    }
}

impl Admission {
    /// The answer to one request body on `path`: an HTTP status and a body.
    pub async fn answer(&self, path: &str, body: &[u8]) -> (StatusCode, Vec<u8>) {
        let mutating = match path {
            "/mutate" if self.mutating => true,
            "/validate" if self.validating != Validating::Off => false,
            _ => return (StatusCode::NOT_FOUND, b"not found\n".to_vec()),
        };
        let started = std::time::Instant::now();
        let kind = match serde_json::from_slice::<Peek>(body) {
            Ok(Peek { request: Some(r) }) => owners::kind_named(&r.kind.group, &r.kind.kind),
            Ok(Peek { request: None }) => {
                return bad_request("an AdmissionReview without a request");
            }
            Err(e) => return bad_request(&format!("not an AdmissionReview: {e}")),
        };
        let answered = match kind {
            Some(kind) => {
                let review = Review {
                    adm: self,
                    body,
                    mutating,
                };
                crate::workload::dispatch(kind, review).await
            }
            None => not_a_workload(body),
        };
        let (response, outcome) = match answered {
            Ok(answered) => answered,
            Err(message) => return bad_request(&message),
        };
        let webhook = if mutating { "mutate" } else { "validate" };
        self.observer.reviewed(webhook, outcome, started.elapsed());
        match answer::encode(response) {
            Ok(bytes) => (StatusCode::OK, bytes),
            Err(e) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("encoding the answer: {e}\n").into_bytes(),
            ),
        }
    }

    /// The answer within [`Limits::answer`]; "allowed, unchanged" on an error or past it, and
    /// from a replica that does not lead (with leader election, only the Lease's holder copies
    /// and writes: a standby's answer is the one image-cloner gives when it is down).
    async fn decide<K: WorkloadKind>(&self, req: &AdmissionRequest<K>, mutating: bool) -> Answered {
        if !self.ctx.api.guard().allows() {
            tracing::debug!(
                uid = req.uid,
                "admitted unchanged: this replica does not hold the leader Lease"
            );
            return (AdmissionResponse::from(req), "standby");
        }
        let work = async {
            if mutating {
                self.mutate(req).await
            } else {
                self.validate(req).await
            }
        };
        match tokio::time::timeout(self.limits.answer, work).await {
            Ok(Ok(response)) => {
                let outcome = outcome(&response, mutating);
                (response, outcome)
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, reason = e.label(), uid = req.uid, "admitted unchanged: the webhook could not decide");
                (AdmissionResponse::from(req), "error")
            }
            Err(_) => {
                tracing::warn!(limit = ?self.limits.answer, uid = req.uid, "admitted unchanged: the webhook took too long");
                (AdmissionResponse::from(req), "timeout")
            }
        }
    }

    async fn assessed<K: WorkloadKind>(
        &self,
        req: &AdmissionRequest<K>,
    ) -> Result<Option<Assessment>, AdmissionError> {
        match review::assess(self, req).await? {
            Ok(a) => Ok(Some(a)),
            Err(skip) => {
                log_skip(req, skip);
                Ok(None)
            }
        }
    }

    async fn mutate<K: WorkloadKind>(
        &self,
        req: &AdmissionRequest<K>,
    ) -> Result<AdmissionResponse, AdmissionError> {
        let allowed = AdmissionResponse::from(req);
        let Some(a) = self.assessed(req).await? else {
            return Ok(allowed);
        };
        let Some(copy) = mutate::first_copy(&a.plans, &a.verified) else {
            return Ok(allowed);
        };
        if req.dry_run && self.ctx.pull.provisions() {
            // `sideEffects: None`: a dry run must write nothing, and the pull gate may write the
            // namespace's pull secret. Shown unchanged; the real request is mutated.
            tracing::info!(
                uid = req.uid,
                "dry run admitted unchanged: a real one may provision the pull secret"
            );
            return Ok(allowed);
        }
        let Some(pull_secret) = self.pull_access(&a.workload, copy).await else {
            return Ok(allowed);
        };
        let secret = pull_secret.as_deref();
        let Some(planned) = mutate::mutation(&a.workload, &a.plans, &a.verified, secret) else {
            return Ok(allowed);
        };
        for c in &planned.changes {
            tracing::info!(
                kind = %a.workload.kind, namespace = a.workload.namespace, name = a.workload.name,
                container = c.container, from = c.from, to = c.to,
                "admitted on its verified copy"
            );
        }
        answer::patched(allowed, &planned.patch)
    }

    /// How the namespace's pods will pull `copy`, from the daemon's pull gate (which puts the
    /// pull secret in place): `Some(secret to add, if any)` when they can, `None` when they
    /// could not, or it was not told within [`Limits::pull`] — then the object is admitted
    /// unchanged and the daemon decides, as it always does.
    async fn pull_access(
        &self,
        w: &crate::workload::Workload,
        copy: &str,
    ) -> Option<Option<String>> {
        let ctx = &self.ctx;
        ctx.pull.in_use(
            &w.namespace,
            &crate::reconcile::pull::recorded(&w.annotations),
        );
        let asked = tokio::time::timeout(self.limits.pull, ctx.pull.access(&w.namespace, copy));
        match asked.await {
            Ok(access) if access.pullable() => Some(access.secret().map(str::to_owned)),
            Ok(access) => {
                tracing::info!(kind = %w.kind, namespace = w.namespace, name = w.name, ?access, "admitted unchanged: its pods could not pull the copy now");
                None
            }
            Err(_) => {
                tracing::info!(kind = %w.kind, namespace = w.namespace, name = w.name, limit = ?self.limits.pull, "admitted unchanged: the pull check took too long");
                None
            }
        }
    }

    async fn validate<K: WorkloadKind>(
        &self,
        req: &AdmissionRequest<K>,
    ) -> Result<AdmissionResponse, AdmissionError> {
        let mut response = AdmissionResponse::from(req);
        let Some(a) = self.assessed(req).await? else {
            return Ok(response);
        };
        let policy = &self.ctx.policy;
        let offenders = validate::offenders(
            &a.plans,
            // Unsettled: the daemon's screen could not tell whether it may copy it; not judged.
            &|s| {
                let c = s.canonical();
                a.verified.contains_key(c.as_ref()) || a.unsettled.contains(c.as_ref())
            },
            &|s| {
                let target = policy.backup.target(s, policy.naming).ok()?;
                Some(target.tagged().to_string())
            },
            a.old_images.as_ref(),
        );
        let w = &a.workload;
        match validate::verdict(self.validating, &offenders) {
            Verdict::Allow => {}
            Verdict::Warn(warnings) => {
                tracing::info!(kind = %w.kind, namespace = w.namespace, name = w.name, images = offenders.len(), "admitted with warnings: images not in the backup registry");
                response.warnings = Some(warnings);
            }
            Verdict::Deny(message) => {
                tracing::info!(kind = %w.kind, namespace = w.namespace, name = w.name, images = offenders.len(), "denied: images not in the backup registry");
                response = response.deny(&message);
                response.result = Status::failure(&message, "Forbidden").with_code(403);
            }
        }
        Ok(response)
    }
}

/// The metric label of an answer.
fn outcome(response: &AdmissionResponse, mutating: bool) -> &'static str {
    if !response.allowed {
        "denied"
    } else if response.patch.is_some() {
        "patched"
    } else if response.warnings.is_some() {
        "warned"
    } else if mutating {
        "unchanged"
    } else {
        "allowed"
    }
}

/// A review of a kind image-cloner does not read (the configuration's rules should not send
/// one): allowed, unchanged.
fn not_a_workload(body: &[u8]) -> Result<Answered, String> {
    let review: AdmissionReview<DynamicObject> =
        serde_json::from_slice(body).map_err(|e| format!("not an AdmissionReview: {e}"))?;
    let req: AdmissionRequest<DynamicObject> = review
        .try_into()
        .map_err(|_| "an AdmissionReview without a request".to_owned())?;
    log_skip(&req, Skip::NotAWorkload);
    Ok((AdmissionResponse::from(&req), "unchanged"))
}

fn log_skip<K: kube::Resource>(req: &AdmissionRequest<K>, skip: Skip) {
    tracing::debug!(
        kind = req.kind.kind,
        namespace = req.namespace.as_deref().unwrap_or_default(),
        name = req.name,
        why = skip.label(),
        "admitted unchanged"
    );
}

fn bad_request(message: &str) -> (StatusCode, Vec<u8>) {
    (StatusCode::BAD_REQUEST, format!("{message}\n").into_bytes())
}
