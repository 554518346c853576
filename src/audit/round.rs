//! One audit, as named steps: the references in use (from the daemon's caches, no request) →
//! checked (one request each) → the broken ones copied again → the rest reported on each
//! workload running them (and, with `on_backup_missing = restore`, those workloads restored).
//! Then the loop that runs it at start and every `audit_interval`, and keeps
//! `image_cloner_workloads{state}` current in between.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use tokio::sync::watch;
use tokio::time::MissedTickBehavior;

use crate::audit::act::{self, Outcome, Request};
use crate::audit::check::{self, Liveness};
use crate::audit::coverage::{self, classify};
use crate::audit::refs::{self, InUse, References};
use crate::audit::repair::{Repair, repair};
use crate::audit::{AuditObserver, COVERAGE_REFRESH, COVERAGE_SETTLE, Cached, WorkloadKey};
use crate::reconcile::{Context, reasons};
use crate::settings::OnBackupMissing;

/// The longest the first audit waits for the start's reconciles to settle.
const FIRST_AUDIT_WAIT: Duration = Duration::from_secs(30);

/// What one audit found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditSummary {
    /// Workloads in the caches.
    pub workloads: usize,
    /// Distinct backup references in use: one registry request each.
    pub references: usize,
    pub alive: usize,
    /// Copied again and verified.
    pub repaired: usize,
    /// Gone (or moved) and not copied again.
    pub missing: usize,
    /// The backup registry could not be asked.
    pub unknown: usize,
    /// Workloads put back on their original images.
    pub restored: usize,
    pub duration: Duration,
}

/// The liveness audit of the daemon.
pub struct Auditor {
    ctx: Arc<Context>,
    cached: Arc<dyn Cached>,
    observer: Arc<dyn AuditObserver>,
    on_missing: OnBackupMissing,
    /// The last audit's findings, by reference: what the coverage count reads.
    found: Mutex<HashMap<String, Liveness>>,
}

/// A broken reference that could not be copied again.
struct Unrepaired {
    reference: String,
    liveness: Liveness,
    why: String,
}

impl Auditor {
    pub fn new(
        ctx: Arc<Context>,
        cached: Arc<dyn Cached>,
        observer: Arc<dyn AuditObserver>,
        on_missing: OnBackupMissing,
    ) -> Arc<Self> {
        Arc::new(Auditor {
            ctx,
            cached,
            observer,
            on_missing,
            found: Mutex::default(),
        })
    }

    fn found(&self) -> std::sync::MutexGuard<'_, HashMap<String, Liveness>> {
        self.found.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Step 1: the references in use, read from the caches; and how many workloads there are.
    fn references(&self) -> (References, usize) {
        let mut refs = References::new();
        let mut workloads = 0;
        self.cached.for_each_workload(&mut |mut w| {
            workloads += 1;
            // A namespace whose opt-out is not known yet is not acted in.
            let Some(opted_out) = self.ctx.namespaces.opted_out(&w.namespace) else {
                return;
            };
            w.namespace_opted_out = opted_out;
            refs::collect(&mut refs, &w, &self.ctx.policy);
        });
        (refs, workloads)
    }

    /// One audit.
    pub async fn round(&self) -> AuditSummary {
        let started = Instant::now();
        let (refs, workloads) = self.references();
        let mut found = check::check_all(&self.ctx.mirror, &refs).await;
        let (repaired, unrepaired) = self.repair_broken(&refs, &mut found).await;
        let restored = self.report(&refs, &unrepaired).await;
        let summary = AuditSummary {
            workloads,
            references: refs.len(),
            alive: found.values().filter(|l| **l == Liveness::Alive).count(),
            repaired,
            missing: unrepaired.len(),
            unknown: found
                .values()
                .filter(|l| matches!(l, Liveness::Unknown { .. }))
                .count(),
            restored,
            duration: started.elapsed(),
        };
        *self.found() = found;
        tracing::info!(
            workloads,
            references = summary.references,
            repaired,
            missing = summary.missing,
            unknown = summary.unknown,
            restored,
            seconds = summary.duration.as_secs_f64(),
            "audit of the backup copies in use done"
        );
        self.observer.audit_finished(&summary);
        summary
    }

    /// Step 3: every broken reference copied again, the copies bounded by the mirror's slots.
    async fn repair_broken(
        &self,
        refs: &References,
        found: &mut HashMap<String, Liveness>,
    ) -> (usize, Vec<Unrepaired>) {
        let broken: Vec<(String, Liveness, &InUse)> = found
            .iter()
            .filter(|(_, l)| l.broken())
            .filter_map(|(r, l)| Some((r.clone(), l.clone(), refs.get(r)?)))
            .collect();
        let mirror = &self.ctx.mirror;
        let repairs: Vec<_> = broken
            .into_iter()
            .map(|(reference, liveness, in_use)| async move {
                let outcome = repair(mirror, &in_use.image, &in_use.originals).await;
                (reference, liveness, outcome)
            })
            .collect();
        let outcomes: Vec<(String, Liveness, Repair)> = futures::stream::iter(repairs)
            .buffer_unordered(mirror.options().max_concurrent_copies)
            .collect()
            .await;
        let (mut repaired, mut unrepaired) = (0, Vec::new());
        for (reference, liveness, outcome) in outcomes {
            match outcome {
                Repair::Repaired => {
                    tracing::info!(backup = reference, was = %liveness, "backup copy copied again and verified");
                    found.insert(reference, Liveness::Alive);
                    repaired += 1;
                }
                Repair::Failed { why, source_gone } => {
                    let why = if source_gone {
                        format!("its source no longer serves that digest ({why})")
                    } else {
                        why
                    };
                    unrepaired.push(Unrepaired {
                        reference,
                        liveness,
                        why,
                    });
                }
            }
        }
        (repaired, unrepaired)
    }

    /// Step 4: a Warning Event on each workload running a copy that is gone, and with
    /// `restore`, its original images back; the number restored.
    async fn report(&self, refs: &References, unrepaired: &[Unrepaired]) -> usize {
        let mut by_workload: BTreeMap<&WorkloadKey, Vec<&Unrepaired>> = BTreeMap::new();
        for u in unrepaired {
            for key in refs.get(&u.reference).iter().flat_map(|r| &r.workloads) {
                by_workload.entry(key).or_default().push(u);
            }
        }
        let mut restored = 0;
        for (key, lost) in by_workload {
            let problem = lost
                .iter()
                .map(|u| {
                    format!(
                        "backup copy {} is {}; it could not be copied again: {}",
                        u.reference,
                        match &u.liveness {
                            Liveness::WrongDigest { found } =>
                                format!("gone (its tag now names {found})"),
                            _ => "gone from the backup registry".to_owned(),
                        },
                        u.why
                    )
                })
                .collect::<Vec<_>>()
                .join("; ");
            let request = Request {
                reason: reasons::BACKUP_MISSING,
                problem,
                restore: self.on_missing == OnBackupMissing::Restore,
                check_originals: true,
                ours: Default::default(),
            };
            if let Outcome::Restored(_) = act::on_workload(&self.ctx, key, &request).await {
                restored += 1;
                self.observer.workload_restored(reasons::BACKUP_MISSING);
            }
        }
        restored
    }

    /// Counts the workloads of the caches by state, for `image_cloner_workloads{state}`.
    pub fn refresh_coverage(&self) {
        let found = self.found().clone();
        let mut states = Vec::new();
        self.cached.for_each_workload(&mut |mut w| {
            w.namespace_opted_out = self.ctx.namespaces.opted_out(&w.namespace) == Some(true);
            let word = self.cached.last_word(&WorkloadKey::of(&w));
            let c = classify(
                &w,
                &self.ctx.policy,
                &|image| found.get(image).cloned(),
                word.as_ref(),
            );
            states.push(c.state);
        });
        self.observer.coverage(&coverage::count(states));
    }

    /// Resolves once no reconcile has ended for [`COVERAGE_SETTLE`], or after `limit`: the
    /// audit and the counting wait out a (warm) start's burst of reconciles rather than take
    /// the single-threaded runtime's time from it.
    async fn quiet(&self, limit: Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        let mut seen = self.cached.changes();
        while tokio::time::Instant::now() < deadline {
            tokio::time::sleep(COVERAGE_SETTLE).await;
            let now = self.cached.changes();
            if now == seen {
                return;
            }
            seen = now;
        }
    }

    /// At start (once `synced` says the caches hold every kind's initial list, and the
    /// reconciles of the start have settled) and every `interval`; the coverage counted after
    /// each audit, once reconciles that ended have settled for [`COVERAGE_SETTLE`], and at
    /// least every [`COVERAGE_REFRESH`].
    pub async fn run(self: Arc<Self>, interval: Duration, mut synced: watch::Receiver<bool>) {
        if synced.wait_for(|s| *s).await.is_err() {
            return;
        }
        self.quiet(FIRST_AUDIT_WAIT).await;
        let mut audits = tokio::time::interval(interval);
        audits.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut checks = tokio::time::interval(COVERAGE_SETTLE);
        checks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let (mut counted_at, mut counted_changes) = (tokio::time::Instant::now(), 0);
        let mut seen = self.cached.changes();
        loop {
            tokio::select! {
                biased;
                _ = audits.tick() => {
                    self.round().await;
                }
                _ = checks.tick() => {
                    let now = self.cached.changes();
                    let settled = now == seen && now != counted_changes;
                    seen = now;
                    let stale = counted_at.elapsed() >= COVERAGE_REFRESH.min(interval);
                    if !settled && !stale {
                        continue;
                    }
                }
            }
            counted_changes = self.cached.changes();
            self.refresh_coverage();
            counted_at = tokio::time::Instant::now();
        }
    }
}
