//! Why leader election could not start.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum LeadershipError {
    #[error(
        "joining the leader election on Lease {namespace}/{name} (can the daemon get, create and patch it?): {source}"
    )]
    Join {
        namespace: String,
        name: String,
        #[source]
        source: kube_lease_manager::LeaseManagerError,
    },
}
