//! Fault injection and observation: what a test or a benchmark needs and a real API server
//! does not offer. Reachable from Rust through [`Faults`] and over HTTP under `/__sim/`.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::status::ApiError;

/// Answer the next `count` requests matching `verb` and `resource` with `status`.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct FailRule {
    /// RBAC verb: get, list, watch, create, update, patch, delete, deletecollection; None: any.
    #[serde(default)]
    pub verb: Option<String>,
    /// Plural resource name (`deployments`); None: any.
    #[serde(default)]
    pub resource: Option<String>,
    pub count: u64,
    pub status: u16,
    /// Seconds for a `Retry-After` header (429, 503).
    #[serde(default)]
    pub retry_after: Option<u64>,
}

/// Another client's write, made just before the next write a client makes to a matching
/// object: the client's write then meets an object changed since it read it.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Interference {
    pub resource: String,
    #[serde(default)]
    pub namespace: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    /// A JSON merge patch (RFC 7386) applied as the other client's write.
    pub merge_patch: Value,
}

/// Requests matching `verb` and `resource` wait `millis` longer before they are served: one
/// kind of request made slower than the others (a namespace list slower than the workload
/// lists, say), which a global latency cannot do.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct LatencyRule {
    /// RBAC verb (`list`, `watch`, `patch`, ...); None: any.
    #[serde(default)]
    pub verb: Option<String>,
    /// Plural resource name (`namespaces`); None: any.
    #[serde(default)]
    pub resource: Option<String>,
    pub millis: u64,
}

/// One request, as the request log keeps it.
#[derive(Debug, Clone, Serialize)]
pub struct RequestRecord {
    pub verb: String,
    pub resource: String,
    pub namespace: String,
    pub name: String,
    pub code: u16,
    pub user_agent: String,
    /// Whether the answer was the object's metadata alone (`Accept: ...;as=PartialObjectMetadata`).
    pub metadata_only: bool,
    /// The answer's body in bytes, when known before it is sent (not a watch).
    pub answer_bytes: Option<u64>,
}

impl RequestRecord {
    pub fn is_write(&self) -> bool {
        is_write(&self.verb)
    }
}

pub fn is_write(verb: &str) -> bool {
    matches!(
        verb,
        "create" | "update" | "patch" | "delete" | "deletecollection"
    )
}

const LOG_LIMIT: usize = 200_000;

#[derive(Default)]
struct State {
    rules: Vec<FailRule>,
    latency: Duration,
    latency_rules: Vec<LatencyRule>,
    interferences: Vec<Interference>,
    counters: BTreeMap<(String, String), u64>,
    log: VecDeque<RequestRecord>,
}

#[derive(Default)]
pub struct Faults {
    state: Mutex<State>,
    connections: AtomicU64,
    handshakes: AtomicU64,
    resumed: AtomicU64,
    in_flight: AtomicU64,
    peak_in_flight: AtomicU64,
}

/// Connections the server accepted since the counters were reset: what a client's connection
/// pool costs (each TLS handshake is a few milliseconds of CPU on both ends).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Connections {
    /// TCP connections accepted.
    pub accepted: u64,
    /// TLS handshakes completed on them.
    pub tls_handshakes: u64,
    /// Of those, the ones that resumed a session from a ticket the server had sent: no
    /// certificate sent, checked or signed for.
    pub resumed_tls_handshakes: u64,
    /// The most requests being answered at once (a watch counts until its response starts).
    pub peak_in_flight: u64,
}

/// A request being answered; counted in [`Connections::peak_in_flight`] while it lives.
pub(crate) struct InFlight<'a>(&'a Faults);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

fn matches(want: &Option<String>, have: &str) -> bool {
    want.as_deref().is_none_or(|w| w == have)
}

impl Faults {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn fail_next(&self, rule: FailRule) {
        self.lock().rules.push(rule);
    }

    /// Every request waits this long before it is served.
    pub fn set_latency(&self, latency: Duration) {
        self.lock().latency = latency;
    }

    /// Until [`Faults::clear`], matching requests wait this much longer (rules add up).
    pub fn add_latency(&self, rule: LatencyRule) {
        self.lock().latency_rules.push(rule);
    }

    pub fn interfere_next_write(&self, i: Interference) {
        self.lock().interferences.push(i);
    }

    /// Removes every pending failure, latency and interference.
    pub fn clear(&self) {
        let mut s = self.lock();
        s.rules.clear();
        s.latency = Duration::ZERO;
        s.latency_rules.clear();
        s.interferences.clear();
    }

    pub fn reset_counters(&self) {
        let mut s = self.lock();
        s.counters.clear();
        s.log.clear();
        self.connections.store(0, Ordering::Relaxed);
        self.handshakes.store(0, Ordering::Relaxed);
        self.resumed.store(0, Ordering::Relaxed);
        self.peak_in_flight
            .store(self.in_flight.load(Ordering::Relaxed), Ordering::Relaxed);
    }

    /// Connections accepted and TLS handshakes completed since the counters were reset.
    pub fn connections(&self) -> Connections {
        Connections {
            accepted: self.connections.load(Ordering::Relaxed),
            tls_handshakes: self.handshakes.load(Ordering::Relaxed),
            resumed_tls_handshakes: self.resumed.load(Ordering::Relaxed),
            peak_in_flight: self.peak_in_flight.load(Ordering::Relaxed),
        }
    }

    pub(crate) fn request_started(&self) -> InFlight<'_> {
        let now = self.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
        self.peak_in_flight.fetch_max(now, Ordering::Relaxed);
        InFlight(self)
    }

    pub(crate) fn connection_accepted(&self) {
        self.connections.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn handshake_completed(&self, resumed: bool) {
        self.handshakes.fetch_add(1, Ordering::Relaxed);
        if resumed {
            self.resumed.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Requests by (verb, resource).
    pub fn counters(&self) -> BTreeMap<(String, String), u64> {
        self.lock().counters.clone()
    }

    pub fn count(&self, verb: &str, resource: &str) -> u64 {
        self.lock()
            .counters
            .get(&(verb.to_owned(), resource.to_owned()))
            .copied()
            .unwrap_or(0)
    }

    /// Writes of any kind to any resource.
    pub fn writes(&self) -> u64 {
        self.lock()
            .counters
            .iter()
            .filter(|((v, _), _)| is_write(v))
            .map(|(_, n)| n)
            .sum()
    }

    /// Writes to one resource (plural name).
    pub fn writes_to(&self, resource: &str) -> u64 {
        self.lock()
            .counters
            .iter()
            .filter(|((v, r), _)| is_write(v) && r == resource)
            .map(|(_, n)| n)
            .sum()
    }

    /// The latest requests (up to 200,000), oldest first.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.lock().log.iter().cloned().collect()
    }

    pub(crate) fn latency(&self) -> Duration {
        self.lock().latency
    }

    /// The extra wait of a request, from the latency rules it matches.
    pub(crate) fn latency_of(&self, verb: &str, resource: &str) -> Duration {
        let millis = self
            .lock()
            .latency_rules
            .iter()
            .filter(|r| matches(&r.verb, verb) && matches(&r.resource, resource))
            .map(|r| r.millis)
            .sum();
        Duration::from_millis(millis)
    }

    /// The injected failure for this request, if a rule matches (and uses up one count).
    pub(crate) fn take_failure(&self, verb: &str, resource: &str) -> Option<ApiError> {
        let mut s = self.lock();
        let i = s.rules.iter().position(|r| {
            r.count > 0 && matches(&r.verb, verb) && matches(&r.resource, resource)
        })?;
        let rule = &mut s.rules[i];
        rule.count -= 1;
        let e = ApiError::injected(rule.status, rule.retry_after);
        if rule.count == 0 {
            s.rules.remove(i);
        }
        Some(e)
    }

    pub(crate) fn take_interference(&self, resource: &str, ns: &str, name: &str) -> Option<Value> {
        let mut s = self.lock();
        let i = s.interferences.iter().position(|i| {
            i.resource == resource && matches(&i.namespace, ns) && matches(&i.name, name)
        })?;
        Some(s.interferences.remove(i).merge_patch)
    }

    pub(crate) fn record(&self, r: RequestRecord) {
        let mut s = self.lock();
        *s.counters
            .entry((r.verb.clone(), r.resource.clone()))
            .or_default() += 1;
        if s.log.len() >= LOG_LIMIT {
            s.log.pop_front();
        }
        s.log.push_back(r);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_are_used_up() {
        let f = Faults::default();
        f.fail_next(FailRule {
            verb: Some("patch".into()),
            resource: None,
            count: 2,
            status: 429,
            retry_after: Some(1),
        });
        assert!(f.take_failure("get", "pods").is_none());
        let e = f.take_failure("patch", "deployments").expect("first");
        assert_eq!(
            (e.code, e.reason(), e.retry_after),
            (429, "TooManyRequests", Some(1))
        );
        assert!(f.take_failure("patch", "pods").is_some());
        assert!(f.take_failure("patch", "pods").is_none());
    }

    #[test]
    fn latency_rules_slow_down_only_what_they_match_until_cleared() {
        let f = Faults::default();
        f.add_latency(LatencyRule {
            verb: Some("list".into()),
            resource: Some("namespaces".into()),
            millis: 1500,
        });
        f.add_latency(LatencyRule {
            verb: None,
            resource: Some("namespaces".into()),
            millis: 500,
        });
        assert_eq!(f.latency_of("list", "namespaces"), Duration::from_secs(2));
        assert_eq!(
            f.latency_of("watch", "namespaces"),
            Duration::from_millis(500)
        );
        assert_eq!(f.latency_of("list", "deployments"), Duration::ZERO);
        f.clear();
        assert_eq!(f.latency_of("list", "namespaces"), Duration::ZERO);
    }
}
