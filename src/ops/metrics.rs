//! Prometheus metrics, by Prometheus naming conventions with the `image_cloner_` prefix
//! (the prefix is the registry's, so names below are written without it).

use std::sync::OnceLock;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

mod admission;

use self::admission::AdmissionMetrics;
use crate::cluster::parking::ParkingObserver;
use crate::leadership::LeadershipObserver;
use crate::ops::audit_metrics::AuditMetrics;
use crate::reconcile::api::{ApiObserver, CallOutcome, Verb};
use crate::reconcile::context::ReconcileObserver;
use crate::registry::mirror::CopyObserver;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ApiCallLabels {
    pub verb: &'static str,
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RegistryLabel {
    pub registry: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VerbLabel {
    pub verb: &'static str,
}

fn api_latency_histogram() -> Histogram {
    // 1 ms to ~33 s: loopback to a loaded API server across a WAN, and the timeouts.
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

/// Every metric the daemon exports.
pub struct Metrics {
    registry: Registry,
    pub copies: Family<ResultLabel, Counter>,
    pub copy_duration: Histogram,
    pub copies_in_flight: Gauge,
    pub images_mirrored: Counter,
    pub workloads_patched: Counter,
    pub reconcile_errors: Family<ReasonLabel, Counter>,
    pub last_successful_reconcile: Gauge<f64, AtomicU64>,
    pub api_requests: Family<ApiCallLabels, Counter>,
    pub api_request_duration: Family<VerbLabel, Histogram>,
    /// Each verb and outcome's counter and each verb's histogram, once a call has made them.
    api_handles: ApiHandles,
    pub not_pullable: Counter,
    pub pull_secret_writes: Family<ResultLabel, Counter>,
    pub source_throttled: Family<RegistryLabel, Counter>,
    pub leader: Gauge,
    pub workloads_waiting: Gauge,
    /// The audit's, the rollout guard's and the coverage report's.
    pub audit: AuditMetrics,
    pub admission: AdmissionMetrics,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Registers `metric` as `name` and gives it back: the registry holds a clone, and the clones
/// share their values.
fn registered<M: prometheus_client::registry::Metric + Clone>(
    registry: &mut Registry,
    name: &str,
    help: &str,
    metric: M,
) -> M {
    registry.register(name, help, metric.clone());
    metric
}

fn counter(registry: &mut Registry, name: &str, help: &str) -> Counter {
    registered(registry, name, help, Counter::default())
}

fn gauge(registry: &mut Registry, name: &str, help: &str) -> Gauge {
    registered(registry, name, help, Gauge::default())
}

/// Wall time of skopeo copies: 0.1 s to ~27 min, a small image on loopback to a large one
/// across the internet.
fn copy_duration(registry: &mut Registry) -> Histogram {
    let histogram = Histogram::new(exponential_buckets(0.1, 2.0, 15));
    registry.register_with_unit(
        "copy_duration",
        "Wall time of skopeo copies",
        prometheus_client::registry::Unit::Seconds,
        histogram.clone(),
    );
    histogram
}

fn api_request_duration(registry: &mut Registry) -> Family<VerbLabel, Histogram> {
    let family = Family::<VerbLabel, Histogram>::new_with_constructor(
        api_latency_histogram as fn() -> Histogram,
    );
    registry.register_with_unit(
        "api_request_duration",
        "Latency of the Kubernetes API calls made by reconciles, by verb",
        prometheus_client::registry::Unit::Seconds,
        family.clone(),
    );
    family
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("image_cloner");
        Metrics {
            copies: registered(
                &mut registry,
                "copies",
                "skopeo copies finished, by result (succeeded, failed)",
                Family::<ResultLabel, Counter>::default(),
            ),
            copies_in_flight: gauge(
                &mut registry,
                "copies_in_flight",
                "skopeo copies running now",
            ),
            images_mirrored: counter(
                &mut registry,
                "images_mirrored",
                "Images copied into the backup registry and verified",
            ),
            workloads_patched: counter(
                &mut registry,
                "workloads_patched",
                "Workloads patched to their backup images",
            ),
            reconcile_errors: registered(
                &mut registry,
                "reconcile_errors",
                "Failed reconciles, by reason",
                Family::<ReasonLabel, Counter>::default(),
            ),
            last_successful_reconcile: registered(
                &mut registry,
                "last_successful_reconcile_timestamp_seconds",
                "Unix time of the last reconcile that succeeded",
                Gauge::<f64, AtomicU64>::default(),
            ),
            api_requests: registered(
                &mut registry,
                "api_requests",
                "Calls to the Kubernetes API made by reconciles, by verb and outcome (success, error, timeout)",
                Family::<ApiCallLabels, Counter>::default(),
            ),
            not_pullable: counter(
                &mut registry,
                "not_pullable",
                "Reconciles that left a workload copied but not patched because its pods could not pull the copies from the backup registry (Event BackupNotPullable)",
            ),
            pull_secret_writes: registered(
                &mut registry,
                "pull_secret_writes",
                "Pull secrets written into namespaces, by result (created, updated)",
                Family::<ResultLabel, Counter>::default(),
            ),
            source_throttled: registered(
                &mut registry,
                "source_throttled",
                "429 Too Many Requests answers, by the registry that gave them (each pauses that registry alone)",
                Family::<RegistryLabel, Counter>::default(),
            ),
            leader: gauge(
                &mut registry,
                "leader",
                "1 while this replica may copy and write (it holds the leader Lease, or leader election is off), else 0",
            ),
            workloads_waiting: gauge(
                &mut registry,
                "workloads_waiting_for_copies",
                "Workloads parked until the copies they need end (they hold no reconcile slot meanwhile)",
            ),
            copy_duration: copy_duration(&mut registry),
            api_request_duration: api_request_duration(&mut registry),
            api_handles: ApiHandles::default(),
            audit: AuditMetrics::register(&mut registry),
            admission: AdmissionMetrics::register(&mut registry),
            registry,
        }
    }

    /// The Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

impl ReconcileObserver for Metrics {
    fn workload_patched(&self) {
        self.workloads_patched.inc();
    }

    fn reconciled(&self) {
        // A clock before 1970 is not worth an error path: the gauge would read 0.
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        self.last_successful_reconcile.set(now);
    }

    fn reconcile_failed(&self, reason: &'static str) {
        self.reconcile_errors
            .get_or_create(&ReasonLabel { reason })
            .inc();
    }

    fn workload_not_pullable(&self) {
        self.not_pullable.inc();
    }

    fn pull_secret_written(&self, result: &'static str) {
        self.pull_secret_writes
            .get_or_create(&ResultLabel { result })
            .inc();
    }
}

impl ParkingObserver for Metrics {
    fn waiting(&self, workloads: usize) {
        self.workloads_waiting
            .set(i64::try_from(workloads).unwrap_or(i64::MAX));
    }
}

impl LeadershipObserver for Metrics {
    fn leading(&self, leading: bool) {
        self.leader.set(i64::from(leading));
    }
}

/// The [`Verb`]s and [`CallOutcome`]s a table of handles has room for; one beyond (a variant
/// not listed in `ALL`) is counted through its Family, as before the table.
const VERBS: usize = Verb::ALL.len();
const OUTCOMES: usize = CallOutcome::ALL.len();

/// Handles on the API calls' series, made on a series' first call and shared with its Family
/// (a metric's clones share its value): a Family's lookup takes its lock and hashes the labels
/// with SipHash, ~870 instructions for the two of a call, and a cold `run --once` makes 4,000
/// calls (callgrind, issue 17).
#[derive(Default)]
struct ApiHandles {
    calls: [[OnceLock<Counter>; OUTCOMES]; VERBS],
    durations: [OnceLock<Histogram>; VERBS],
}

impl ApiObserver for Metrics {
    fn api_call(&self, verb: Verb, outcome: CallOutcome, duration: Duration) {
        let labels = || ApiCallLabels {
            verb: verb.label(),
            outcome: outcome.label(),
        };
        let made =
            |family: &Family<ApiCallLabels, Counter>| family.get_or_create(&labels()).clone();
        match self
            .api_handles
            .calls
            .get(verb as usize)
            .and_then(|row| row.get(outcome as usize))
        {
            Some(slot) => slot.get_or_init(|| made(&self.api_requests)).inc(),
            None => made(&self.api_requests).inc(),
        };
        let label = VerbLabel { verb: verb.label() };
        let seconds = duration.as_secs_f64();
        match self.api_handles.durations.get(verb as usize) {
            Some(slot) => slot
                .get_or_init(|| self.api_request_duration.get_or_create(&label).clone())
                .observe(seconds),
            None => self
                .api_request_duration
                .get_or_create(&label)
                .observe(seconds),
        }
    }
}

impl CopyObserver for Metrics {
    fn copy_started(&self) {
        self.copies_in_flight.inc();
    }

    fn copy_finished(&self, succeeded: bool, duration: Duration) {
        self.copies_in_flight.dec();
        self.copy_duration.observe(duration.as_secs_f64());
        let result = if succeeded { "succeeded" } else { "failed" };
        self.copies.get_or_create(&ResultLabel { result }).inc();
    }

    fn image_mirrored(&self) {
        self.images_mirrored.inc();
    }

    fn source_throttled(&self, registry: &str) {
        self.source_throttled
            .get_or_create(&RegistryLabel {
                registry: registry.to_owned(),
            })
            .inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every verb with every outcome, through the handles, counted in its own series alone,
    /// as many times as it was called.
    #[test]
    fn each_api_call_is_counted_in_its_verb_and_outcome_alone() {
        let (verbs, outcomes) = (Verb::ALL, CallOutcome::ALL);
        let m = Metrics::new();
        for (v, verb) in verbs.iter().enumerate() {
            for (o, outcome) in outcomes.iter().enumerate() {
                for _ in 0..(1 + v * OUTCOMES + o) {
                    m.api_call(*verb, *outcome, Duration::from_millis(2));
                }
            }
        }
        let text = m.encode();
        for (v, verb) in verbs.iter().enumerate() {
            for (o, outcome) in outcomes.iter().enumerate() {
                let line = format!(
                    "image_cloner_api_requests_total{{verb=\"{}\",outcome=\"{}\"}} {}",
                    verb.label(),
                    outcome.label(),
                    1 + v * OUTCOMES + o
                );
                assert!(text.contains(&line), "missing {line:?} in\n{text}");
            }
            let calls: usize = (0..OUTCOMES).map(|o| 1 + v * OUTCOMES + o).sum();
            let line = format!(
                "image_cloner_api_request_duration_seconds_count{{verb=\"{}\"}} {calls}",
                verb.label()
            );
            assert!(text.contains(&line), "missing {line:?} in\n{text}");
        }
    }

    #[test]
    fn the_exposition_has_the_conventional_names() {
        let m = Metrics::new();
        m.copy_started();
        m.copy_finished(true, Duration::from_millis(300));
        m.image_mirrored();
        m.reconcile_failed("SourceNotFound");
        m.workload_patched();
        m.workload_not_pullable();
        m.pull_secret_written("created");
        m.reconciled();
        m.api_call(Verb::Patch, CallOutcome::Success, Duration::from_millis(4));
        m.source_throttled("docker.io");
        m.leading(true);
        m.waiting(3);
        m.api_call(
            Verb::CreateEvent,
            CallOutcome::Timeout,
            Duration::from_secs(10),
        );
        let text = m.encode();
        for line in [
            "image_cloner_copies_total{result=\"succeeded\"} 1",
            "image_cloner_copy_duration_seconds_count 1",
            "image_cloner_copies_in_flight 0",
            "image_cloner_images_mirrored_total 1",
            "image_cloner_workloads_patched_total 1",
            "image_cloner_not_pullable_total 1",
            "image_cloner_pull_secret_writes_total{result=\"created\"} 1",
            "image_cloner_reconcile_errors_total{reason=\"SourceNotFound\"} 1",
            "# TYPE image_cloner_last_successful_reconcile_timestamp_seconds gauge",
            "image_cloner_api_requests_total{verb=\"patch\",outcome=\"success\"} 1",
            "image_cloner_api_requests_total{verb=\"create_event\",outcome=\"timeout\"} 1",
            "image_cloner_api_request_duration_seconds_count{verb=\"patch\"} 1",
            "image_cloner_source_throttled_total{registry=\"docker.io\"} 1",
            "image_cloner_leader 1",
            "image_cloner_workloads_waiting_for_copies 3",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
    }
}
