//! Events as kube-runtime's `Recorder` publishes them — events.k8s.io/v1, and an Event repeated
//! within [`SERIES_WINDOW`] becomes a series: its count is PATCHed instead of a new object
//! created — at a cost that does not grow with the number of Events published.
//!
//! The `Recorder` sweeps its whole cache on every publish and keeps every Event it sent; a cold
//! run publishes 2,000 `Cloned` Events, so it visited 2 million cache entries (10 % of
//! image-cloner's instructions in that run, measured with callgrind), and it parsed each Event
//! the API server sent back. Here the cache holds only what a series needs (when the Event
//! was created, which names it, and its count), is swept at most once per [`SWEEP_EVERY`],
//! and no response body is parsed.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use k8s_openapi::api::events::v1::{Event as K8sEvent, EventSeries};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::Resource as _;
use kube::api::{Patch, PatchParams};
use kube::core::Request;
use kube::runtime::events::{EventType, Reporter};
use tokio::time::Instant;

use crate::reconcile::api::{JSON, collection_url, json_request_to, request_uri, send_unread};
use crate::reconcile::event_body::{self, NewEvent, Regarding, Reporting};
use crate::reconcile::writer::Writer;

/// An Event published again within this long is counted in a series (the `Recorder`'s window).
pub const SERIES_WINDOW: Duration = Duration::from_secs(6 * 60);
/// How often entries older than [`SERIES_WINDOW`] are dropped from the cache.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// What makes two Events one series — the `Recorder`'s key: the type, reason and action, and
/// the kind, namespace, name and uid of the object regarded (we never set `related`) — as one
/// byte string, each part its length (`u64::MAX` when absent) then its bytes. As seven fields it
/// was six strings to allocate for every Event and keep for the series window.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct SeriesKey(Box<[u8]>);

/// An Event sent: enough to extend its series. Its name is made again from the time it was
/// created at and the object's name in the key (its namespace is the object's too): kept, it
/// was a copy of every Event's name for the series window.
struct Sent {
    created: SystemTime,
    count: i32,
    at: Instant,
}

struct Cache {
    /// Hashed with foldhash: a key is seven strings, and std's SipHash of them (on insert and
    /// again on each growth of the table) was 8 M instructions of a cold run's 2,000 Events.
    sent: HashMap<SeriesKey, Sent, foldhash::fast::RandomState>,
    swept: Instant,
}

/// At most this many namespaces' Event URLs are kept; more, and they are made again.
const MAX_KEPT_URLS: usize = 1_024;

/// Publishes Events on workloads.
pub struct EventPublisher {
    writer: Writer,
    reporter: Reporter,
    /// The reporter's members of every new Event, written once.
    reporting: Reporting,
    cache: Mutex<Cache>,
    /// Each namespace's Events URL, parsed once: written and parsed for every Event, it was
    /// ~1,000 instructions and two allocations (callgrind, cold `run --once`), where a kept
    /// `Uri` is cloned by counting a reference.
    urls: Mutex<HashMap<String, http::Uri, foldhash::fast::RandomState>>,
}

/// What an Event says, borrowed from its publish: kube-runtime's `Event` without the strings it
/// owns, and without `secondary` (a related object), which image-cloner never names.
#[derive(Debug, Clone, Copy)]
pub struct Said<'a> {
    pub type_: EventType,
    pub reason: &'a str,
    pub action: &'a str,
    pub note: Option<&'a str>,
}

/// What to send for one publish.
enum Send {
    /// A new Event.
    Create,
    /// The next count of the series of the Event created at `created`.
    Series { created: SystemTime, count: i32 },
}

impl EventPublisher {
    pub fn new(writer: Writer, reporter: Reporter) -> Self {
        let controller = reporter.controller.as_str();
        let reporting = Reporting::new(
            controller,
            reporter.instance.as_deref().unwrap_or(controller),
        );
        EventPublisher {
            writer,
            reporter,
            reporting,
            cache: Mutex::new(Cache {
                sent: HashMap::default(),
                swept: Instant::now(),
            }),
            urls: Mutex::new(HashMap::default()),
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
        ev: &Said<'_>,
        regarding: &Regarding<'_>,
    ) -> Result<(), kube::Error> {
        let request = self.request(ev, regarding, SystemTime::now())?;
        send_unread(&self.writer, request).await
    }

    /// The request that publishes `ev` at `now`: a new Event's POST, or its series' PATCH.
    fn request(
        &self,
        ev: &Said<'_>,
        regarding: &Regarding<'_>,
        now: SystemTime,
    ) -> Result<http::Request<Vec<u8>>, kube::Error> {
        let controller = self.reporter.controller.as_str();
        let namespace = regarding.namespace.unwrap_or("default");
        let object = regarding.name.unwrap_or(controller);
        match self.next(series_key(ev, regarding), now) {
            Send::Create => {
                let name = event_body::name(object, now);
                let body = event_body::body(&NewEvent {
                    name: &name,
                    namespace,
                    type_: type_label(&ev.type_),
                    reason: ev.reason,
                    action: ev.action,
                    note: ev.note,
                    regarding,
                    reporting: &self.reporting,
                    time: now,
                });
                Ok(json_request_to(
                    http::Method::POST,
                    self.url(namespace)?,
                    JSON,
                    body,
                ))
            }
            Send::Series { created, count } => {
                let name = event_body::name(object, created);
                let url = K8sEvent::url_path(&(), Some(namespace));
                let last_observed = Timestamp::try_from(now).unwrap_or_else(|_| Timestamp::now());
                let series = EventSeries {
                    count,
                    last_observed_time: MicroTime(last_observed),
                };
                let patch = serde_json::json!({ "series": series });
                Request::new(url)
                    .patch(&name, &PatchParams::default(), &Patch::Merge(patch))
                    .map_err(kube::Error::BuildRequest)
            }
        }
    }

    /// The URL of `namespace`'s Events.
    fn url(&self, namespace: &str) -> Result<http::Uri, kube::Error> {
        let mut urls = self.urls.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(url) = urls.get(namespace) {
            return Ok(url.clone());
        }
        let url = request_uri(collection_url::<K8sEvent>(namespace))?;
        if urls.len() >= MAX_KEPT_URLS {
            urls.clear();
        }
        urls.insert(namespace.to_owned(), url.clone());
        Ok(url)
    }

    /// Records the publish at `created` in the cache and says what to send: a new Event, or the
    /// next count of its series. The key is hashed once (a cold run's 2,000 Events are all new:
    /// a lookup, then an insert, hashed it twice).
    fn next(&self, key: SeriesKey, created: SystemTime) -> Send {
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
                    created: sent.created,
                    count: sent.count,
                };
            }
            entry => entry,
        };
        entry.insert_entry(Sent {
            created,
            count: 1,
            at: now,
        });
        Send::Create
    }
}

fn type_label(t: &EventType) -> &'static str {
    match t {
        EventType::Normal => "Normal",
        EventType::Warning => "Warning",
    }
}

fn series_key(ev: &Said<'_>, regarding: &Regarding<'_>) -> SeriesKey {
    let parts = [
        Some(type_label(&ev.type_)),
        Some(ev.reason),
        Some(ev.action),
        regarding.kind,
        regarding.namespace,
        regarding.name,
        regarding.uid,
    ];
    let length = parts.iter().map(|p| 8 + p.map_or(0, str::len)).sum();
    let mut key = Vec::with_capacity(length);
    for part in parts {
        match part {
            Some(text) => {
                key.extend_from_slice(&(text.len() as u64).to_le_bytes());
                key.extend_from_slice(text.as_bytes());
            }
            None => key.extend_from_slice(&u64::MAX.to_le_bytes()),
        }
    }
    SeriesKey(key.into_boxed_slice())
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

    fn event<'a>(reason: &'a str, note: &'a str) -> Said<'a> {
        Said {
            type_: EventType::Warning,
            reason,
            note: Some(note),
            action: "Clone",
        }
    }

    /// A Deployment in `shop` whose uid is `uid-<name>`.
    fn workload(name: &'static str) -> Regarding<'static> {
        let uid = match name {
            "web" => "uid-web",
            "api" => "uid-api",
            _ => "uid-other",
        };
        Regarding {
            kind: Some("Deployment"),
            namespace: Some("shop"),
            name: Some(name),
            uid: Some(uid),
            ..Regarding::default()
        }
    }

    /// Whether publishing `ev` on `on` now creates a new Event (a POST) rather than extending
    /// a series (a PATCH).
    fn creates(p: &EventPublisher, ev: &Said<'_>, on: &Regarding<'_>) -> bool {
        let request = p.request(ev, on, SystemTime::now()).expect("a request");
        request.method() == http::Method::POST
    }

    #[tokio::test]
    async fn a_repeated_event_extends_its_series_and_another_workload_gets_its_own() {
        let p = publisher();
        let web = workload("web");
        let first = p
            .request(
                &event("CopyFailed", "registry down"),
                &web,
                SystemTime::now(),
            )
            .expect("a request");
        assert_eq!(first.method(), http::Method::POST);
        assert_eq!(first.uri(), "/apis/events.k8s.io/v1/namespaces/shop/events");
        assert_eq!(
            first.headers()[http::header::CONTENT_TYPE],
            "application/json"
        );
        let created: serde_json::Value = serde_json::from_slice(first.body()).expect("JSON");
        assert_eq!(created["metadata"]["namespace"], "shop");
        assert_eq!(created["reportingInstance"], "pod-1");
        assert_eq!(created["regarding"]["uid"], "uid-web");
        let first_name = created["metadata"]["name"].as_str().expect("a name");
        assert!(first_name.starts_with("web."), "{first_name}");
        // The same reason again, another note: the Recorder's key has no note either.
        let again = p
            .request(&event("CopyFailed", "still down"), &web, SystemTime::now())
            .expect("a request");
        assert_eq!(again.method(), http::Method::PATCH);
        assert_eq!(
            again.uri().path(),
            format!("/apis/events.k8s.io/v1/namespaces/shop/events/{first_name}")
        );
        let series: serde_json::Value = serde_json::from_slice(again.body()).expect("JSON");
        assert_eq!(series["series"]["count"], 2);
        assert!(creates(&p, &event("CopyFailed", "x"), &workload("api")));
        assert!(creates(&p, &event("Cloned", "x"), &web));
    }

    /// Each namespace's Events go to its own collection, whether its URL was kept or made
    /// again (after more namespaces than are kept).
    #[tokio::test]
    async fn each_event_goes_to_its_namespaces_collection() {
        let p = publisher();
        let names: Vec<String> = (0..MAX_KEPT_URLS + 2).map(|i| format!("ns-{i}")).collect();
        let namespaces = names
            .iter()
            .chain(&names[..3])
            .chain(&names[MAX_KEPT_URLS..]);
        for (i, namespace) in namespaces.enumerate() {
            // A workload of its own each time: a new Event, never a series.
            let name = format!("web-{i}");
            let on = Regarding {
                namespace: Some(namespace),
                name: Some(&name),
                ..workload("web")
            };
            let request = p
                .request(&event("Cloned", "x"), &on, SystemTime::now())
                .expect("a request");
            assert_eq!(request.method(), http::Method::POST, "{namespace}");
            assert_eq!(
                request.uri().to_string(),
                format!("/apis/events.k8s.io/v1/namespaces/{namespace}/events"),
            );
        }
        assert!(p.urls.lock().expect("not poisoned").len() <= MAX_KEPT_URLS);
    }

    #[test]
    fn series_keys_differ_whenever_a_part_does() {
        let ev = |reason: &'static str, action: &'static str| Said {
            action,
            ..event(reason, "a note is not part of the key")
        };
        let on = |name: Option<&'static str>, uid: Option<&'static str>| Regarding {
            name,
            uid,
            ..workload("web")
        };
        let web = on(Some("web"), Some("uid-web"));
        assert_eq!(
            series_key(&ev("Cloned", "Clone"), &web),
            series_key(&event("Cloned", "another note"), &web)
        );
        let keys = [
            series_key(&ev("Cloned", "Clone"), &web),
            // A part's bytes moved to its neighbour.
            series_key(&ev("Clone", "dClone"), &web),
            series_key(&ev("Cloned", "Clone"), &on(Some("webu"), Some("id-web"))),
            // Absent against empty, and a part absent against its neighbour absent.
            series_key(&ev("Cloned", "Clone"), &on(Some("web"), None)),
            series_key(&ev("Cloned", "Clone"), &on(Some("web"), Some(""))),
            series_key(&ev("Cloned", "Clone"), &on(None, Some("web"))),
            series_key(
                &Said {
                    type_: EventType::Normal,
                    ..ev("Cloned", "Clone")
                },
                &web,
            ),
        ];
        for (i, a) in keys.iter().enumerate() {
            for b in &keys[i + 1..] {
                assert_ne!(a, b);
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn entries_past_the_window_are_swept_and_start_a_new_event() {
        let p = publisher();
        let web = workload("web");
        let ev = event("CopyFailed", "down");
        assert!(creates(&p, &ev, &web));
        assert!(creates(&p, &ev, &workload("api")));
        tokio::time::advance(SERIES_WINDOW - SWEEP_EVERY).await;
        assert!(
            !creates(&p, &ev, &web),
            "a repeat within the window is a series"
        );
        tokio::time::advance(SERIES_WINDOW).await;
        assert!(creates(&p, &ev, &web));
        let cache = p.cache.lock().expect("not poisoned");
        assert_eq!(
            cache.sent.len(),
            1,
            "api's entry was swept, web's new one kept"
        );
    }
}
