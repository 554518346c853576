//! The results table's rows for the cold rounds, the warm restart and the takeover: each figure
//! next to its target.

use std::time::Duration;

use demo::secs;

use crate::cold::DaemonRound;
use crate::cost::Row;
use crate::{COLD_WORKLOADS, IMAGES, Round, RunFigures, copies, mib, per_round, takeover, verdict};

/// What the rows are made of.
pub struct Measured<'a> {
    pub rounds: &'a [Round],
    pub median_ratio: f64,
    pub daemon: &'a DaemonRound,
    pub warm: &'a RunFigures,
    pub takeover: &'a takeover::Figures,
}

pub fn rows(m: &Measured<'_>) -> Vec<Row> {
    let Measured {
        rounds,
        median_ratio,
        daemon,
        warm,
        takeover,
    } = *m;
    let mut rows = cold_rows(rounds, median_ratio);
    rows.extend(daemon_rows(daemon));
    rows.extend(warm_rows(warm, takeover));
    rows
}

/// The daemon's cold round: what it did is held to the same targets as `run --once`'s rounds;
/// its time and CPU are shown beside theirs (the targets are measured on `run --once`).
pub fn daemon_rows(d: &DaemonRound) -> Vec<Row> {
    vec![
        (
            "cold, the daemon: image-cloner run, start → last reconcile".into(),
            secs(d.run.settled),
            String::new(),
            "",
        ),
        (
            "cold, the daemon: ratio to its round's skopeo".into(),
            format!("{:.2}×", d.ratio()),
            "(shown; the target is run --once's)".into(),
            "",
        ),
        (
            "cold, the daemon: Deployments pinned to the backup".into(),
            d.pinned.to_string(),
            "= 2,000".into(),
            verdict(d.pinned == COLD_WORKLOADS),
        ),
        (
            "cold, the daemon: copies made (its metrics)".into(),
            d.copies().to_string(),
            "= 50".into(),
            verdict(d.copies() == IMAGES as u64),
        ),
        (
            "cold, the daemon: repositories in the backup registry".into(),
            d.backup_repos.to_string(),
            "= 50".into(),
            verdict(d.backup_repos == IMAGES),
        ),
        (
            "cold, the daemon: API writes to Deployments (simulator)".into(),
            d.writes_to_deployments.to_string(),
            "≤ 2,000 (one per workload)".into(),
            verdict(d.writes_to_deployments <= COLD_WORKLOADS as u64),
        ),
        (
            "cold, the daemon: first copy started, after its start".into(),
            secs(d.slots.first_copy),
            "≤ 1 s (copy slots busy from the first second)".into(),
            verdict(d.slots.first_copy <= FIRST_COPY_WITHIN),
        ),
        (
            "cold, the daemon: copy slots busy, first → last copy start".into(),
            format!("{:.1} %", 100.0 * d.slots.busy),
            String::new(),
            "",
        ),
        (
            "cold, the daemon: own CPU / its skopeo CPU".into(),
            format!("{:.1} %", d.cpu_share()),
            "(shown; the target is run --once's)".into(),
            "",
        ),
    ]
}

/// DESIGN: "copy slots busy from the first second".
const FIRST_COPY_WITHIN: Duration = Duration::from_secs(1);

/// The cold rounds' rows: wall times, the ratio and what each round did.
pub fn cold_rows(rounds: &[Round], median_ratio: f64) -> Vec<Row> {
    let rounds_wanted = rounds.len();
    let each = |ok: &dyn Fn(&Round) -> bool| rounds.iter().all(ok);
    vec![
        (
            "cold: skopeo copy --all ×50, 5 at a time, per round".into(),
            per_round(rounds, |r| secs(r.baseline)),
            String::new(),
            "",
        ),
        (
            "cold: image-cloner run --once, per round".into(),
            per_round(rounds, |r| secs(r.once.wall)),
            String::new(),
            "",
        ),
        (
            "cold: ratio image-cloner / skopeo, per round".into(),
            per_round(rounds, |r| format!("{:.2}×", r.ratio())),
            String::new(),
            "",
        ),
        (
            format!("cold: ratio, median of {rounds_wanted} rounds"),
            // Three decimals: at two, a median of 1.054 read "1.05× ≤ 1.05× MISSED".
            format!("{median_ratio:.3}×"),
            "≤ 1.05×".into(),
            verdict(median_ratio <= 1.05),
        ),
        (
            "cold: Deployments pinned to the backup, per round".into(),
            per_round(rounds, |r| r.pinned),
            "= 2,000 each round".into(),
            verdict(each(&|r| r.pinned == COLD_WORKLOADS)),
        ),
        (
            "cold: workloads patched (run --once summary)".into(),
            per_round(rounds, |r| r.once.patched),
            String::new(),
            "",
        ),
        (
            "cold: copies made (run --once summary)".into(),
            per_round(rounds, |r| r.once.copies),
            "= 50 each round".into(),
            verdict(each(&|r| r.once.copies == IMAGES as u64)),
        ),
        (
            "cold: repositories in the backup registry".into(),
            per_round(rounds, |r| r.backup_repos),
            "= 50 each round".into(),
            verdict(each(&|r| r.backup_repos == IMAGES)),
        ),
        (
            "cold: API writes to Deployments (simulator)".into(),
            per_round(rounds, |r| r.once.writes_to_deployments),
            "≤ 2,000 each (one per workload)".into(),
            verdict(each(&|r| {
                r.once.writes_to_deployments <= COLD_WORKLOADS as u64
            })),
        ),
        (
            "cold: API writes, all resources (simulator)".into(),
            per_round(rounds, |r| r.once.writes),
            "(events included)".into(),
            "",
        ),
        (
            "cold: API writes (run --once summary)".into(),
            per_round(rounds, |r| r.once.api_writes),
            String::new(),
            "",
        ),
        (
            "cold: first copy started, after image-cloner's start, per round".into(),
            per_round(rounds, |r| secs(r.once.slots.first_copy)),
            "≤ 1 s (copy slots busy from the first second)".into(),
            verdict(each(&|r| r.once.slots.first_copy <= FIRST_COPY_WITHIN)),
        ),
        (
            "cold: copy slots busy, first → last copy start, per round".into(),
            per_round(rounds, |r| format!("{:.1} %", 100.0 * r.once.slots.busy)),
            String::new(),
            "",
        ),
        (
            "cold: run --once peak RSS (VmHWM)".into(),
            per_round(rounds, |r| mib(r.once.peak_rss_kib)),
            String::new(),
            "",
        ),
    ]
}

fn warm_rows(warm: &RunFigures, takeover: &takeover::Figures) -> Vec<Row> {
    let warm_settle = warm.settled.saturating_sub(warm.lists);
    vec![
        (
            "warm: start → initial lists served".into(),
            secs(warm.lists),
            String::new(),
            "",
        ),
        (
            "warm: settle, initial lists → last reconcile".into(),
            secs(warm_settle),
            "≤ 2 s".into(),
            verdict(warm_settle <= Duration::from_secs(2)),
        ),
        (
            "warm: skopeo copies".into(),
            (copies(&warm.metrics, "succeeded") + copies(&warm.metrics, "failed")).to_string(),
            "= 0".into(),
            verdict(copies(&warm.metrics, "succeeded") + copies(&warm.metrics, "failed") == 0),
        ),
        (
            "warm: API writes".into(),
            warm.writes.to_string(),
            "= 0".into(),
            verdict(warm.writes == 0),
        ),
        (
            "warm: daemon peak RSS (VmHWM)".into(),
            mib(warm.peak_rss_kib),
            "≤ 64 MiB".into(),
            verdict(warm.peak_rss_kib <= 64 * 1024),
        ),
        (
            "takeover: SIGKILL of the leader → the standby leads, per round".into(),
            takeover
                .takeovers
                .iter()
                .map(|d| secs(*d))
                .collect::<Vec<_>>()
                .join(", "),
            format!(
                "≤ {} (lease + renew period)",
                secs(takeover::Figures::target())
            ),
            verdict(takeover.worst() <= takeover::Figures::target()),
        ),
    ]
}
