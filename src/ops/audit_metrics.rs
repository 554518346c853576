//! The metrics of the audit, the rollout guard and the coverage report (`crate::audit`).

use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::audit::{AuditObserver, AuditSummary, State};
use crate::ops::metrics::{Metrics, ReasonLabel};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabel {
    pub state: &'static str,
}

/// Registered under the daemon's `image_cloner_` prefix.
pub struct AuditMetrics {
    pub runs: Counter,
    pub checks: Counter,
    pub last_duration: Gauge<f64, AtomicU64>,
    pub repaired: Counter,
    pub missing: Gauge,
    pub restored: Family<ReasonLabel, Counter>,
    pub pull_failures: Counter,
    pub workloads: Family<StateLabel, Gauge>,
}

impl AuditMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let m = AuditMetrics {
            runs: Counter::default(),
            checks: Counter::default(),
            last_duration: Gauge::default(),
            repaired: Counter::default(),
            missing: Gauge::default(),
            restored: Family::default(),
            pull_failures: Counter::default(),
            workloads: Family::default(),
        };
        registry.register(
            "audit_runs",
            "Audits of the backup copies in use",
            m.runs.clone(),
        );
        registry.register(
            "audit_checks",
            "Backup references checked by audits (one registry request each)",
            m.checks.clone(),
        );
        registry.register_with_unit(
            "audit_last_duration",
            "Wall time of the last audit",
            prometheus_client::registry::Unit::Seconds,
            m.last_duration.clone(),
        );
        registry.register(
            "backup_copies_repaired",
            "Backup copies in use found gone or moved, copied again and verified",
            m.repaired.clone(),
        );
        registry.register(
            "backup_copies_missing",
            "Backup copies in use that the last audit found gone and could not copy again",
            m.missing.clone(),
        );
        registry.register(
            "workloads_restored",
            "Workloads put back on their original images, by reason (BackupMissing, BackupPullFailed)",
            m.restored.clone(),
        );
        registry.register(
            "backup_pull_failures",
            "Patched workloads whose new Pods could not pull their backup images (rollout guard)",
            m.pull_failures.clone(),
        );
        registry.register(
            "workloads",
            "Workloads by state: if the public registries disappeared, which could not start (protected, not_yet_copied, copy_failing, backup_missing, ...)",
            m.workloads.clone(),
        );
        m
    }
}

impl AuditObserver for Metrics {
    fn audit_finished(&self, summary: &AuditSummary) {
        let m = &self.audit;
        m.runs.inc();
        m.checks.inc_by(summary.references as u64);
        m.last_duration.set(summary.duration.as_secs_f64());
        m.repaired.inc_by(summary.repaired as u64);
        m.missing.set(summary.missing as i64);
    }

    fn workload_restored(&self, reason: &'static str) {
        self.audit
            .restored
            .get_or_create(&ReasonLabel { reason })
            .inc();
    }

    fn backup_pull_failed(&self) {
        self.audit.pull_failures.inc();
    }

    fn coverage(&self, counts: &BTreeMap<State, usize>) {
        for (state, n) in counts {
            self.audit
                .workloads
                .get_or_create(&StateLabel {
                    state: state.label(),
                })
                .set(*n as i64);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::audit::coverage;

    #[test]
    fn the_audit_and_the_coverage_are_exported() {
        let m = Metrics::new();
        m.audit_finished(&AuditSummary {
            references: 500,
            repaired: 1,
            missing: 2,
            duration: Duration::from_millis(1500),
            ..AuditSummary::default()
        });
        m.workload_restored("BackupPullFailed");
        m.backup_pull_failed();
        m.coverage(&coverage::count([State::Protected, State::Protected]));
        let text = m.encode();
        for line in [
            "image_cloner_audit_runs_total 1",
            "image_cloner_audit_checks_total 500",
            "image_cloner_audit_last_duration_seconds 1.5",
            "image_cloner_backup_copies_repaired_total 1",
            "image_cloner_backup_copies_missing 2",
            "image_cloner_workloads_restored_total{reason=\"BackupPullFailed\"} 1",
            "image_cloner_backup_pull_failures_total 1",
            "image_cloner_workloads{state=\"protected\"} 2",
            "image_cloner_workloads{state=\"backup_missing\"} 0",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
    }
}
