//! The mirror's own rules, with a registry client made of maps: no process, no socket.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::fake::{CopyBehaviour, Fake};
use super::*;
use crate::image::manifest::RawManifest;
use crate::registry::client::{LookupError, RegistryClient};

const BACKUP: &str = "backup.example.com/mirror";

fn digest(s: &str) -> Digest {
    Digest::sha256_of(s.as_bytes())
}

fn image(s: &str) -> ImageRef {
    ImageRef::parse(s).expect("a valid reference")
}

fn mirror(fake: &Arc<Fake>) -> Mirror {
    test_mirror(Arc::clone(fake) as Arc<dyn RegistryClient>, BACKUP, 2)
}

#[tokio::test]
async fn a_hundred_concurrent_asks_make_one_copy() {
    let d = digest("nginx");
    let fake =
        Fake::new(CopyBehaviour::Faithful).with("nginx:1.27", RawManifest::modern(d.clone()));
    let m = mirror(&fake);
    let asks = (0..100).map(|_| {
        let m = m.clone();
        tokio::spawn(async move { m.ensure(&image("nginx:1.27")).await })
    });
    let results = futures::future::join_all(asks).await;
    for r in results {
        let got = r.expect("joined").expect("mirrored");
        assert_eq!(got.digest, d);
        assert_eq!(got.outcome, Outcome::Copied);
        assert_eq!(
            got.backup_ref,
            format!("{BACKUP}/docker.io_library_nginx:1.27@{d}")
        );
    }
    assert_eq!(fake.copies.load(Ordering::SeqCst), 1);
    let stats = m.stats();
    assert_eq!((stats.copies_started, stats.copies_succeeded), (1, 1));
    assert_eq!(stats.shared, 99, "{stats:?}");
}

#[tokio::test]
async fn an_image_already_in_the_backup_is_not_copied() {
    let d = digest("redis");
    let fake = Fake::new(CopyBehaviour::Hangs)
        .with("redis:7", RawManifest::modern(d.clone()))
        .with(
            &format!("{BACKUP}/docker.io_library_redis:7"),
            RawManifest::modern(d.clone()),
        );
    let got = mirror(&fake)
        .ensure(&image("redis:7"))
        .await
        .expect("found");
    assert_eq!(got.outcome, Outcome::AlreadyInBackup);
    assert_eq!(fake.copies.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_backup_tag_holding_another_digest_is_copied_over() {
    let d = digest("new");
    let fake = Fake::new(CopyBehaviour::Faithful)
        .with("app:1", RawManifest::modern(d.clone()))
        .with(
            &format!("{BACKUP}/docker.io_library_app:1"),
            RawManifest::modern(digest("old")),
        );
    let got = mirror(&fake).ensure(&image("app:1")).await.expect("copied");
    assert_eq!((got.outcome, got.digest), (Outcome::Copied, d));
}

#[tokio::test]
async fn a_copy_that_verifies_to_another_digest_is_never_reported_as_mirrored() {
    let d = digest("app");
    let fake = Fake::new(CopyBehaviour::BackupServes(digest("tampered")))
        .with("app:1", RawManifest::modern(d.clone()));
    let m = mirror(&fake);
    let e = m.ensure(&image("app:1")).await.expect_err("not verified");
    assert_eq!(e.reason(), "VerificationFailed", "{e}");
    assert!(e.is_transient());
    assert!(e.to_string().contains(&d.to_string()), "{e}");
    assert!(matches!(m.recorded(&image("app:1")), Some(Err(_))));
}

#[tokio::test(start_paused = true)]
async fn a_failure_is_remembered_for_its_window_and_not_longer() {
    let fake = Fake::new(CopyBehaviour::Fails).with("app:1", RawManifest::modern(digest("app")));
    let m = mirror(&fake);
    let first = m.ensure(&image("app:1")).await.expect_err("fails");
    assert_eq!(first.reason(), "BackupUnavailable", "{first}");
    assert!(first.is_transient());
    let lookups = fake.lookups.load(Ordering::SeqCst);
    // Within the window: the remembered answer, no registry asked.
    tokio::time::advance(m.options().failure_ttl / 2).await;
    m.ensure(&image("app:1")).await.expect_err("remembered");
    assert_eq!(fake.lookups.load(Ordering::SeqCst), lookups);
    assert_eq!(fake.copies.load(Ordering::SeqCst), 1);
    // After it: asked again.
    tokio::time::advance(m.options().failure_ttl).await;
    m.ensure(&image("app:1")).await.expect_err("asked again");
    assert!(fake.lookups.load(Ordering::SeqCst) > lookups);
    assert_eq!(fake.copies.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_missing_source_is_named_and_permanent() {
    let fake = Fake::new(CopyBehaviour::Faithful);
    let e = mirror(&fake)
        .ensure(&image("ghcr.io/x/gone:1"))
        .await
        .expect_err("missing");
    assert_eq!(e.reason(), "SourceNotFound");
    assert!(!e.is_transient());
    assert_eq!(e.to_string(), "ghcr.io/x/gone:1: not found in its registry");
}

#[tokio::test]
async fn a_source_by_digest_already_copied_never_asks_the_source() {
    let d = digest("pinned");
    let fake = Fake::new(CopyBehaviour::Hangs).with(
        &format!("{BACKUP}/docker.io_library_app:{}", naming_tag(&d)),
        RawManifest::modern(d.clone()),
    );
    let got = mirror(&fake)
        .ensure(&image(&format!("app@{d}")))
        .await
        .expect("found without the source");
    assert_eq!(got.outcome, Outcome::AlreadyInBackup);
    assert_eq!(
        fake.lookups.load(Ordering::SeqCst),
        1,
        "one lookup: the backup"
    );
}

#[tokio::test]
async fn a_copy_under_the_legacy_digest_tag_is_tagged_anew_not_copied_again() {
    let d = digest("pinned");
    let legacy = format!("{BACKUP}/docker.io_library_app:sha256-{}", d.hex());
    // The source registry is not in the fake: asking it would fail the test.
    let fake = Fake::new(CopyBehaviour::Faithful).with(&legacy, RawManifest::modern(d.clone()));
    let got = mirror(&fake)
        .ensure(&image(&format!("app@{d}")))
        .await
        .expect("retagged");
    assert_eq!(got.outcome, Outcome::Retagged);
    assert_eq!(
        got.backup_ref,
        format!(
            "{BACKUP}/docker.io_library_app:digest-sha256-{}@{d}",
            d.hex()
        )
    );
    assert_eq!(
        fake.copies.load(Ordering::SeqCst),
        1,
        "one copy, within the backup"
    );
}

/// The backup tag naming gives a digest-only source.
fn naming_tag(d: &Digest) -> String {
    let target = BackupRegistry::parse(BACKUP)
        .expect("backup")
        .target(&image(&format!("app@{d}")), Naming::Flat)
        .expect("named");
    target
        .tagged()
        .tag()
        .expect("a digest-only source gets a tag")
        .to_owned()
}

#[test]
fn cancelled_mid_copy_nothing_is_half_reported() {
    let d = digest("big");
    let fake = Fake::new(CopyBehaviour::Hangs).with("big:1", RawManifest::modern(d.clone()));
    let m = mirror(&fake);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let started = fake.copy_started.notified();
        let waiter = tokio::spawn({
            let m = m.clone();
            async move { m.ensure(&image("big:1")).await }
        });
        started.await;
        assert_eq!(m.flights_in_progress(), 1);
        assert_eq!(m.stats().copies_in_flight, 1);
        waiter.abort();
    });
    // The runtime goes down with the copy running (a daemon past its grace period).
    drop(runtime);
    assert_eq!(
        m.flights_in_progress(),
        0,
        "no flight left that nobody runs"
    );
    assert!(m.recorded(&image("big:1")).is_none(), "no result recorded");
    let stats = m.stats();
    assert_eq!(stats.copies_in_flight, 0, "{stats:?}");
    assert_eq!(stats.copies_succeeded + stats.copies_failed, 0, "{stats:?}");
}

#[test]
fn a_rate_limited_lookup_is_reported_as_such_and_passes() {
    let e = MirrorError::ResolveSource {
        image: "nginx:1.27".into(),
        source: Box::new(LookupError::RateLimited {
            url: "https://registry-1.docker.io/v2/library/nginx/manifests/1.27".into(),
            retry_after: Some(std::time::Duration::from_secs(30)),
        }),
    };
    assert_eq!(e.reason(), "RateLimited");
    assert!(e.is_transient());
    assert!(e.to_string().contains("retry after 30s"), "{e}");
}

/// Lets every task run until all of them wait (the clock is paused: a sleep ends only then).
async fn settle() {
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
}

/// `m.ensure` of each of `sources`, each in a task of its own.
fn ensure_each<const N: usize>(
    m: &Mirror,
    sources: [String; N],
) -> [tokio::task::JoinHandle<Result<MirroredImage, MirrorError>>; N] {
    sources.map(|source| {
        let m = m.clone();
        tokio::spawn(async move { m.ensure(&image(&source)).await })
    })
}

/// Two copies asked of `m`, held by `fake` until released, with two copy slots: the second
/// waits for the first's repository turn though a slot is free, then runs.
async fn assert_one_after_the_other(m: &Mirror, fake: &Fake) {
    settle().await;
    assert_eq!(fake.copies.load(Ordering::SeqCst), 1, "the second waits");
    assert_eq!(m.inner.same_repository.under_way(), 1);
    fake.release();
    settle().await;
    assert_eq!(fake.copies.load(Ordering::SeqCst), 2, "then runs");
    fake.release();
}

/// What each ask got, every one a copy.
async fn all_copied<const N: usize>(
    asks: [tokio::task::JoinHandle<Result<MirroredImage, MirrorError>>; N],
) -> Vec<MirroredImage> {
    let mut got = Vec::new();
    for ask in asks {
        let mirrored = ask.await.expect("joined").expect("mirrored");
        assert_eq!(mirrored.outcome, Outcome::Copied);
        got.push(mirrored);
    }
    got
}

#[tokio::test(start_paused = true)]
async fn copies_of_one_content_into_one_backup_repository_run_one_after_the_other() {
    let d = digest("app 2.0");
    let fake =
        Fake::holding(CopyBehaviour::Faithful).with("app:2.0", RawManifest::modern(d.clone()));
    let m = mirror(&fake);
    let asks = ensure_each(&m, [format!("app:2.0@{d}"), format!("app@{d}")]);
    assert_one_after_the_other(&m, &fake).await;
    let got = all_copied(asks).await;
    assert!(got.iter().all(|g| g.digest == d));
    let hex = d.to_string().replace(':', "-");
    assert_eq!(
        got.iter().map(|g| g.backup.to_string()).collect::<Vec<_>>(),
        [
            format!("{BACKUP}/docker.io_library_app:2.0"),
            format!("{BACKUP}/docker.io_library_app:digest-{hex}")
        ]
    );
    assert_eq!(
        m.inner.same_repository.under_way(),
        0,
        "no lock outlives its copies"
    );
}

#[tokio::test(start_paused = true)]
async fn two_tags_of_an_image_are_copied_one_after_the_other() {
    // Different content, one backup repository: they share base layers as a rule.
    let fake = Fake::holding(CopyBehaviour::Faithful)
        .with("app:2.0", RawManifest::modern(digest("app 2.0")))
        .with("app:3.0", RawManifest::modern(digest("app 3.0")));
    let m = mirror(&fake);
    let asks = ensure_each(&m, ["app:2.0".into(), "app:3.0".into()]);
    assert_one_after_the_other(&m, &fake).await;
    all_copied(asks).await;
    assert_eq!(m.inner.same_repository.under_way(), 0);
}

#[tokio::test(start_paused = true)]
async fn copies_into_different_backup_repositories_run_side_by_side() {
    let fake = Fake::holding(CopyBehaviour::Faithful)
        .with("app:2.0", RawManifest::modern(digest("app 2.0")))
        .with("web:2.0", RawManifest::modern(digest("web 2.0")));
    let m = mirror(&fake);
    let asks = ensure_each(&m, ["app:2.0".into(), "web:2.0".into()]);
    settle().await;
    assert_eq!(fake.copies.load(Ordering::SeqCst), 2);
    assert_eq!(m.inner.same_repository.under_way(), 2);
    fake.release();
    fake.release();
    all_copied(asks).await;
}
