//! Prometheus metrics, by Prometheus naming conventions with the `image_cloner_` prefix
//! (the prefix is the registry's, so names below are written without it).

use std::sync::atomic::AtomicU64;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

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
    pub not_pullable: Counter,
    pub pull_secret_writes: Family<ResultLabel, Counter>,
    pub source_throttled: Family<RegistryLabel, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("image_cloner");
        let copies = Family::<ResultLabel, Counter>::default();
        registry.register(
            "copies",
            "skopeo copies finished, by result (succeeded, failed)",
            copies.clone(),
        );
        // 0.1 s to ~27 min: a small image on loopback to a large one across the internet.
        let copy_duration = Histogram::new(exponential_buckets(0.1, 2.0, 15));
        registry.register_with_unit(
            "copy_duration",
            "Wall time of skopeo copies",
            prometheus_client::registry::Unit::Seconds,
            copy_duration.clone(),
        );
        let copies_in_flight = Gauge::default();
        registry.register(
            "copies_in_flight",
            "skopeo copies running now",
            copies_in_flight.clone(),
        );
        let images_mirrored = Counter::default();
        registry.register(
            "images_mirrored",
            "Images copied into the backup registry and verified",
            images_mirrored.clone(),
        );
        let workloads_patched = Counter::default();
        registry.register(
            "workloads_patched",
            "Workloads patched to their backup images",
            workloads_patched.clone(),
        );
        let reconcile_errors = Family::<ReasonLabel, Counter>::default();
        registry.register(
            "reconcile_errors",
            "Failed reconciles, by reason",
            reconcile_errors.clone(),
        );
        let last_successful_reconcile = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "last_successful_reconcile_timestamp_seconds",
            "Unix time of the last reconcile that succeeded",
            last_successful_reconcile.clone(),
        );
        let api_requests = Family::<ApiCallLabels, Counter>::default();
        registry.register(
            "api_requests",
            "Calls to the Kubernetes API made by reconciles, by verb and outcome (success, error, timeout)",
            api_requests.clone(),
        );
        let api_request_duration = Family::<VerbLabel, Histogram>::new_with_constructor(
            api_latency_histogram as fn() -> Histogram,
        );
        registry.register_with_unit(
            "api_request_duration",
            "Latency of the Kubernetes API calls made by reconciles, by verb",
            prometheus_client::registry::Unit::Seconds,
            api_request_duration.clone(),
        );
        let not_pullable = Counter::default();
        registry.register(
            "not_pullable",
            "Reconciles that left a workload copied but not patched because its pods could not pull the copies from the backup registry (Event BackupNotPullable)",
            not_pullable.clone(),
        );
        let pull_secret_writes = Family::<ResultLabel, Counter>::default();
        registry.register(
            "pull_secret_writes",
            "Pull secrets written into namespaces, by result (created, updated)",
            pull_secret_writes.clone(),
        );
        let source_throttled = Family::<RegistryLabel, Counter>::default();
        registry.register(
            "source_throttled",
            "429 Too Many Requests answers, by the registry that gave them (each pauses that registry alone)",
            source_throttled.clone(),
        );
        Metrics {
            registry,
            not_pullable,
            pull_secret_writes,
            source_throttled,
            api_requests,
            api_request_duration,
            copies,
            copy_duration,
            copies_in_flight,
            images_mirrored,
            workloads_patched,
            reconcile_errors,
            last_successful_reconcile,
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

impl ApiObserver for Metrics {
    fn api_call(&self, verb: Verb, outcome: CallOutcome, duration: Duration) {
        self.api_requests
            .get_or_create(&ApiCallLabels {
                verb: verb.label(),
                outcome: outcome.label(),
            })
            .inc();
        self.api_request_duration
            .get_or_create(&VerbLabel { verb: verb.label() })
            .observe(duration.as_secs_f64());
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
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
    }
}
