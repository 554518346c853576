//! At most [`QUESTIONS_PER_REGISTRY`] questions in flight to one registry; the rest wait their
//! turn, first come first served.
//!
//! A cold start asks every source's registry about each of its images at once (the privacy
//! screen: 50 questions in the cold bench), and each question in flight held a connection of
//! its own: 30–50 connections opened to one registry in the first milliseconds, each with its
//! TCP and HTTP set-up and buffers, only to be closed again by the pool. A registry is also
//! owed some restraint (Docker Hub counts what it is sent). Taking turns, the questions reuse a
//! few kept-alive connections.
//!
//! A turn covers one whole question (its HEAD, a token asked for it, the HEAD again), and is
//! taken before the question's timeout starts: waiting for a turn is not the registry being
//! slow.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Questions in flight to one registry at once.
pub const QUESTIONS_PER_REGISTRY: usize = 8;

/// The turns of each registry asked so far, by its lowercase domain.
#[derive(Default)]
pub struct Turns {
    registries: Mutex<HashMap<String, Arc<Semaphore>>>,
}

impl Turns {
    /// Waits for a turn at `domain` (lowercase); the turn ends when the permit is dropped.
    /// (`None` only if the semaphore were closed, which nothing does: the question then goes
    /// ahead without a turn rather than not at all.)
    pub async fn take(&self, domain: &str) -> Option<OwnedSemaphorePermit> {
        let registry = {
            let mut registries = self
                .registries
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if let Some(turns) = registries.get(domain) {
                Arc::clone(turns)
            } else {
                let turns = Arc::new(Semaphore::new(QUESTIONS_PER_REGISTRY));
                registries.insert(domain.to_owned(), Arc::clone(&turns));
                turns
            }
        };
        registry.acquire_owned().await.ok()
    }
}
