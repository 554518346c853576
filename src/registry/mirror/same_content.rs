//! Copies of one content into one backup repository, one after the other.
//!
//! `app:2.0@sha256:X` and `app@sha256:X` are two sources with two backup tags in one backup
//! repository, and the same blobs. Copied side by side, two skopeo processes upload the same
//! blobs into the same repository at once, and the distribution registry's filesystem storage
//! (docker-registry 2.8) now and then answers one of the blob checks with 500 — its link files
//! are written in place, and one is read half-written (distribution issues #1116, #1645) — so
//! one copy fails. One after the other, the second copy finds every blob in place and uploads
//! none, only its manifest and tag. Copies of different content, into the same repository or
//! not, still run side by side.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, Weak};

use tokio::sync::OwnedMutexGuard;

use crate::image::reference::{Digest, ImageRef};

/// One lock per (backup repository, content digest) being copied; an entry lives as long as a
/// copy holds or waits for it.
#[derive(Default)]
pub(super) struct SameContent {
    locks: Mutex<HashMap<String, Weak<tokio::sync::Mutex<()>>>>,
}

impl SameContent {
    /// Waits until no other copy of `digest` into `backup`'s repository runs; the copy may run
    /// while the guard is held.
    pub(super) async fn turn(&self, backup: &ImageRef, digest: &Digest) -> OwnedMutexGuard<()> {
        let key = format!("{}@{digest}", backup.repository());
        let lock = {
            let mut locks = self.locks.lock().unwrap_or_else(PoisonError::into_inner);
            // Entries no copy holds any more go: the map never outgrows the copies under way.
            locks.retain(|_, lock| lock.strong_count() > 0);
            match locks.get(&key).and_then(Weak::upgrade) {
                Some(lock) => lock,
                None => {
                    let lock = Arc::new(tokio::sync::Mutex::new(()));
                    locks.insert(key, Arc::downgrade(&lock));
                    lock
                }
            }
        };
        lock.lock_owned().await
    }

    /// Copies holding or waiting for a turn, by key (for tests).
    #[cfg(test)]
    pub(super) fn under_way(&self) -> usize {
        let locks = self.locks.lock().unwrap_or_else(PoisonError::into_inner);
        locks.values().filter(|l| l.strong_count() > 0).count()
    }
}
