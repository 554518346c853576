//! How long this replica surely leads: the [`WriteGuard`] every write asks.
//!
//! The holder renews its Lease when a third of the duration is left (the *grace*); a standby
//! takes the Lease once `renewTime + duration` has passed by its own clock. This replica
//! writes only until `renewTime + duration − margin` by its own (the renew time it wrote
//! itself, read back from the Lease), where the margin is half the grace: it covers clock skew
//! between replicas and a write sent just before the end. A renewal that arrives in time moves
//! the end on, so a healthy leader never pauses; one that cannot renew stops writing before
//! any standby may start.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::reconcile::guard::{Permission, WriteGuard};

/// The timing of one Lease, derived from its duration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    pub duration: Duration,
    /// The holder renews when this much of the duration is left (whole seconds: the Lease
    /// manager counts in seconds).
    pub grace: Duration,
    /// Writes stop this long before the Lease can expire.
    pub margin: Duration,
}

impl Timing {
    /// For durations of 3 s and more (the settings allow 5 s to 5 min).
    pub fn of(duration: Duration) -> Timing {
        let seconds = duration.as_secs().max(3);
        let grace = Duration::from_secs((seconds / 3).max(1));
        Timing {
            duration: Duration::from_secs(seconds),
            grace,
            margin: grace / 2,
        }
    }

    /// Time between two renewals of a healthy holder.
    pub fn renew_period(&self) -> Duration {
        self.duration - self.grace
    }
}

/// Until when this replica may write; shared by the Lease follower (which moves it) and every
/// writer (which asks it).
#[derive(Debug)]
pub struct Validity {
    timing: Timing,
    until: Mutex<Option<Instant>>,
}

impl Validity {
    pub fn new(timing: Timing) -> Validity {
        Validity {
            timing,
            until: Mutex::new(None),
        }
    }

    pub fn timing(&self) -> Timing {
        self.timing
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Instant>> {
        self.until.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The Lease shows this replica renewed it `ago` before `now`, for `duration`.
    pub fn renewed(&self, now: Instant, ago: Duration, duration: Duration) {
        let end = now
            .checked_sub(ago)
            .and_then(|renewed| renewed.checked_add(duration.saturating_sub(self.timing.margin)));
        *self.lock() = end.filter(|end| *end > now);
    }

    /// The Lease is not (or no longer surely) ours.
    pub fn revoke(&self) {
        *self.lock() = None;
    }

    /// The end of the current permission, if any (it may have passed).
    pub fn until(&self) -> Option<Instant> {
        *self.lock()
    }

    pub fn permission_at(&self, now: Instant) -> Permission {
        match self.until() {
            Some(until) if now < until => Permission::Until(until),
            _ => Permission::Denied,
        }
    }
}

impl WriteGuard for Validity {
    fn permission(&self) -> Permission {
        self.permission_at(Instant::now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const fn s(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn the_default_lease_renews_every_ten_seconds_and_writes_stop_two_and_a_half_early() {
        let t = Timing::of(s(15));
        assert_eq!(
            (t.grace, t.margin, t.renew_period()),
            (s(5), Duration::from_millis(2500), s(10))
        );
        for seconds in [5, 6, 15, 60, 300] {
            let t = Timing::of(s(seconds));
            // A healthy leader renews before its writes stop, and stops before a standby may
            // take over.
            assert!(t.renew_period() < t.duration - t.margin, "{t:?}");
            assert!(t.margin > Duration::ZERO && t.grace < t.duration, "{t:?}");
        }
    }

    #[test]
    fn writes_are_allowed_until_the_margin_before_expiry() {
        let v = Validity::new(Timing::of(s(15)));
        let now = Instant::now();
        assert_eq!(v.permission_at(now), Permission::Denied);
        v.renewed(now, s(1), s(15));
        let until = now + s(14) - Duration::from_millis(2500);
        assert_eq!(v.permission_at(now), Permission::Until(until));
        assert_eq!(v.permission_at(until), Permission::Denied);
        v.revoke();
        assert_eq!(v.permission_at(now), Permission::Denied);
    }

    #[test]
    fn a_renewal_seen_too_late_gives_nothing() {
        let v = Validity::new(Timing::of(s(15)));
        let now = Instant::now();
        v.renewed(now, s(13), s(15));
        assert_eq!(v.permission_at(now), Permission::Denied);
    }
}
