//! The admission webhooks' metrics: reviews by webhook and outcome, and how long answers took.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

use crate::admission::AdmissionObserver;
use crate::ops::metrics::Metrics;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReviewLabels {
    pub webhook: &'static str,
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WebhookLabel {
    pub webhook: &'static str,
}

fn latency_histogram() -> Histogram {
    // 0.25 ms to ~4 s: an answer from the mirror's record to one past the answer limit.
    Histogram::new(exponential_buckets(0.00025, 2.0, 15))
}

pub struct AdmissionMetrics {
    pub reviews: Family<ReviewLabels, Counter>,
    pub duration: Family<WebhookLabel, Histogram>,
}

impl AdmissionMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let reviews = Family::<ReviewLabels, Counter>::default();
        registry.register(
            "admission_reviews",
            "AdmissionReviews answered, by webhook (mutate, validate) and outcome (patched, unchanged, warned, denied, error, timeout)",
            reviews.clone(),
        );
        let duration = Family::<WebhookLabel, Histogram>::new_with_constructor(
            latency_histogram as fn() -> Histogram,
        );
        registry.register_with_unit(
            "admission_duration",
            "Time to answer an AdmissionReview, by webhook",
            Unit::Seconds,
            duration.clone(),
        );
        AdmissionMetrics { reviews, duration }
    }
}

impl AdmissionObserver for Metrics {
    fn reviewed(&self, webhook: &'static str, outcome: &'static str, took: Duration) {
        self.admission
            .reviews
            .get_or_create(&ReviewLabels { webhook, outcome })
            .inc();
        self.admission
            .duration
            .get_or_create(&WebhookLabel { webhook })
            .observe(took.as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reviews_are_counted_by_webhook_and_outcome() {
        let m = Metrics::new();
        m.reviewed("mutate", "patched", Duration::from_millis(2));
        m.reviewed("validate", "denied", Duration::from_millis(3));
        let text = m.encode();
        for line in [
            "image_cloner_admission_reviews_total{webhook=\"mutate\",outcome=\"patched\"} 1",
            "image_cloner_admission_reviews_total{webhook=\"validate\",outcome=\"denied\"} 1",
            "image_cloner_admission_duration_seconds_count{webhook=\"mutate\"} 1",
        ] {
            assert!(text.contains(line), "{line} not in\n{text}");
        }
    }
}
