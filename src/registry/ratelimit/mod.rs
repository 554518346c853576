//! Per-registry gates: a registry that answers `429 Too Many Requests` is paused — that
//! registry alone — for as long as its `Retry-After` asks, longer with each 429 in a row
//! (backoff from 1 s, doubling, capped at 5 min), and every request to it waits on its gate.
//!
//! A burst against a rate limit is what makes it last: without a gate, each of the images and
//! workloads waiting on one registry would retry on its own clock. With it, nothing is sent to
//! a throttling registry before it said to come back, and the other registries never notice.
//! A wait longer than `max_wait` is not waited inline: [`Gates::wait`] answers [`Paused`] at
//! once, without a request, and the caller (a reconcile) is retried later by its own backoff.
//!
//! Time is `tokio::time`, so the rules are tested with a paused clock.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

/// The pause after the first 429 that gave no `Retry-After`; doubled per 429 in a row.
const BACKOFF_BASE: Duration = Duration::from_secs(1);
const BACKOFF_CAP: Duration = Duration::from_secs(300);

/// A registry that is paused for longer than a caller may wait inline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paused {
    pub registry: String,
    /// How long the pause still lasts.
    pub remaining: Duration,
}

#[derive(Debug, Default)]
struct Gate {
    /// No request before this.
    until: Option<Instant>,
    /// 429s in a row, for the backoff.
    strikes: u32,
}

/// The gates of every registry asked so far, by host (`docker.io` for Docker Hub).
#[derive(Debug)]
pub struct Gates {
    gates: Mutex<HashMap<String, Gate>>,
    max_wait: Duration,
}

/// The pause after `strikes` 429s in a row with no `Retry-After`.
pub fn backoff(strikes: u32) -> Duration {
    let doublings = strikes.saturating_sub(1).min(16);
    BACKOFF_BASE
        .saturating_mul(2u32.saturating_pow(doublings))
        .min(BACKOFF_CAP)
}

fn key(registry: &str) -> String {
    match registry.to_ascii_lowercase().as_str() {
        "index.docker.io" | "registry-1.docker.io" => "docker.io".to_owned(),
        r => r.to_owned(),
    }
}

impl Gates {
    /// `max_wait`: the longest pause a request waits out inline.
    pub fn new(max_wait: Duration) -> Self {
        Gates {
            gates: Mutex::default(),
            max_wait,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Gate>> {
        // Plain values updated in single statements: consistent after a panic elsewhere.
        self.gates.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// How long `registry` is still paused (`None`: open).
    pub fn paused(&self, registry: &str) -> Option<Duration> {
        let until = self.lock().get(&key(registry))?.until?;
        let now = Instant::now();
        (until > now).then(|| until - now)
    }

    /// Resolves when a request may go to `registry`: at once when its gate is open, after the
    /// pause when it is shorter than `max_wait`, else at once with [`Paused`].
    pub async fn wait(&self, registry: &str) -> Result<(), Paused> {
        // A loop: a 429 to another request may extend the pause while this one sleeps.
        while let Some(remaining) = self.paused(registry) {
            if remaining > self.max_wait {
                return Err(Paused {
                    registry: key(registry),
                    remaining,
                });
            }
            tokio::time::sleep(remaining).await;
        }
        Ok(())
    }

    /// `registry` answered 429: pauses it for `retry_after`, or the backoff of this many 429s
    /// in a row when that is longer; never shortens a pause already set. The pause set.
    pub fn throttled(&self, registry: &str, retry_after: Option<Duration>) -> Duration {
        let mut gates = self.lock();
        let gate = gates.entry(key(registry)).or_default();
        gate.strikes = gate.strikes.saturating_add(1);
        let pause = retry_after.unwrap_or_default().max(backoff(gate.strikes));
        let until = Instant::now() + pause;
        gate.until = Some(gate.until.map_or(until, |u| u.max(until)));
        pause
    }

    /// `registry` answered something other than 429: the backoff starts over.
    pub fn answered(&self, registry: &str) {
        if let Some(gate) = self.lock().get_mut(&key(registry)) {
            gate.strikes = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether `wait` on `registry` is still pending after `after` of virtual time.
    async fn still_waiting(gates: &std::sync::Arc<Gates>, registry: &str, after: Duration) -> bool {
        let (g, r) = (std::sync::Arc::clone(gates), registry.to_owned());
        let task = tokio::spawn(async move { g.wait(&r).await });
        tokio::time::sleep(after).await;
        let pending = !task.is_finished();
        task.abort();
        pending
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_is_waited_out_on_that_registry_alone() {
        let gates = std::sync::Arc::new(Gates::new(Duration::from_secs(60)));
        assert_eq!(gates.wait("docker.io").await, Ok(()), "open at first");
        let pause = gates.throttled("docker.io", Some(Duration::from_secs(3)));
        assert_eq!(pause, Duration::from_secs(3));
        assert!(still_waiting(&gates, "docker.io", Duration::from_millis(2990)).await);
        // Another registry is not paused, and Docker Hub's other names share its gate.
        let before = Instant::now();
        assert_eq!(gates.wait("ghcr.io").await, Ok(()));
        assert_eq!(Instant::now(), before, "ghcr.io answered without a wait");
        assert!(gates.paused("index.docker.io").is_some());
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(gates.paused("docker.io"), None);
        assert_eq!(gates.wait("docker.io").await, Ok(()));
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiter_honours_a_pause_extended_while_it_sleeps() {
        let gates = std::sync::Arc::new(Gates::new(Duration::from_secs(60)));
        gates.throttled("quay.io", Some(Duration::from_secs(2)));
        let g = std::sync::Arc::clone(&gates);
        let waiter = tokio::spawn(async move {
            g.wait("quay.io").await.expect("short enough to wait");
            Instant::now()
        });
        let start = Instant::now();
        tokio::time::sleep(Duration::from_secs(1)).await;
        // Another request met a 429 meanwhile: 10 s more from now.
        gates.throttled("quay.io", Some(Duration::from_secs(10)));
        let released = waiter.await.expect("the waiter");
        assert!(
            released - start >= Duration::from_secs(11),
            "{:?}",
            released - start
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_long_pause_is_not_waited_inline() {
        let gates = Gates::new(Duration::from_secs(60));
        gates.throttled("docker.io", Some(Duration::from_secs(600)));
        let paused = gates.wait("docker.io").await.expect_err("too long to wait");
        assert_eq!(paused.registry, "docker.io");
        assert_eq!(paused.remaining, Duration::from_secs(600));
    }

    #[tokio::test(start_paused = true)]
    async fn without_retry_after_the_pause_doubles_until_an_answer() {
        let gates = Gates::new(Duration::from_secs(60));
        let pauses: Vec<u64> = (0..4)
            .map(|_| gates.throttled("ghcr.io", None).as_secs())
            .collect();
        assert_eq!(pauses, [1, 2, 4, 8]);
        // A Retry-After shorter than the backoff does not shorten it.
        assert_eq!(
            gates.throttled("ghcr.io", Some(Duration::from_secs(1))),
            Duration::from_secs(16)
        );
        gates.answered("ghcr.io");
        assert_eq!(gates.throttled("ghcr.io", None), Duration::from_secs(1));
        assert_eq!(backoff(100), BACKOFF_CAP);
    }
}
