//! Saying that leadership changed: a log line, an Event on the Lease (reason `LeaderElection`,
//! as client-go's leader election writes it), the `image_cloner_leader` gauge through a
//! [`LeadershipObserver`], and — on becoming leader — the call to reconcile every cached
//! workload, which a standby left alone.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::ObjectReference;
use kube::Resource as _;
use kube::runtime::events::{Event, EventType, Recorder};
use tokio::sync::broadcast;

/// The Events' reason, as client-go's leader election gives it.
pub const REASON: &str = "LeaderElection";
/// Leadership Events are news, not work: one that cannot be sent soon is dropped.
const EVENT_TIMEOUT: Duration = Duration::from_secs(10);

/// Told whether this replica leads (metrics).
pub trait LeadershipObserver: Send + Sync {
    fn leading(&self, _leading: bool) {}
}

/// An observer that ignores everything.
pub struct Unobserved;
impl LeadershipObserver for Unobserved {}

pub struct Announcer {
    identity: String,
    recorder: Recorder,
    /// The Lease as last seen (its uid makes the Events' reference exact).
    lease: Mutex<Option<ObjectReference>>,
    observer: Arc<dyn LeadershipObserver>,
    everything: broadcast::Sender<()>,
}

impl Announcer {
    pub fn new(
        identity: String,
        recorder: Recorder,
        observer: Arc<dyn LeadershipObserver>,
        everything: broadcast::Sender<()>,
    ) -> Self {
        Announcer {
            identity,
            recorder,
            lease: Mutex::new(None),
            observer,
            everything,
        }
    }

    pub fn seen(&self, lease: &Lease) {
        *self.lease.lock().unwrap_or_else(PoisonError::into_inner) = Some(lease.object_ref(&()));
    }

    pub fn gained(&self) {
        self.observer.leading(true);
        tracing::info!(identity = %self.identity, "became leader: this replica copies and writes; reconciling every cached workload");
        self.publish(
            EventType::Normal,
            format!("{} became leader", self.identity),
        );
        // Nobody listening: no controllers yet, and they reconcile everything when they start.
        let _ = self.everything.send(());
    }

    pub fn lost(&self, why: &str) {
        self.observer.leading(false);
        tracing::warn!(identity = %self.identity, why, "stopped leading: no new copies or writes");
        self.publish(
            EventType::Warning,
            format!("{} stopped leading: {why}", self.identity),
        );
    }

    /// A graceful step-down (shutting down): said, and sent before the Lease is released.
    pub async fn stepped_down(&self) {
        self.observer.leading(false);
        tracing::info!(identity = %self.identity, "stopped leading: shutting down; releasing the Lease");
        let note = format!("{} stopped leading: shutting down", self.identity);
        if let Some(send) = self.event(EventType::Normal, note) {
            send.await;
        }
    }

    fn publish(&self, type_: EventType, note: String) {
        if let Some(send) = self.event(type_, note) {
            tokio::spawn(send);
        }
    }

    fn event(
        &self,
        type_: EventType,
        note: String,
    ) -> Option<impl Future<Output = ()> + Send + 'static> {
        let reference = self
            .lease
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()?;
        let recorder = self.recorder.clone();
        let event = Event {
            type_,
            reason: REASON.to_owned(),
            note: Some(note),
            action: "Lead".to_owned(),
            secondary: None,
        };
        Some(async move {
            match tokio::time::timeout(EVENT_TIMEOUT, recorder.publish(&event, &reference)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "could not publish the leadership Event"),
                Err(_) => tracing::warn!("could not publish the leadership Event in time"),
            }
        })
    }
}
