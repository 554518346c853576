//! What the webhooks know of copies, without ever waiting on skopeo: the mirror's record of what
//! it verified, plus one bounded round of registry checks (a manifest HEAD per image the record
//! does not hold, together, each within the lookup timeout), and which sources are private, as
//! the daemon's screen tells them (`copy_private_sources`), within the same timeout. Copies of
//! what is not verified are queued in the background: the mirror's single-flight work, never
//! awaited by a handler.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use futures::future::join_all;

use crate::image::reference::ImageRef;
use crate::reconcile::plan::{self, ContainerPlan, Policy};
use crate::reconcile::screen;
use crate::registry::mirror::Mirror;

/// Source (canonical) → the pinned backup reference of its verified copy.
pub type Verified = HashMap<String, String>;

/// The verified copies of `sources`: recorded by the mirror, or found in the backup registry
/// by one bounded check each.
pub async fn verified(mirror: &Mirror, sources: &[ImageRef], lookup_timeout: Duration) -> Verified {
    let mut found = Verified::new();
    let mut unknown = Vec::new();
    for source in sources {
        match mirror.recorded(source) {
            Some(Ok(m)) => {
                found.insert(source.canonical().into_owned(), m.backup_ref);
            }
            _ => unknown.push(source),
        }
    }
    let checks = unknown
        .iter()
        .map(|s| tokio::time::timeout(lookup_timeout, mirror.lookup(s)));
    for (source, result) in unknown.iter().zip(join_all(checks).await) {
        match result {
            Ok(Ok(Some(backup_ref))) => {
                found.insert(source.canonical().into_owned(), backup_ref);
            }
            Ok(Ok(None)) => {}
            Ok(Err(e)) => {
                tracing::debug!(image = %source, error = %e, "backup check failed; admitted as not copied")
            }
            Err(_) => {
                tracing::debug!(image = %source, timeout = ?lookup_timeout, "backup check timed out; admitted as not copied")
            }
        }
    }
    found
}

/// What the screen said of the sources a plan would copy (canonical references).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Privacy {
    /// Served only with credentials, on a registry `copy_private_sources` does not allow:
    /// neither copied nor patched, as by the daemon.
    pub private: BTreeSet<String>,
    /// Not told in time (the registry did not answer, or not within the lookup timeout): not
    /// judged here — neither rewritten, refused nor queued; the daemon decides later.
    pub unsettled: BTreeSet<String>,
}

/// The daemon's privacy screen of `plans` ([`screen::privacy`]: an anonymous manifest HEAD
/// per repository, cached by the mirror), within `timeout`.
pub async fn screened(
    mirror: &Mirror,
    policy: &Policy,
    plans: &[ContainerPlan],
    timeout: Duration,
) -> Privacy {
    match tokio::time::timeout(timeout, screen::privacy(mirror, policy, plans)).await {
        Ok(s) => Privacy {
            private: s.private,
            unsettled: s.unknown.into_keys().collect(),
        },
        Err(_) => {
            tracing::debug!(
                ?timeout,
                "privacy screen timed out; those images are not judged"
            );
            Privacy {
                private: BTreeSet::new(),
                unsettled: plan::privacy_to_check(plans, policy)
                    .iter()
                    .map(|s| s.canonical().into_owned())
                    .collect(),
            }
        }
    }
}

/// Starts the mirror's work, on `runtime`, for every source it has no fresh verified record
/// of; returns at once. The daemon then patches the workload as it does any other. `sources`
/// are screened already: none is private or unsettled.
pub fn queue(mirror: &Mirror, sources: &[ImageRef], runtime: &tokio::runtime::Handle) -> usize {
    let mut queued = 0;
    for source in sources {
        if matches!(mirror.recorded(source), Some(Ok(_))) {
            continue;
        }
        let (mirror, source) = (mirror.clone(), source.clone());
        runtime.spawn(async move {
            match mirror.ensure(&source).await {
                Ok(_) => {}
                // Another replica leads: it copies when it sees the workload.
                Err(e) if e.is_not_leading() => {
                    tracing::debug!(image = %source, "a copy queued by the webhook: not leading")
                }
                Err(e) => {
                    tracing::warn!(image = %source, reason = e.reason(), error = %e, "a copy queued by the webhook failed")
                }
            }
        });
        queued += 1;
    }
    queued
}
