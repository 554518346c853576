//! A copy slot waits on nothing but skopeo: with one slot, the registry checks of the next image
//! are made while a copy holds it, and the next copy starts while the previous one is still
//! being verified. Were either step inside the slot, these tests would wait forever (their
//! paused clock then ends them at the deadline, as a failure).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::sync::Semaphore;

use super::*;
use crate::image::manifest::RawManifest;
use crate::registry::client::{LookupError, RegistryClient};
use crate::registry::skopeo::{CopyFormat, SkopeoError};

const BACKUP: &str = "backup.example.com/mirror";
/// Far longer than anything here takes; with the clock paused it passes only when every task
/// waits on something that never comes.
const DEADLINE: Duration = Duration::from_secs(60);

fn image(s: &str) -> ImageRef {
    ImageRef::parse(s).expect("a valid reference")
}

/// A registry whose copies and post-copy lookups wait until the test lets them go, and which
/// logs every step by image name (`app-a`, `app-b`).
struct Held {
    log: Mutex<Vec<String>>,
    /// Backup repositories copied to so far (their lookups are verifications from then on).
    copied: Mutex<HashSet<String>>,
    /// The source digest behind each backup repository written.
    served: Mutex<HashMap<String, Digest>>,
    copies: Semaphore,
    verifications: Semaphore,
}

/// `app-a` in `backup.example.com/mirror/docker.io_library_app-a:1` and in `app-a:1`.
fn name(image: &ImageRef) -> String {
    let path = image.path();
    let last = path.rsplit(['/', '_']).next().unwrap_or(path);
    last.to_owned()
}

impl Held {
    fn new() -> Arc<Self> {
        Arc::new(Held {
            log: Mutex::default(),
            copied: Mutex::default(),
            served: Mutex::default(),
            copies: Semaphore::new(0),
            verifications: Semaphore::new(0),
        })
    }

    fn note(&self, what: String) {
        self.log.lock().expect("lock").push(what);
    }

    fn logged(&self, what: &str) -> bool {
        self.log.lock().expect("lock").iter().any(|l| l == what)
    }
}

impl RegistryClient for Held {
    fn digest<'a>(
        &'a self,
        image: &'a ImageRef,
    ) -> BoxFuture<'a, Result<Option<Digest>, LookupError>> {
        Box::pin(async move {
            let who = name(image);
            let copied = self.copied.lock().expect("lock").contains(&who);
            if !copied {
                self.note(format!("check {who}"));
                return Ok(None);
            }
            self.note(format!("verify {who}"));
            self.verifications.acquire().await.expect("open").forget();
            self.note(format!("verified {who}"));
            Ok(self.served.lock().expect("lock").get(&who).cloned())
        })
    }

    fn resolve<'a>(
        &'a self,
        image: &'a ImageRef,
    ) -> BoxFuture<'a, Result<Option<RawManifest>, LookupError>> {
        Box::pin(async move {
            let who = name(image);
            self.note(format!("resolve {who}"));
            Ok(Some(RawManifest::modern(Digest::sha256_of(who.as_bytes()))))
        })
    }

    fn manifest<'a>(
        &'a self,
        image: &'a ImageRef,
    ) -> BoxFuture<'a, Result<Option<RawManifest>, LookupError>> {
        self.resolve(image)
    }

    fn copy<'a>(
        &'a self,
        source: &'a ImageRef,
        dest: &'a ImageRef,
        _format: CopyFormat,
    ) -> BoxFuture<'a, Result<Digest, SkopeoError>> {
        Box::pin(async move {
            let who = name(source);
            self.note(format!("copy {who}"));
            self.copies.acquire().await.expect("open").forget();
            let pushed = source.digest().cloned().expect("copies are made by digest");
            self.served
                .lock()
                .expect("lock")
                .insert(name(dest), pushed.clone());
            self.copied.lock().expect("lock").insert(name(dest));
            self.note(format!("copied {who}"));
            Ok(pushed)
        })
    }
}

fn one_slot(held: &Arc<Held>) -> Mirror {
    test_mirror(Arc::clone(held) as Arc<dyn RegistryClient>, BACKUP, 1)
}

/// Lets the other tasks run until `what` is logged; fails at the deadline.
async fn until_logged(held: &Held, what: &str) {
    let waited = tokio::time::timeout(DEADLINE, async {
        while !held.logged(what) {
            tokio::task::yield_now().await;
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    let log = held.log.lock().expect("lock").clone();
    assert!(waited.is_ok(), "never logged {what:?}; the log: {log:?}");
}

/// Lets every copy and verification through; both images end up copied and verified.
async fn finish(
    held: &Held,
    tasks: [tokio::task::JoinHandle<Result<MirroredImage, MirrorError>>; 2],
) {
    held.copies.add_permits(Semaphore::MAX_PERMITS / 2);
    held.verifications.add_permits(Semaphore::MAX_PERMITS / 2);
    for task in tasks {
        let joined = tokio::time::timeout(DEADLINE, task)
            .await
            .expect("finished");
        let mirrored = joined.expect("joined").expect("mirrored");
        assert_eq!(mirrored.outcome, Outcome::Copied);
    }
}

#[tokio::test(start_paused = true)]
async fn the_next_image_is_checked_while_a_copy_holds_the_only_slot() {
    let held = Held::new();
    let m = one_slot(&held);
    let a = tokio::spawn({
        let m = m.clone();
        async move { m.ensure(&image("app-a:1")).await }
    });
    until_logged(&held, "copy app-a").await;
    let b = tokio::spawn({
        let m = m.clone();
        async move { m.ensure(&image("app-b:1")).await }
    });
    // app-a's copy still holds the slot: app-b is resolved and its backup checked meanwhile.
    until_logged(&held, "resolve app-b").await;
    until_logged(&held, "check app-b").await;
    assert!(!held.logged("copied app-a"));
    assert!(!held.logged("copy app-b"), "one slot: app-b waits for it");
    finish(&held, [a, b]).await;
}

#[tokio::test(start_paused = true)]
async fn the_next_copy_starts_while_the_last_one_is_verified() {
    let held = Held::new();
    let m = one_slot(&held);
    let ensure = |r: &'static str| {
        let m = m.clone();
        tokio::spawn(async move { m.ensure(&image(r)).await })
    };
    let a = ensure("app-a:1");
    until_logged(&held, "copy app-a").await;
    let b = ensure("app-b:1");
    until_logged(&held, "check app-b").await;
    // app-a's copy finishes; its verification is held: the slot is free for app-b's copy.
    held.copies.add_permits(1);
    until_logged(&held, "verify app-a").await;
    until_logged(&held, "copy app-b").await;
    assert!(
        !held.logged("verified app-a"),
        "app-b's copy started while app-a was still being verified"
    );
    finish(&held, [a, b]).await;
}
