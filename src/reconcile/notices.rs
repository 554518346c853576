//! The memory behind [`report::once_per_episode`]: per workload, the once-per-episode Event
//! reasons (a registry rate-limiting us, a pull budget at its reserve, a private source)
//! published by its last reconcile. A workload retried ten times against a throttling
//! registry gets one `RateLimited` Event, not ten (the Event recorder would otherwise bump a
//! series — one more API write — at every retry).

use std::collections::{BTreeSet, HashMap};
use std::sync::{Mutex, PoisonError};

use crate::reconcile::report::{self, Notice};

#[derive(Debug, Default)]
pub struct EpisodeNotices {
    published: Mutex<HashMap<String, BTreeSet<&'static str>, foldhash::fast::RandomState>>,
}

impl EpisodeNotices {
    /// The notices of this reconcile of `workload` worth publishing; remembers the episode.
    /// A reconcile that meets none of the reasons ends the workload's episode (and entry).
    pub fn filter(&self, workload: &str, notices: Vec<Notice>) -> Vec<Notice> {
        let mut published = self
            .published
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let before = published.remove(workload).unwrap_or_default();
        let (keep, met) = report::once_per_episode(notices, &before);
        if !met.is_empty() {
            published.insert(workload.to_owned(), met);
        }
        keep
    }

    /// Workloads in an episode now (for tests and the logs).
    pub fn len(&self) -> usize {
        self.published
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reconcile::reasons;

    fn notice(reason: &'static str) -> Notice {
        Notice {
            warning: true,
            reason,
            note: format!("{reason} now"),
        }
    }

    #[test]
    fn a_rate_limit_is_told_once_per_episode() {
        let memory = EpisodeNotices::default();
        let retry = || vec![notice(reasons::RATE_LIMITED), notice("SourceUnavailable")];
        assert_eq!(memory.filter("w", retry()).len(), 2, "first retry: both");
        let again = memory.filter("w", retry());
        assert_eq!(again, [notice("SourceUnavailable")], "then only the other");
        assert_eq!(memory.filter("other", retry()).len(), 2, "per workload");
        // The reconcile that no longer meets the limit ends the episode...
        assert!(memory.filter("w", Vec::new()).is_empty());
        assert_eq!(memory.len(), 1);
        // ...and the next limit is news again.
        assert_eq!(memory.filter("w", retry()).len(), 2);
    }
}
