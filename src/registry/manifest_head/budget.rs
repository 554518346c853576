//! Docker Hub's pull budget: the `ratelimit-remaining: 76;w=21600` header of its manifest
//! answers (HEADs included, which do not spend it). Copies spend it; `pull_budget_reserve`
//! keeps some of it for the nodes, which pull through the same account or address.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

/// The last remaining budget each registry reported, less the pulls taken since.
#[derive(Debug, Default)]
pub(super) struct Budgets(Mutex<HashMap<String, u64>>);

/// `76;w=21600` → 76.
pub(super) fn parse_remaining(value: &str) -> Option<u64> {
    value.split(';').next()?.trim().parse().ok()
}

impl Budgets {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, u64>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records what an answer from `registry` says is left, if it says.
    pub(super) fn record(&self, registry: &str, headers: &http::HeaderMap) {
        let remaining = headers
            .get("ratelimit-remaining")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_remaining);
        if let Some(n) = remaining {
            self.lock().insert(registry.to_ascii_lowercase(), n);
        }
    }

    /// One pull from `registry`, unless the budget is known and would fall to `reserve` or
    /// below: `Err(remaining)` then. Counted down locally, so that copies started together
    /// do not all spend the last pulls above the reserve.
    pub(super) fn take(&self, registry: &str, reserve: u64) -> Result<(), u64> {
        let mut budgets = self.lock();
        match budgets.get_mut(&registry.to_ascii_lowercase()) {
            None => Ok(()),
            Some(n) if *n <= reserve => Err(*n),
            Some(n) => {
                *n -= 1;
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(value: &str) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        h.insert(
            "ratelimit-remaining",
            value.parse().expect("a header value"),
        );
        h
    }

    #[test]
    fn the_reserve_is_kept() {
        let b = Budgets::default();
        assert_eq!(b.take("docker.io", 5), Ok(()), "unknown: not held back");
        b.record("docker.io", &headers("7;w=21600"));
        assert_eq!(b.take("docker.io", 5), Ok(()));
        assert_eq!(b.take("docker.io", 5), Ok(()));
        assert_eq!(
            b.take("docker.io", 5),
            Err(5),
            "two pulls left 5, the reserve"
        );
        assert_eq!(
            b.take("ghcr.io", 5),
            Ok(()),
            "other registries are not held back"
        );
        b.record("docker.io", &headers("100;w=21600"));
        assert_eq!(b.take("docker.io", 5), Ok(()), "a fresh answer refills it");
        b.record("docker.io", &headers("garbage"));
        assert_eq!(
            b.take("docker.io", 98),
            Ok(()),
            "an unreadable value changes nothing"
        );
        assert_eq!(b.take("docker.io", 98), Err(98));
    }

    #[test]
    fn remaining_is_read_before_the_window() {
        assert_eq!(parse_remaining("76;w=21600"), Some(76));
        assert_eq!(parse_remaining(" 0 "), Some(0));
        assert_eq!(parse_remaining("-1"), None);
    }
}
