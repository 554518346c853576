//! High availability: several replicas (pods, or bastion hosts) share one
//! `coordination.k8s.io/v1` Lease, and only its holder copies and writes.
//!
//! - [`elector`] takes, renews and releases the Lease (`kube-lease-manager`);
//! - [`follow`] watches the Lease and moves the [`Validity`] — the [`WriteGuard`] every patch,
//!   Event and copy asks — at each renewal, so a leader that cannot renew stops writing
//!   before its Lease can expire, whatever its background tasks believe;
//! - [`announce`] says so: log, Event, gauge, and on becoming leader a reconcile of every
//!   cached workload (standbys keep their caches warm but reconcile nothing).
//!
//! Imports run downward: reconcile owns the guard's rule, this folder implements it, and the
//! daemon (commands/run) wires both together.
//!
//! [`WriteGuard`]: crate::reconcile::guard::WriteGuard

pub mod announce;
pub mod elector;
pub mod error;
pub mod follow;
pub mod identity;
pub mod validity;

use std::sync::Arc;

use kube::Client;
use kube::api::Api;
use kube::runtime::events::{Recorder, Reporter};
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

use self::announce::Announcer;
pub use self::announce::LeadershipObserver;
use self::elector::Elector;
pub use self::error::LeadershipError;
pub use self::validity::{Timing, Validity};
use crate::reconcile::guard::WriteGuard as _;
use crate::settings::LeaseSettings;

/// This replica's part in the election, from joining to stepping down.
pub struct Leadership {
    validity: Arc<Validity>,
    elector: Elector,
    follower: JoinHandle<()>,
    announcer: Arc<Announcer>,
}

impl Leadership {
    /// The guard to give every writer before the election starts: it denies until this
    /// replica is seen holding the Lease.
    pub fn guard(lease: &LeaseSettings) -> Arc<Validity> {
        Arc::new(Validity::new(Timing::of(lease.duration)))
    }

    /// Joins the election on `lease` as `identity`; `everything` is sent on becoming leader.
    pub async fn join(
        client: Client,
        lease: &LeaseSettings,
        identity: &str,
        validity: Arc<Validity>,
        observer: Arc<dyn LeadershipObserver>,
        everything: broadcast::Sender<()>,
    ) -> Result<Leadership, LeadershipError> {
        let timing = validity.timing();
        tracing::info!(
            lease = %format!("{}/{}", lease.namespace, lease.name),
            identity,
            duration = ?timing.duration,
            renew_every = ?timing.renew_period(),
            stop_writing_before_expiry = ?timing.margin,
            "joining the leader election: only the holder of the Lease copies and writes"
        );
        observer.leading(false);
        let reporter = Reporter {
            controller: "image-cloner".into(),
            instance: Some(identity.to_owned()),
        };
        let announcer = Arc::new(Announcer::new(
            identity.to_owned(),
            Recorder::new(client.clone(), reporter),
            observer,
            everything,
        ));
        let elector = elector::join(client.clone(), lease, identity, timing).await?;
        let follower = tokio::spawn(follow::follow(
            Api::namespaced(client, &lease.namespace),
            lease.name.clone(),
            identity.to_owned(),
            Arc::clone(&validity),
            Arc::clone(&announcer),
        ));
        Ok(Leadership {
            validity,
            elector,
            follower,
            announcer,
        })
    }

    /// Stops writing, says so, and releases the Lease so that a standby leads at once. Called
    /// once the controllers have stopped.
    pub async fn step_down(self) {
        let was_leading = self.validity.allows();
        self.validity.revoke();
        self.follower.abort();
        if was_leading {
            self.announcer.stepped_down().await;
        }
        self.elector.release().await;
    }
}
