//! What the webhooks know of copies, without ever waiting on skopeo: the mirror's record of what
//! it verified, plus one bounded round of registry checks (a manifest HEAD per image the record
//! does not hold, together, each within the lookup timeout). Copies of what is not verified are
//! queued in the background: the mirror's single-flight work, never awaited by a handler.

use std::collections::HashMap;
use std::time::Duration;

use futures::future::join_all;

use crate::image::reference::ImageRef;
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
                found.insert(source.canonical(), m.backup_ref);
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
                found.insert(source.canonical(), backup_ref);
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

/// Starts the mirror's work, on `runtime`, for every source it has no fresh verified record
/// of; returns at once. The daemon then patches the workload as it does any other.
pub fn queue(mirror: &Mirror, sources: &[ImageRef], runtime: &tokio::runtime::Handle) -> usize {
    let mut queued = 0;
    for source in sources {
        if matches!(mirror.recorded(source), Some(Ok(_))) {
            continue;
        }
        let (mirror, source) = (mirror.clone(), source.clone());
        runtime.spawn(async move {
            if let Err(e) = mirror.ensure(&source).await {
                tracing::warn!(image = %source, reason = e.reason(), error = %e, "a copy queued by the webhook failed");
            }
        });
        queued += 1;
    }
    queued
}
