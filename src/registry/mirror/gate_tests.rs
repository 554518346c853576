//! The mirror against a registry that rate-limits, with a fake client and tokio's paused
//! clock: `Retry-After` is honoured by every request to that registry, the others are not
//! paused, nothing retries in a hot loop, the pull budget's reserve is kept, and whether a
//! source is public is asked once per repository, and logged when it is learnt.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::time::Instant;

use super::*;
use crate::image::manifest::RawManifest;
use crate::ops::captured_lines::Captured;
use crate::registry::client::{LookupError, RegistryClient, Visibility};
use crate::registry::skopeo::{CopyFormat, SkopeoError};

const BACKUP: &str = "backup.example/mirror";

/// Every registry serves every image, but for the 429s it is told to give first.
#[derive(Default)]
struct Throttling {
    /// Registry → 429s still to give, and the `Retry-After` they carry.
    limits: Mutex<HashMap<String, (u32, Duration)>>,
    /// Every request: when, to which registry, whether it was answered 429.
    log: Mutex<Vec<(Instant, String, bool)>>,
    backup: Mutex<HashMap<String, Digest>>,
    budget_left: Mutex<Option<u64>>,
    /// 429s the next copies get.
    copy_429s: Mutex<u32>,
    visibility_asked: AtomicUsize,
    /// `private.example` serves its images to anyone from now on.
    opened: AtomicBool,
    throttled: Mutex<Vec<String>>,
}

impl Throttling {
    fn limit(self: Arc<Self>, registry: &str, times: u32, retry_after: Duration) -> Arc<Self> {
        let entry = (times, retry_after);
        self.limits
            .lock()
            .expect("lock")
            .insert(registry.into(), entry);
        self
    }

    /// Logs a request to `image`'s registry; the 429 it gets, if any.
    fn request(&self, image: &ImageRef) -> Option<Duration> {
        let mut limits = self.limits.lock().expect("lock");
        let throttle = limits.get_mut(image.domain()).and_then(|(left, after)| {
            (*left > 0).then(|| {
                *left -= 1;
                *after
            })
        });
        let entry = (
            Instant::now(),
            image.domain().to_owned(),
            throttle.is_some(),
        );
        self.log.lock().expect("lock").push(entry);
        throttle
    }

    fn requests_to(&self, registry: &str) -> Vec<(Instant, bool)> {
        let log = self.log.lock().expect("lock");
        log.iter()
            .filter(|(_, r, _)| r == registry)
            .map(|(t, _, limited)| (*t, *limited))
            .collect()
    }

    fn lookup(&self, image: &ImageRef) -> Result<Option<Digest>, LookupError> {
        if let Some(after) = self.request(image) {
            return Err(LookupError::RateLimited {
                url: image.to_string(),
                retry_after: Some(after),
            });
        }
        if image.domain() == "backup.example" {
            let backup = self.backup.lock().expect("lock");
            return Ok(backup.get(image.canonical().as_ref()).cloned());
        }
        Ok(Some(Digest::sha256_of(image.repository().as_bytes())))
    }
}

impl RegistryClient for Throttling {
    fn digest<'a>(&'a self, i: &'a ImageRef) -> BoxFuture<'a, Result<Option<Digest>, LookupError>> {
        Box::pin(async move { self.lookup(i) })
    }
    fn resolve<'a>(
        &'a self,
        i: &'a ImageRef,
    ) -> BoxFuture<'a, Result<Option<RawManifest>, LookupError>> {
        Box::pin(async move { Ok(self.lookup(i)?.map(RawManifest::modern)) })
    }
    fn manifest<'a>(
        &'a self,
        i: &'a ImageRef,
    ) -> BoxFuture<'a, Result<Option<RawManifest>, LookupError>> {
        Box::pin(async move { Ok(self.lookup(i)?.map(RawManifest::modern)) })
    }
    fn copy<'a>(
        &'a self,
        source: &'a ImageRef,
        dest: &'a ImageRef,
        _format: CopyFormat,
    ) -> BoxFuture<'a, Result<Digest, SkopeoError>> {
        Box::pin(async move {
            let throttle = {
                let mut left = self.copy_429s.lock().expect("lock");
                let throttle = *left > 0;
                *left = left.saturating_sub(1);
                throttle
            };
            if throttle {
                let entry = (Instant::now(), source.domain().to_owned(), true);
                self.log.lock().expect("lock").push(entry);
            }
            if throttle || self.request(source).is_some() {
                return Err(SkopeoError::RateLimited {
                    command: crate::registry::skopeo::CommandLine("skopeo copy".into()),
                    summary: "toomanyrequests".into(),
                    stderr: String::new(),
                });
            }
            let pushed = source.digest().cloned().expect("copies are made by digest");
            let mut backup = self.backup.lock().expect("lock");
            backup.insert(dest.canonical().into_owned(), pushed.clone());
            Ok(pushed)
        })
    }
    fn visibility<'a>(&'a self, i: &'a ImageRef) -> BoxFuture<'a, Result<Visibility, LookupError>> {
        Box::pin(async move {
            self.visibility_asked.fetch_add(1, Ordering::SeqCst);
            if let Some(after) = self.request(i) {
                return Err(LookupError::RateLimited {
                    url: i.to_string(),
                    retry_after: Some(after),
                });
            }
            Ok(match i.domain() {
                "private.example" if !self.opened.load(Ordering::SeqCst) => Visibility::Private,
                _ => Visibility::Public,
            })
        })
    }
    fn take_pull(&self, _registry: &str, reserve: u64) -> Result<(), u64> {
        match *self.budget_left.lock().expect("lock") {
            Some(left) if left <= reserve => Err(left),
            _ => Ok(()),
        }
    }
}

impl CopyObserver for Throttling {
    fn source_throttled(&self, registry: &str) {
        self.throttled
            .lock()
            .expect("lock")
            .push(registry.to_owned());
    }
}

fn mirror(fake: &Arc<Throttling>) -> Mirror {
    let backup = BackupRegistry::parse(BACKUP).expect("backup");
    let options = MirrorOptions::new(backup, Naming::Flat, Pin::Digest, 2);
    Mirror::new(Arc::clone(fake) as _, options, Arc::clone(fake) as _)
}

fn image(s: &str) -> ImageRef {
    ImageRef::parse(s).expect("a valid reference")
}

#[tokio::test(start_paused = true)]
async fn retry_after_pauses_one_registry_while_the_others_are_copied() {
    let fake = Arc::new(Throttling::default()).limit("slow.example", 2, Duration::from_secs(5));
    let m = mirror(&fake);
    let start = Instant::now();
    let (slow_image, fast_image) = (image("slow.example/app:1"), image("fast.example/app:1"));
    let (slow, fast) = tokio::join!(m.ensure(&slow_image), m.ensure(&fast_image));
    assert_eq!(
        slow.expect("copied after the pauses").outcome,
        Outcome::Copied
    );
    assert_eq!(fast.expect("copied").outcome, Outcome::Copied);

    let slow = fake.requests_to("slow.example");
    let limited: Vec<bool> = slow.iter().map(|(_, l)| *l).collect();
    // Two 429s to the resolve, then the resolve and the copy.
    assert_eq!(limited, [true, true, false, false], "{slow:?}");
    for pair in slow.windows(2) {
        if pair[0].1 {
            let waited = pair[1].0 - pair[0].0;
            assert!(
                waited >= Duration::from_secs(5),
                "asked again after {waited:?}"
            );
        }
    }
    // The other registry was served at once, before the first retry of the slow one.
    let fast = fake.requests_to("fast.example");
    assert_eq!(fast.len(), 2, "resolve and copy: {fast:?}");
    assert!(fast.iter().all(|(t, _)| *t == start), "{fast:?}");
    assert_eq!(*fake.throttled.lock().expect("lock"), ["slow.example"; 2]);
}

#[tokio::test(start_paused = true)]
async fn a_registry_that_keeps_throttling_fails_the_work_after_a_few_tries() {
    let fake = Arc::new(Throttling::default()).limit("slow.example", 100, Duration::from_secs(1));
    let m = mirror(&fake);
    let err = m
        .ensure(&image("slow.example/app:1"))
        .await
        .expect_err("throttled");
    assert_eq!(err.reason(), "RateLimited");
    assert!(err.is_transient());
    assert_eq!(
        fake.requests_to("slow.example").len(),
        3,
        "ATTEMPTS, no more"
    );
    // Asked again at once: the remembered failure answers, no request.
    m.ensure(&image("slow.example/app:1"))
        .await
        .expect_err("remembered");
    assert_eq!(fake.requests_to("slow.example").len(), 3);
}

#[tokio::test(start_paused = true)]
async fn a_long_retry_after_fails_at_once_and_sends_nothing_more() {
    let fake = Arc::new(Throttling::default()).limit("hub.example", 1, Duration::from_secs(3600));
    let m = mirror(&fake);
    let err = m
        .ensure(&image("hub.example/a:1"))
        .await
        .expect_err("paused");
    assert_eq!(err.reason(), "RateLimited");
    // Another image on the same registry: not even asked.
    let err = m
        .ensure(&image("hub.example/b:1"))
        .await
        .expect_err("paused");
    assert_eq!(err.reason(), "RateLimited");
    assert!(err.to_string().contains("not asked again yet"), "{err}");
    assert_eq!(fake.requests_to("hub.example").len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_429_to_the_copy_pauses_the_registry_and_copies_again() {
    let fake = Arc::new(Throttling::default());
    *fake.copy_429s.lock().expect("lock") = 1;
    let got = mirror(&fake)
        .ensure(&image("slow.example/app:1"))
        .await
        .expect("copied");
    assert_eq!(got.outcome, Outcome::Copied);
    let slow = fake.requests_to("slow.example");
    let limited: Vec<bool> = slow.iter().map(|(_, l)| *l).collect();
    assert_eq!(
        limited,
        [false, true, false],
        "resolve, copy (429), copy: {slow:?}"
    );
    // skopeo gives no Retry-After: the backoff's first second.
    assert!(slow[2].0 - slow[1].0 >= Duration::from_secs(1), "{slow:?}");
}

#[tokio::test(start_paused = true)]
async fn the_pull_budget_reserve_holds_copies_back() {
    let fake = Arc::new(Throttling::default());
    *fake.budget_left.lock().expect("lock") = Some(5);
    let err = mirror(&fake)
        .ensure(&image("docker.io/library/nginx:1"))
        .await
        .expect_err("held back");
    assert_eq!(err.reason(), "PullBudgetReserve");
    assert!(err.is_transient());
    assert!(
        err.to_string()
            .contains("5 pull(s) left, and 5 are kept in reserve"),
        "{err}"
    );
    assert!(
        fake.backup.lock().expect("lock").is_empty(),
        "nothing copied"
    );
}

#[tokio::test(start_paused = true)]
async fn privacy_is_asked_once_per_repository() {
    let fake = Arc::new(Throttling::default());
    let m = mirror(&fake);
    let asks = [
        "private.example/x:1",
        "private.example/x:2",
        "private.example/x:1",
    ];
    let answers = futures::future::join_all(asks.iter().map(|i| {
        let (m, i) = (m.clone(), image(i));
        async move { m.visibility(&i).await }
    }))
    .await;
    for a in answers {
        assert_eq!(a.expect("an answer"), Visibility::Private);
    }
    assert_eq!(fake.visibility_asked.load(Ordering::SeqCst), 1);
    assert_eq!(
        m.visibility(&image("quay.io/y:1"))
            .await
            .expect("an answer"),
        Visibility::Public
    );
    assert_eq!(fake.visibility_asked.load(Ordering::SeqCst), 2);
    // Remembered for success_ttl, then asked again.
    tokio::time::advance(m.options().success_ttl).await;
    m.visibility(&image("private.example/x:1"))
        .await
        .expect("an answer");
    assert_eq!(fake.visibility_asked.load(Ordering::SeqCst), 3);
}

#[tokio::test(start_paused = true)]
async fn a_private_repository_is_logged_when_learnt_and_when_it_opens_not_at_each_ask() {
    let lines = Captured::default();
    let _logging = tracing::subscriber::set_default(lines.subscriber());
    let fake = Arc::new(Throttling::default());
    let m = mirror(&fake);
    let ask = |reference: &'static str| {
        let m = m.clone();
        async move { m.visibility(&image(reference)).await.expect("an answer") }
    };

    assert_eq!(ask("private.example/x:1").await, Visibility::Private);
    let told = lines.taken();
    assert_eq!(told.len(), 1, "{told:#?}");
    assert!(
        told[0].contains("source repository private")
            && told[0].contains("repository=private.example/x"),
        "{told:#?}"
    );
    // Remembered, then asked again and still private; a public repository: nothing to tell.
    ask("private.example/x:2").await;
    tokio::time::advance(m.options().success_ttl).await;
    assert_eq!(ask("private.example/x:1").await, Visibility::Private);
    assert_eq!(ask("quay.io/y:1").await, Visibility::Public);
    assert_eq!(fake.visibility_asked.load(Ordering::SeqCst), 3);
    assert_eq!(lines.taken(), Vec::<String>::new());

    fake.opened.store(true, Ordering::SeqCst);
    tokio::time::advance(m.options().success_ttl).await;
    assert_eq!(ask("private.example/x:1").await, Visibility::Public);
    let told = lines.taken();
    assert_eq!(told.len(), 1, "{told:#?}");
    assert!(
        told[0].contains("source repository public again"),
        "{told:#?}"
    );
    tokio::time::advance(m.options().success_ttl).await;
    ask("private.example/x:1").await;
    assert_eq!(lines.taken(), Vec::<String>::new());
}
