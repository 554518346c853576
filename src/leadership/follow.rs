//! Following the Lease: a watch on that one object tells this replica, at every renewal,
//! whether it holds the Lease and since when; the [`Validity`] every write asks is moved from
//! here. The Lease manager's own channel is not enough for that: it reports changes of holder
//! but not renewals, and keeps saying "leader" while renewals fail.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::jiff::Timestamp;
use kube::api::Api;
use kube::runtime::{WatchStreamExt as _, watcher};

use crate::leadership::announce::Announcer;
use crate::leadership::validity::Validity;

/// What a Lease says about this replica.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Holding {
    /// It holds the Lease, last renewed `ago` before the time asked about, for `duration`.
    Mine { ago: Duration, duration: Duration },
    /// Another replica holds it (named), or nobody does.
    Other(Option<String>),
}

/// What `lease` says about `identity` at `now` (pure). A Lease naming this replica without a
/// renew time or a duration is not one it can count on.
pub fn holding(lease: &Lease, identity: &str, now: Timestamp) -> Holding {
    let Some(spec) = &lease.spec else {
        return Holding::Other(None);
    };
    let holder = spec.holder_identity.clone().filter(|h| !h.is_empty());
    if holder.as_deref() != Some(identity) {
        return Holding::Other(holder);
    }
    match (&spec.renew_time, spec.lease_duration_seconds) {
        (Some(renewed), Some(seconds)) if seconds > 0 => {
            let ago = Duration::try_from(now.duration_since(renewed.0)).unwrap_or(Duration::ZERO);
            Holding::Mine {
                ago,
                duration: Duration::from_secs(u64::from(seconds.unsigned_abs())),
            }
        }
        _ => Holding::Other(holder),
    }
}

/// Why this replica is not leading, for the log and the Event.
fn why_not(holding: Option<&Holding>) -> String {
    match holding {
        Some(Holding::Other(Some(holder))) => format!("the Lease is held by {holder}"),
        Some(Holding::Other(None)) => "the Lease has no holder".to_owned(),
        Some(Holding::Mine { .. }) => {
            "the Lease was not renewed in time (is the API server reachable?)".to_owned()
        }
        None => "the Lease is gone".to_owned(),
    }
}

/// The follower's memory between two events.
struct State {
    leading: bool,
    /// The last word of the Lease; `None` before the first, or after it was deleted.
    last: Option<Holding>,
    /// A re-list found the Lease (a re-list that finds nothing is a deletion).
    listed: bool,
}

/// Follows the Lease until the watch ends (it ends only when the task is aborted).
pub async fn follow(
    api: Api<Lease>,
    name: String,
    identity: String,
    validity: Arc<Validity>,
    announcer: Arc<Announcer>,
) {
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let events = watcher(api, config).default_backoff();
    tokio::pin!(events);
    let mut state = State {
        leading: false,
        last: None,
        listed: false,
    };
    loop {
        let deadline = validity.until().filter(|d| *d > Instant::now());
        tokio::select! {
            event = events.next() => match event {
                Some(Ok(event)) => state.on_event(event, &identity, &validity, &announcer),
                Some(Err(e)) => tracing::warn!(lease = %name, error = %e, "watching the Lease; retrying"),
                None => return,
            },
            () = sleep_until(deadline), if deadline.is_some() => {}
        }
        state.settle(&validity, &announcer);
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    if let Some(d) = deadline {
        tokio::time::sleep_until(tokio::time::Instant::from_std(d)).await;
    }
}

impl State {
    fn on_event(
        &mut self,
        event: watcher::Event<Lease>,
        identity: &str,
        validity: &Validity,
        announcer: &Announcer,
    ) {
        let lease = match event {
            watcher::Event::Init => {
                self.listed = false;
                return;
            }
            watcher::Event::InitDone if !self.listed => {
                validity.revoke();
                self.last = None;
                return;
            }
            watcher::Event::InitDone => return,
            watcher::Event::Delete(_) => {
                validity.revoke();
                self.last = None;
                return;
            }
            watcher::Event::Apply(lease) | watcher::Event::InitApply(lease) => lease,
        };
        self.listed = true;
        announcer.seen(&lease);
        let now = Instant::now();
        let holding = holding(&lease, identity, Timestamp::now());
        match &holding {
            Holding::Mine { ago, duration } => validity.renewed(now, *ago, *duration),
            Holding::Other(holder) => {
                validity.revoke();
                let before = match &self.last {
                    Some(Holding::Other(h)) => h.as_ref(),
                    _ => None,
                };
                if holder.is_some() && holder.as_ref() != before {
                    tracing::info!(
                        holder = holder.as_deref(),
                        "the Lease is held by another replica"
                    );
                }
            }
        }
        self.last = Some(holding);
    }

    /// Announces a change of leadership, whatever caused it (an event or the time).
    fn settle(&mut self, validity: &Validity, announcer: &Announcer) {
        let leading = validity.permission_at(Instant::now()).allows();
        if !leading && validity.until().is_some() {
            validity.revoke(); // passed: the next deadline is the next renewal's
        }
        if leading == self.leading {
            return;
        }
        self.leading = leading;
        if leading {
            announcer.gained();
        } else {
            announcer.lost(&why_not(self.last.as_ref()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(holder: Option<&str>, renewed: Option<Timestamp>, seconds: Option<i32>) -> Lease {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "image-cloner", "namespace": "ha"},
            "spec": {
                "holderIdentity": holder,
                "renewTime": renewed.map(k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime),
                "leaseDurationSeconds": seconds,
            }
        }))
        .expect("a Lease")
    }

    #[test]
    fn a_lease_renewed_by_this_replica_is_its_own() {
        // Whole seconds: a Lease keeps microseconds.
        let now = Timestamp::from_second(Timestamp::now().as_second()).expect("a time");
        let renewed = now - k8s_openapi::jiff::SignedDuration::from_secs(3);
        assert_eq!(
            holding(&lease(Some("me_1"), Some(renewed), Some(15)), "me_1", now),
            Holding::Mine {
                ago: Duration::from_secs(3),
                duration: Duration::from_secs(15)
            }
        );
    }

    #[test]
    fn a_renew_time_ahead_of_this_clock_counts_as_now() {
        let now = Timestamp::now();
        let ahead = now + k8s_openapi::jiff::SignedDuration::from_secs(2);
        assert_eq!(
            holding(&lease(Some("me_1"), Some(ahead), Some(15)), "me_1", now),
            Holding::Mine {
                ago: Duration::ZERO,
                duration: Duration::from_secs(15)
            }
        );
    }

    #[test]
    fn another_holder_or_an_incomplete_lease_is_not_this_replicas() {
        let now = Timestamp::now();
        assert_eq!(
            holding(&lease(Some("other_2"), Some(now), Some(15)), "me_1", now),
            Holding::Other(Some("other_2".into()))
        );
        assert_eq!(
            holding(&lease(None, None, None), "me_1", now),
            Holding::Other(None)
        );
        assert_eq!(
            holding(&lease(Some("me_1"), None, Some(15)), "me_1", now),
            Holding::Other(Some("me_1".into()))
        );
        assert_eq!(
            holding(&lease(Some("me_1"), Some(now), None), "me_1", now),
            Holding::Other(Some("me_1".into()))
        );
    }

    #[test]
    fn losing_says_why() {
        assert!(why_not(Some(&Holding::Other(Some("b_2".into())))).contains("held by b_2"));
        assert!(why_not(None).contains("gone"));
        let renewed_too_late = Holding::Mine {
            ago: Duration::ZERO,
            duration: Duration::from_secs(15),
        };
        assert!(why_not(Some(&renewed_too_late)).contains("not renewed in time"));
    }
}
