//! Copies into one backup repository, one after the other.
//!
//! Two copies into one backup repository usually share blobs: `app:2.0@sha256:X` and
//! `app@sha256:X` (one content, two backup tags) share all of them, and `app:1.0` and `app:1.1`
//! their base layers. Copied side by side, two skopeo processes each find a shared blob missing
//! and upload it into the same repository at once, and the distribution registry's filesystem
//! storage (docker-registry 2.8; Harbor's and GitLab's registries on a filesystem) now and then
//! answers one of the blob checks with 500 — its link files are written in place, and one is
//! read half-written (distribution issues #1116, #1645) — so one copy fails and waits for its
//! backoff. One after the other, the second copy finds the shared blobs in place and uploads
//! only what is its own. The turn is taken before a copy slot, so a copy waiting for it holds
//! no slot: copies into other repositories take the free ones.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, Weak};

use tokio::sync::OwnedMutexGuard;

use crate::image::reference::ImageRef;

/// One lock per backup repository being copied into; an entry lives as long as a copy holds or
/// waits for it.
#[derive(Default)]
pub(super) struct SameRepository {
    locks: Mutex<HashMap<String, Weak<tokio::sync::Mutex<()>>>>,
}

impl SameRepository {
    /// Waits until no other copy into `backup`'s repository runs; the copy may run while the
    /// guard is held.
    pub(super) async fn turn(&self, backup: &ImageRef) -> OwnedMutexGuard<()> {
        let key = backup.repository();
        let lock = {
            let mut locks = self.locks.lock().unwrap_or_else(PoisonError::into_inner);
            // Entries no copy holds any more go: the map never outgrows the copies under way.
            locks.retain(|_, lock| lock.strong_count() > 0);
            match locks.get(key).and_then(Weak::upgrade) {
                Some(lock) => lock,
                None => {
                    let lock = Arc::new(tokio::sync::Mutex::new(()));
                    locks.insert(key.to_owned(), Arc::downgrade(&lock));
                    lock
                }
            }
        };
        lock.lock_owned().await
    }

    /// Repositories with a copy holding or waiting for a turn (for tests).
    #[cfg(test)]
    pub(super) fn under_way(&self) -> usize {
        let locks = self.locks.lock().unwrap_or_else(PoisonError::into_inner);
        locks.values().filter(|l| l.strong_count() > 0).count()
    }
}
