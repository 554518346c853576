//! Pure: why each workload's copy last failed, as a one-off command learns it — from the
//! Events the daemon published (the daemon itself remembers its reconciles' errors). A
//! workload's latest image-cloner Event decides: a Warning about copying means its copy is
//! failing (or its source is private, or its copies could not be pulled), with the note as the
//! error; anything later (a `Cloned`, a new failure) replaces it.

use std::collections::HashMap;

use k8s_openapi::api::events::v1::Event;
use k8s_openapi::jiff::Timestamp;

use crate::audit::WorkloadKey;
use crate::audit::coverage::LastWord;
use crate::reconcile::reasons;
use crate::workload::Kind;

/// The `reportingController` of image-cloner's Events.
pub const CONTROLLER: &str = "image-cloner";

/// Warnings that are not about a copy failing: what is copied but not patched, a reference
/// that cannot be parsed, and the audit's and the guard's own.
const NOT_COPY_FAILURES: &[&str] = &[
    reasons::GITOPS_MANAGED,
    reasons::IMMUTABLE,
    reasons::INVALID_REFERENCE,
    reasons::BACKUP_MISSING,
    reasons::BACKUP_PULL_FAILED,
];

fn when(e: &Event) -> Option<Timestamp> {
    let series = e.series.as_ref().map(|s| s.last_observed_time.0);
    let at = e.event_time.as_ref().map(|t| t.0);
    let created = e.metadata.creation_timestamp.as_ref().map(|t| t.0);
    series.or(at).or(created)
}

fn about(e: &Event) -> Option<WorkloadKey> {
    let r = e.regarding.as_ref()?;
    let kind = *Kind::ALL
        .iter()
        .find(|k| Some(k.to_string().as_str()) == r.kind.as_deref())?;
    Some(WorkloadKey {
        kind,
        namespace: r.namespace.clone()?,
        name: r.name.clone()?,
    })
}

/// The workloads whose latest image-cloner Event says why they are not on their copies: a copy
/// failing, a private source, copies the nodes could not pull.
pub fn copy_failures(events: &[Event]) -> HashMap<WorkloadKey, LastWord> {
    let mut latest: HashMap<WorkloadKey, (Option<Timestamp>, &Event)> = HashMap::new();
    for e in events {
        if e.reporting_controller.as_deref() != Some(CONTROLLER) {
            continue;
        }
        let Some(key) = about(e) else { continue };
        let at = when(e);
        match latest.get(&key) {
            Some((seen, _)) if *seen > at => {}
            _ => {
                latest.insert(key, (at, e));
            }
        }
    }
    latest
        .into_iter()
        .filter(|(_, (_, e))| {
            e.type_.as_deref() == Some("Warning")
                && !NOT_COPY_FAILURES.contains(&e.reason.as_deref().unwrap_or_default())
        })
        .map(|(key, (_, e))| {
            let word = LastWord::new(
                e.reason.as_deref().unwrap_or_default(),
                e.note.clone().unwrap_or_default(),
            );
            (key, word)
        })
        .collect()
}
