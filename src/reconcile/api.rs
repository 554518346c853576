//! Every call a reconcile makes to the API server — reading a workload, patching it, publishing
//! an Event — goes through [`WorkloadApi`]: each is bounded by a timeout and reported to an
//! [`ApiObserver`] (counters and a latency histogram by verb and outcome), as linkerd2's policy
//! controller does for its status patches. Writes are also counted here, for `run --once`'s
//! summary and the tests that prove a converged cluster costs none.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use kube::Client;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::events::{Event, EventType, Recorder};

use crate::reconcile::error::ApiError;
use crate::reconcile::reasons;
use crate::workload::WorkloadKind;

/// The field manager our patches are recorded under.
pub const FIELD_MANAGER: &str = "image-cloner";
/// Kubernetes caps an Event's note at 1 kB.
const EVENT_NOTE_MAX: usize = 1000;
/// A patch or a read that has not been answered by then will not be: give up and retry later.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// Events are best effort: a slow Event never holds a reconcile for long.
pub const EVENT_TIMEOUT: Duration = Duration::from_secs(10);

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
        Err(ApiError::Kube(_)) => CallOutcome::Error,
    };
    observer.api_call(verb, outcome, started.elapsed());
    result
}

/// The API calls of reconciles.
pub struct WorkloadApi {
    client: Client,
    recorder: Recorder,
    observer: Arc<dyn ApiObserver>,
    writes: AtomicU64,
}

impl WorkloadApi {
    pub fn new(client: Client, recorder: Recorder, observer: Arc<dyn ApiObserver>) -> Self {
        WorkloadApi {
            client,
            recorder,
            observer,
            writes: AtomicU64::new(0),
        }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Workload writes made so far.
    pub fn writes(&self) -> u64 {
        self.writes.load(Ordering::Relaxed)
    }

    async fn observed<T>(
        &self,
        verb: Verb,
        timeout: Duration,
        call: impl Future<Output = Result<T, kube::Error>>,
    ) -> Result<T, ApiError> {
        observed(self.observer.as_ref(), verb, timeout, call).await
    }

    /// The one function that writes a workload: an RFC 6902 patch.
    pub async fn patch<K: WorkloadKind>(
        &self,
        namespace: &str,
        name: &str,
        patch: json_patch::Patch,
    ) -> Result<K, ApiError> {
        self.writes.fetch_add(1, Ordering::Relaxed);
        let api = Api::<K>::namespaced(self.client.clone(), namespace);
        let params = PatchParams {
            field_manager: Some(FIELD_MANAGER.to_owned()),
            ..PatchParams::default()
        };
        self.observed(
            Verb::Patch,
            WRITE_TIMEOUT,
            api.patch(name, &params, &Patch::Json::<()>(patch)),
        )
        .await
    }

    pub async fn get<K: WorkloadKind>(&self, namespace: &str, name: &str) -> Result<K, ApiError> {
        let api = Api::<K>::namespaced(self.client.clone(), namespace);
        self.observed(Verb::Get, WRITE_TIMEOUT, api.get(name)).await
    }

    /// Publishes an Event on `obj`; a failure is logged, never fatal.
    pub async fn event<K: WorkloadKind>(
        &self,
        obj: &K,
        type_: EventType,
        reason: &str,
        note: String,
    ) {
        let event = Event {
            type_,
            reason: reason.to_owned(),
            note: Some(truncate_note(note)),
            action: if reason == reasons::CLONED {
                reasons::ACTION_PATCH
            } else {
                reasons::ACTION_CLONE
            }
            .to_owned(),
            secondary: None,
        };
        let reference = obj.object_ref(&());
        if let Err(e) = self
            .observed(
                Verb::CreateEvent,
                EVENT_TIMEOUT,
                self.recorder.publish(&event, &reference),
            )
            .await
        {
            tracing::warn!(reason, error = %e, "could not publish an Event");
        }
    }
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
    use super::*;

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
        for v in [
            Verb::Get,
            Verb::Patch,
            Verb::CreateEvent,
            Verb::GetSecret,
            Verb::CreateSecret,
            Verb::PatchSecret,
            Verb::DeleteSecret,
        ] {
            assert!(
                v.label()
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c == '_')
            );
        }
        assert_eq!(CallOutcome::Timeout.label(), "timeout");
    }
}
