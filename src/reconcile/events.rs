//! Events as kube-runtime's `Recorder` publishes them — events.k8s.io/v1, and an Event repeated
//! within [`SERIES_WINDOW`] becomes a series: its count is PATCHed instead of a new object
//! created — at a cost that does not grow with the number of Events published.
//!
//! The `Recorder` sweeps its whole cache on every publish and keeps every Event it sent; a cold
//! run publishes 2,000 `Cloned` Events, so it visited 2 million cache entries (10 % of
//! image-cloner's instructions in that run, measured with callgrind), and it parsed each Event
//! the API server sent back. Here the cache holds only what a series needs (the Event's name
//! and count), is swept at most once per [`SWEEP_EVERY`], and no response body is parsed.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::{Event as K8sEvent, EventSeries};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::Resource as _;
use kube::api::{Patch, PatchParams, PostParams};
use kube::core::Request;
use kube::runtime::events::{Event, EventType, Reporter};
use tokio::time::Instant;

use crate::reconcile::api::{json_body, send_unread};
use crate::reconcile::writer::Writer;

/// An Event published again within this long is counted in a series (the `Recorder`'s window).
pub const SERIES_WINDOW: Duration = Duration::from_secs(6 * 60);
/// How often entries older than [`SERIES_WINDOW`] are dropped from the cache.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// What makes two Events one series (the `Recorder`'s key; we never set `related`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct SeriesKey {
    type_: &'static str,
    reason: String,
    action: String,
    regarding: (
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
    ),
}

/// An Event sent: enough to extend its series.
struct Sent {
    namespace: String,
    name: String,
    count: i32,
    at: Instant,
}

struct Cache {
    sent: HashMap<SeriesKey, Sent>,
    swept: Instant,
}

/// Publishes Events on workloads.
pub struct EventPublisher {
    writer: Writer,
    reporter: Reporter,
    cache: Mutex<Cache>,
}

/// What to send for one publish.
enum Send {
    Create(Box<K8sEvent>),
    Series {
        namespace: String,
        name: String,
        count: i32,
    },
}

impl EventPublisher {
    pub fn new(writer: Writer, reporter: Reporter) -> Self {
        EventPublisher {
            writer,
            reporter,
            cache: Mutex::new(Cache {
                sent: HashMap::new(),
                swept: Instant::now(),
            }),
        }
    }

    /// The same publisher, sending through `writer`.
    pub fn writing_through(self, writer: Writer) -> Self {
        EventPublisher { writer, ..self }
    }

    /// Creates the Event, or extends its series when the same one was published within
    /// [`SERIES_WINDOW`].
    pub async fn publish(
        &self,
        ev: &Event,
        regarding: &ObjectReference,
    ) -> Result<(), kube::Error> {
        let key = series_key(ev, regarding);
        let now = Timestamp::now();
        let request = match self.next(key, || self.event(ev, regarding, now)) {
            Send::Create(event) => {
                let url = K8sEvent::url_path(&(), event.metadata.namespace.as_deref());
                Request::new(url).create(&PostParams::default(), json_body(&*event)?)
            }
            Send::Series {
                namespace,
                name,
                count,
            } => {
                let url = K8sEvent::url_path(&(), Some(&namespace));
                let series = EventSeries {
                    count,
                    last_observed_time: MicroTime(now),
                };
                let patch = serde_json::json!({ "series": series });
                Request::new(url).patch(&name, &PatchParams::default(), &Patch::Merge(patch))
            }
        };
        send_unread(&self.writer, request.map_err(kube::Error::BuildRequest)?).await
    }

    /// Records the publish in the cache and says what to send. The key is hashed once (a
    /// cold run's 2,000 Events are all new: a lookup, then an insert, hashed it twice).
    fn next(&self, key: SeriesKey, event: impl FnOnce() -> K8sEvent) -> Send {
        let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        if now.duration_since(cache.swept) >= SWEEP_EVERY {
            cache
                .sent
                .retain(|_, s| now.duration_since(s.at) < SERIES_WINDOW);
            cache.swept = now;
        }
        let entry = match cache.sent.entry(key) {
            Entry::Occupied(mut sent) if now.duration_since(sent.get().at) < SERIES_WINDOW => {
                let sent = sent.get_mut();
                sent.count += 1;
                sent.at = now;
                return Send::Series {
                    namespace: sent.namespace.clone(),
                    name: sent.name.clone(),
                    count: sent.count,
                };
            }
            entry => entry,
        };
        let event = event();
        entry.insert_entry(Sent {
            namespace: event.metadata.namespace.clone().unwrap_or_default(),
            name: event.metadata.name.clone().unwrap_or_default(),
            count: 1,
            at: now,
        });
        Send::Create(Box::new(event))
    }

    /// The new Event, as the `Recorder` builds it.
    fn event(&self, ev: &Event, regarding: &ObjectReference, now: Timestamp) -> K8sEvent {
        let controller = &self.reporter.controller;
        let object = regarding.name.as_deref().unwrap_or(controller);
        K8sEvent {
            action: Some(ev.action.clone()),
            reason: Some(ev.reason.clone()),
            event_time: Some(MicroTime(now)),
            regarding: Some(regarding.clone()),
            note: ev.note.clone(),
            metadata: ObjectMeta {
                namespace: Some(
                    regarding
                        .namespace
                        .clone()
                        .unwrap_or_else(|| "default".into()),
                ),
                name: Some(format!("{object}.{:x}", now.as_nanosecond())),
                ..ObjectMeta::default()
            },
            reporting_controller: Some(controller.clone()),
            reporting_instance: Some(
                self.reporter
                    .instance
                    .clone()
                    .unwrap_or_else(|| controller.clone()),
            ),
            type_: Some(type_label(&ev.type_).into()),
            related: ev.secondary.clone(),
            ..K8sEvent::default()
        }
    }
}

fn type_label(t: &EventType) -> &'static str {
    match t {
        EventType::Normal => "Normal",
        EventType::Warning => "Warning",
    }
}

fn series_key(ev: &Event, regarding: &ObjectReference) -> SeriesKey {
    SeriesKey {
        type_: type_label(&ev.type_),
        reason: ev.reason.clone(),
        action: ev.action.clone(),
        regarding: (
            regarding.kind.clone(),
            regarding.namespace.clone(),
            regarding.name.clone(),
            regarding.uid.clone(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn publisher() -> EventPublisher {
        let config = kube::Config::new("http://127.0.0.1:1".parse().expect("a URL"));
        let client = kube::Client::try_from(config).expect("a client needs no connection");
        EventPublisher::new(
            Writer::through(client),
            Reporter {
                controller: "image-cloner".into(),
                instance: Some("pod-1".into()),
            },
        )
    }

    fn event(reason: &str, note: &str) -> Event {
        Event {
            type_: EventType::Warning,
            reason: reason.into(),
            note: Some(note.into()),
            action: "Clone".into(),
            secondary: None,
        }
    }

    fn workload(name: &str) -> ObjectReference {
        ObjectReference {
            kind: Some("Deployment".into()),
            namespace: Some("shop".into()),
            name: Some(name.into()),
            uid: Some(format!("uid-{name}")),
            ..ObjectReference::default()
        }
    }

    fn send(p: &EventPublisher, ev: &Event, on: &ObjectReference) -> Send {
        p.next(series_key(ev, on), || p.event(ev, on, Timestamp::now()))
    }

    #[tokio::test]
    async fn a_repeated_event_extends_its_series_and_another_workload_gets_its_own() {
        let p = publisher();
        let web = workload("web");
        let Send::Create(first) = send(&p, &event("CopyFailed", "registry down"), &web) else {
            panic!("the first Event is created");
        };
        assert_eq!(first.metadata.namespace.as_deref(), Some("shop"));
        assert_eq!(first.reporting_instance.as_deref(), Some("pod-1"));
        let first_name = first.metadata.name.clone().expect("a name");
        assert!(first_name.starts_with("web."), "{first_name}");
        // The same reason again, another note: the Recorder's key has no note either.
        match send(&p, &event("CopyFailed", "still down"), &web) {
            Send::Series { name, count, .. } => {
                assert_eq!(name, first_name);
                assert_eq!(count, 2);
            }
            Send::Create(_) => panic!("a repeat within the window is a series"),
        }
        assert!(matches!(
            send(&p, &event("CopyFailed", "x"), &workload("api")),
            Send::Create(_)
        ));
        assert!(matches!(
            send(&p, &event("Cloned", "x"), &web),
            Send::Create(_)
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn entries_past_the_window_are_swept_and_start_a_new_event() {
        let p = publisher();
        let web = workload("web");
        let ev = event("CopyFailed", "down");
        send(&p, &ev, &web);
        send(&p, &ev, &workload("api"));
        tokio::time::advance(SERIES_WINDOW - SWEEP_EVERY).await;
        assert!(matches!(send(&p, &ev, &web), Send::Series { .. }));
        tokio::time::advance(SERIES_WINDOW).await;
        assert!(matches!(send(&p, &ev, &web), Send::Create(_)));
        let cache = p.cache.lock().expect("not poisoned");
        assert_eq!(
            cache.sent.len(),
            1,
            "api's entry was swept, web's new one kept"
        );
    }
}
