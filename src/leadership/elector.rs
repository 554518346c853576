//! Taking and renewing the Lease, through `kube-lease-manager`: it acquires a free Lease with a
//! server-side apply (two replicas applying at once conflict, one wins), takes over one whose
//! holder stopped renewing for its duration, renews while held, and releases it when told.
//! What it does not tell — each renewal — [`follow`](super::follow) reads from the Lease.

use std::time::Duration;

use kube::Client;
use kube_lease_manager::{LeaseManager, LeaseManagerBuilder};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::leadership::error::LeadershipError;
use crate::leadership::validity::Timing;
use crate::settings::LeaseSettings;

/// A release that takes longer is abandoned: the Lease then expires on its own.
const RELEASE_TIMEOUT: Duration = Duration::from_secs(5);

/// The running Lease manager; dropping its channel makes it release the Lease.
pub struct Elector {
    channel: watch::Receiver<bool>,
    task: JoinHandle<kube_lease_manager::Result<LeaseManager>>,
}

/// Joins the election: creates the Lease when missing, then contends in a task of its own.
pub async fn join(
    client: Client,
    lease: &LeaseSettings,
    identity: &str,
    timing: Timing,
) -> Result<Elector, LeadershipError> {
    let manager = LeaseManagerBuilder::new(client, &lease.name)
        .with_namespace(&lease.namespace)
        .with_identity(identity)
        .with_field_manager(format!("image-cloner-{identity}"))
        .with_duration(timing.duration.as_secs())
        .with_grace(timing.grace.as_secs())
        .build()
        .await
        .map_err(|source| LeadershipError::Join {
            namespace: lease.namespace.clone(),
            name: lease.name.clone(),
            source,
        })?;
    let (channel, task) = manager.watch().await;
    Ok(Elector { channel, task })
}

impl Elector {
    /// Releases the Lease (when held), so a standby leads at once instead of after the
    /// Lease's duration.
    pub async fn release(self) {
        let Elector { channel, task } = self;
        drop(channel);
        match tokio::time::timeout(RELEASE_TIMEOUT, task).await {
            Ok(Ok(Ok(_))) => tracing::info!("left the leader election"),
            Ok(Ok(Err(e))) => {
                tracing::warn!(error = %e, "releasing the Lease; it expires on its own")
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "the Lease manager ended abnormally; the Lease expires on its own")
            }
            Err(_) => tracing::warn!("releasing the Lease took too long; it expires on its own"),
        }
    }
}
