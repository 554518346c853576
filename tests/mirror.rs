//! The mirror service under concurrency, against real registries and the real skopeo.

mod common;

use std::time::Duration;

use common::*;
use image_cloner::image::naming::{BackupRegistry, Naming, Pin};
use image_cloner::image::reference::ImageRef;
use std::sync::Arc;

use image_cloner::registry::client::Registries;
use image_cloner::registry::manifest_head::ManifestHead;
use image_cloner::registry::mirror::{Mirror, MirrorOptions, Outcome, Unobserved};
use image_cloner::registry::skopeo::{Skopeo, SkopeoOptions};
use testbed::Registry;

fn mirror(source: &Registry, backup: &Registry, max_copies: usize) -> Mirror {
    mirror_through(source, backup, None, max_copies)
}

/// A mirror from `source` to `backup` (both plain HTTP), with `head` in front of skopeo.
fn mirror_through(
    source: &Registry,
    backup: &Registry,
    head: Option<ManifestHead>,
    max_copies: usize,
) -> Mirror {
    let skopeo = Skopeo::new(SkopeoOptions {
        program: which::which("skopeo").expect("skopeo on PATH"),
        authfile: None,
        insecure_registries: vec![source.host(), backup.host()],
        cert_dir: None,
        tmp_dir: None,
        retry_times: 0,
        copy_timeout: Duration::from_secs(120),
        inspect_timeout: Duration::from_secs(30),
    });
    let backup = BackupRegistry::parse(&format!("{}/mirror", backup.host())).expect("backup");
    let options = MirrorOptions::new(backup, Naming::Flat, Pin::Digest, max_copies);
    let client = Registries::new(skopeo, head, options.max_concurrent_checks());
    Mirror::new(Arc::new(client), options, Arc::new(Unobserved))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_concurrent_asks_for_one_image_make_one_copy() {
    let source = plain_registry();
    let backup = plain_registry();
    let digest = push_all(&source, &multi_arch("hot", 21), "nginx", "1.27");
    let mirror = mirror(&source, &backup, 5);
    let image = ImageRef::parse(&format!("{}/nginx:1.27", source.host())).unwrap();

    let asks = (0..100).map(|_| {
        let m = mirror.clone();
        let i = image.clone();
        tokio::spawn(async move { m.ensure(&i).await })
    });
    let results = futures::future::join_all(asks).await;
    let first = results[0].as_ref().unwrap().as_ref().unwrap().clone();
    for r in &results {
        assert_eq!(r.as_ref().unwrap().as_ref().unwrap(), &first);
    }
    assert_eq!(first.digest.as_str(), digest);
    assert_eq!(first.outcome, Outcome::Copied);
    let stats = mirror.stats();
    assert_eq!(stats.copies_started, 1, "{stats:?}");
    assert_eq!(stats.copies_succeeded, 1, "{stats:?}");
    // The reference a workload would be patched to resolves in the backup registry.
    let pinned = first.backup_ref.split_once('/').unwrap().1;
    let by_digest = pinned.split_once(':').unwrap().0.to_owned() + "@" + &digest;
    assert_eq!(
        testbed::digest_of(&backup, &by_digest).unwrap(),
        Some(digest.clone())
    );

    // A new mirror (a restarted daemon) finds the copy and makes none.
    let restarted = mirror_again(&source, &backup);
    let again = restarted.ensure(&image).await.unwrap();
    assert_eq!(again.outcome, Outcome::AlreadyInBackup);
    assert_eq!(again.backup_ref, first.backup_ref);
    assert_eq!(restarted.stats().copies_started, 0);
}

fn mirror_again(source: &Registry, backup: &Registry) -> Mirror {
    mirror(source, backup, 5)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_more_copies_run_at_once_than_the_limit() {
    let source = plain_registry();
    let backup = plain_registry();
    let images: Vec<ImageRef> = (0..6)
        .map(|i| {
            let spec = testbed::ImageSpec::new(format!("img{i}"), 100 + i).with_layers(2, 1 << 20);
            push_all(&source, &spec, &format!("app{i}"), "1");
            ImageRef::parse(&format!("{}/app{i}:1", source.host())).unwrap()
        })
        .collect();
    let mirror = mirror(&source, &backup, 2);
    let all = images.iter().map(|i| {
        let m = mirror.clone();
        let i = i.clone();
        tokio::spawn(async move { m.ensure(&i).await })
    });
    for r in futures::future::join_all(all).await {
        r.unwrap().unwrap();
    }
    let stats = mirror.stats();
    assert_eq!(stats.copies_succeeded, 6, "{stats:?}");
    assert!((1..=2).contains(&stats.peak_copies_in_flight), "{stats:?}");
    assert_eq!(stats.copies_in_flight, 0);
}

#[tokio::test]
async fn an_image_already_under_the_backup_registry_is_not_copied() {
    let source = plain_registry();
    let backup = plain_registry();
    let digest = push_all(&backup, &small_image("own", 31), "mirror/own", "1");
    let mirror = mirror(&source, &backup, 2);
    let image = ImageRef::parse(&format!("{}/mirror/own:1", backup.host())).unwrap();
    let m = mirror.ensure(&image).await.unwrap();
    assert_eq!(m.outcome, Outcome::SourceInBackupRegistry);
    assert_eq!(m.digest.as_str(), digest);
    assert_eq!(m.backup_ref, format!("{image}@{digest}"));
    assert_eq!(mirror.stats().copies_started, 0);
}

#[tokio::test]
async fn a_failed_copy_is_remembered_briefly_and_reported_by_kind() {
    let source = plain_registry();
    let backup = plain_registry();
    let mirror = mirror(&source, &backup, 2);
    let image = ImageRef::parse(&format!("{}/missing:1", source.host())).unwrap();
    let e = mirror.ensure(&image).await.unwrap_err();
    assert_eq!(e.reason(), "SourceNotFound", "{e}");
    assert!(!e.is_transient());
    let inspects = mirror.stats().inspects;
    // Asked again within the failure TTL: answered from the record, no registry round trip.
    let again = mirror.ensure(&image).await.unwrap_err();
    assert_eq!(again.reason(), "SourceNotFound");
    assert_eq!(mirror.stats().inspects, inspects);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_backup_registry_is_asked_by_manifest_head_with_credentials_and_a_private_ca() {
    use image_cloner::registry::manifest_head::encode_basic;
    let source = plain_registry();
    let bob = testbed::Credentials::new("bob", "backup-pass");
    let backup = Registry::start(testbed::RegistryOptions {
        auth: Some(bob.clone()),
        tls: true,
        request_log: true,
        ..Default::default()
    })
    .unwrap();
    let digest = push_all(&source, &multi_arch("headed", 51), "app", "1");
    let cas = cert_dir(&[&backup]);
    let config = cas.path().join("config.json");
    testbed::write_docker_config(&config, &[(&backup.host(), &bob)]).unwrap();
    let build = || {
        let skopeo = Skopeo::new(SkopeoOptions {
            program: which::which("skopeo").unwrap(),
            authfile: Some(config.clone()),
            insecure_registries: vec![source.host()],
            cert_dir: Some(cas.path().to_owned()),
            tmp_dir: None,
            retry_times: 0,
            copy_timeout: Duration::from_secs(120),
            inspect_timeout: Duration::from_secs(30),
        });
        let head = ManifestHead::new(
            vec![(backup.host(), encode_basic("bob", "backup-pass"))],
            vec![],
            vec![source.host()],
            Some(cas.path()),
            Duration::from_secs(10),
        )
        .unwrap();
        let target = BackupRegistry::parse(&format!("{}/mirror", backup.host())).unwrap();
        let options = MirrorOptions::new(target, Naming::Flat, Pin::Digest, 2);
        let client = Registries::new(skopeo, Some(head), options.max_concurrent_checks());
        Mirror::new(Arc::new(client), options, Arc::new(Unobserved))
    };
    let image = ImageRef::parse(&format!("{}/app:1", source.host())).unwrap();

    let mirror = build();
    let copied = mirror.ensure(&image).await.unwrap();
    assert_eq!(copied.outcome, Outcome::Copied);
    assert_eq!(copied.digest.as_str(), digest);
    let stats = mirror.stats();
    assert_eq!(stats.inspects, 0, "no skopeo inspect at all: {stats:?}");
    assert_eq!(
        stats.heads, 3,
        "source resolved, backup checked before and verified after: {stats:?}"
    );
    // The backup's 401 to the first HEAD is remembered: the second is sent with the
    // credentials at once.
    assert_eq!(
        heads_of(&backup, |u| u.starts_with("/v2/mirror/")),
        3,
        "refused once, then two answered:\n{}",
        backup.log_tail()
    );

    let again = build();
    let found = again.ensure(&image).await.unwrap();
    assert_eq!(found.outcome, Outcome::AlreadyInBackup);
    assert_eq!(found.backup_ref, copied.backup_ref);
    assert_eq!(again.stats().heads, 2, "source and backup, one HEAD each");
    assert_eq!(
        heads_of(&backup, |u| u.starts_with("/v2/mirror/")),
        5,
        "a new client is refused once, as any client is"
    );
}

/// A registry's manifest HEADs from image-cloner to URIs `uri` accepts, answered or refused
/// for want of credentials (its own log, with `request_log`).
fn heads_of(registry: &Registry, uri: impl Fn(&str) -> bool) -> usize {
    cloner_head_uris(registry).iter().filter(|u| uri(u)).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_privacy_screens_answer_resolves_the_source_when_no_credentials_would_change_it() {
    use image_cloner::registry::client::Visibility;
    use image_cloner::registry::manifest_head::encode_basic;
    let source = logged_registry();
    let backup = plain_registry();
    let build = |auths: Vec<(String, String)>| {
        let head = ManifestHead::new(
            auths,
            vec![],
            vec![source.host(), backup.host()],
            None,
            Duration::from_secs(10),
        )
        .expect("a HEAD client");
        mirror_through(&source, &backup, Some(head), 2)
    };

    // No credentials for the source: the anonymous HEAD is the mirror's own question.
    let digest = push_all(&source, &small_image("screened", 61), "screened", "1");
    let image = ImageRef::parse(&format!("{}/screened:1", source.host())).unwrap();
    let mirror = build(vec![]);
    assert_eq!(mirror.visibility(&image).await.unwrap(), Visibility::Public);
    let copied = mirror.ensure(&image).await.unwrap();
    assert_eq!(copied.outcome, Outcome::Copied);
    assert_eq!(
        copied.digest.as_str(),
        digest,
        "the copy is of the digest the HEAD named"
    );
    assert_eq!(
        heads_of(&source, |u| u == "/v2/screened/manifests/1"),
        1,
        "one HEAD of the source, for both questions:\n{}",
        source.log_tail()
    );
    assert_eq!(mirror.stats().heads, 3, "privacy, backup before and after");

    // Credentials for the source: the mirror asks with them, as it always has.
    let digest = push_all(
        &source,
        &small_image("credentialed", 62),
        "credentialed",
        "1",
    );
    let image = ImageRef::parse(&format!("{}/credentialed:1", source.host())).unwrap();
    let mirror = build(vec![(source.host(), encode_basic("carol", "source-pass"))]);
    assert_eq!(mirror.visibility(&image).await.unwrap(), Visibility::Public);
    let copied = mirror.ensure(&image).await.unwrap();
    assert_eq!(copied.digest.as_str(), digest);
    assert_eq!(
        heads_of(&source, |u| u == "/v2/credentialed/manifests/1"),
        2,
        "the anonymous HEAD and the mirror's own:\n{}",
        source.log_tail()
    );
}
