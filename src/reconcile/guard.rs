//! Whether this replica may write now: asked before every patch, every Event and every copy
//! the mirror starts.
//!
//! With leader election, only the replica holding the Lease writes, and it must stop before
//! its Lease can expire — not when a background task notices, but at each write. The rule
//! belongs to reconcile (it makes the writes); leadership implements it; the mirror reaches it
//! through [`copy_gate`], since the registry layer cannot import reconcile.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::registry::mirror::CopyGate;

/// What a [`WriteGuard`] allows at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    /// No leader election: always.
    Always,
    /// Leading, and certainly until then (the Lease's validity, less a safety margin): a
    /// write must be answered before it, or be abandoned.
    Until(Instant),
    /// Not leading (a standby, or a leader that could not renew in time).
    Denied,
}

impl Permission {
    pub fn allows(self) -> bool {
        match self {
            Permission::Always => true,
            Permission::Until(until) => Instant::now() < until,
            Permission::Denied => false,
        }
    }

    /// How long a write started now may wait for its answer: `limit`, cut to what is left of
    /// the permission; `None` when it may not start at all.
    pub fn budget(self, limit: Duration) -> Option<Duration> {
        match self {
            Permission::Always => Some(limit),
            Permission::Until(until) => until
                .checked_duration_since(Instant::now())
                .filter(|left| !left.is_zero())
                .map(|left| left.min(limit)),
            Permission::Denied => None,
        }
    }
}

/// Asked before each write.
pub trait WriteGuard: Send + Sync {
    fn permission(&self) -> Permission;

    fn allows(&self) -> bool {
        self.permission().allows()
    }
}

/// The guard of a daemon without leader election, of `run --once` and of `plan`.
pub struct Unguarded;

impl WriteGuard for Unguarded {
    fn permission(&self) -> Permission {
        Permission::Always
    }
}

/// The mirror's view of a write guard: no copy starts while it denies.
pub fn copy_gate(guard: Arc<dyn WriteGuard>) -> Arc<dyn CopyGate> {
    Arc::new(GuardGate(guard))
}

struct GuardGate(Arc<dyn WriteGuard>);

impl CopyGate for GuardGate {
    fn may_copy(&self) -> bool {
        self.0.allows()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_permission_ends_when_it_says() {
        let now = Instant::now();
        assert!(Permission::Always.allows());
        assert!(!Permission::Denied.allows());
        assert!(Permission::Until(now + Duration::from_secs(60)).allows());
        assert!(!Permission::Until(now).allows());
    }

    #[test]
    fn a_write_waits_no_longer_than_the_permission_lasts() {
        let limit = Duration::from_secs(30);
        assert_eq!(Permission::Always.budget(limit), Some(limit));
        assert_eq!(Permission::Denied.budget(limit), None);
        let soon = Permission::Until(Instant::now() + Duration::from_secs(2));
        let budget = soon.budget(limit).expect("still allowed");
        assert!(budget <= Duration::from_secs(2), "{budget:?}");
        let later = Permission::Until(Instant::now() + Duration::from_secs(3600));
        assert_eq!(later.budget(limit), Some(limit));
        let past = Instant::now()
            .checked_sub(Duration::from_secs(1))
            .expect("an instant in the past");
        assert_eq!(Permission::Until(past).budget(limit), None);
    }
}
