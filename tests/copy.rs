//! `image-cloner copy` against real registries and the real skopeo: what an operator on a
//! bastion host sees, and what ends up in the backup registry.

mod common;

use common::*;
use testbed::{Credentials, Format, PushOptions, Registry, RegistryOptions, digest_of};

#[test]
fn a_multi_arch_image_arrives_byte_identical_and_a_second_run_copies_nothing() {
    let source = plain_registry();
    let backup = plain_registry();
    let digest = push_all(&source, &multi_arch("web", 1), "team/web", "1.0");
    let cloner = Cloner::new(&format!("{}/mirror", backup.host())).insecure(&[&source, &backup]);
    let image = format!("{}/team/web:1.0", source.host());

    let out = cloner.run(&["copy", &image]);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}{}", stderr(&out));
    let dest = flat(&source, "team/web");
    let expected = format!("{image} → {}/{dest}:1.0@{digest} (copied)", backup.host());
    assert!(text.contains(&expected), "{text}");
    assert!(text.contains("1 image(s): 1 copied, 0 already in backup, 0 failed"));
    assert_eq!(
        digest_of(&backup, &format!("{dest}:1.0")).unwrap(),
        Some(digest.clone())
    );
    // Every platform's manifest came along.
    let index: serde_json::Value =
        serde_json::from_slice(&testbed::inspect_raw(&backup, &format!("{dest}:1.0")).unwrap())
            .unwrap();
    for m in index["manifests"].as_array().unwrap() {
        let d = m["digest"].as_str().unwrap();
        assert_eq!(
            digest_of(&backup, &format!("{dest}@{d}"))
                .unwrap()
                .as_deref(),
            Some(d)
        );
    }

    let again = cloner.run(&["copy", &image]);
    let text = stdout(&again);
    assert!(again.status.success(), "{text}");
    assert!(text.contains("(already in backup)"), "{text}");
    assert!(text.contains("0 copied, 1 already in backup"), "{text}");
}

#[test]
fn a_schema1_image_is_converted_and_says_so() {
    let source = Registry::start(RegistryOptions {
        schema1: true,
        ..Default::default()
    })
    .unwrap();
    let backup = plain_registry();
    let built = small_image("old", 7).build().unwrap();
    testbed::push(
        &built,
        &source,
        "legacy/app",
        "0.9",
        PushOptions {
            format: Some(Format::V2s1),
            ..Default::default()
        },
    )
    .unwrap();
    let cloner = Cloner::new(&format!("{}/mirror", backup.host())).insecure(&[&source, &backup]);
    let image = format!("{}/legacy/app:0.9", source.host());

    let out = cloner.run(&["copy", &image]);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}{}", stderr(&out));
    assert!(
        text.contains("(copied; converted from schema 1 to schema 2"),
        "{text}"
    );
    let dest = format!("{}:0.9", flat(&source, "legacy/app"));
    let raw: serde_json::Value =
        serde_json::from_slice(&testbed::inspect_raw(&backup, &dest).unwrap()).unwrap();
    assert_eq!(raw["schemaVersion"], 2);
    // The pinned reference printed is the converted copy's digest.
    let digest = digest_of(&backup, &dest).unwrap().unwrap();
    assert!(text.contains(&format!("{dest}@{digest}")), "{text}");

    let again = stdout(&cloner.run(&["copy", &image]));
    assert!(again.contains("(already in backup"), "{again}");
}

#[test]
fn tag_and_digest_and_digest_only_sources() {
    let source = plain_registry();
    let backup = logged_registry();
    let digest = push_all(&source, &small_image("pinned", 3), "app", "2.0");
    let cloner = Cloner::new(&format!("{}/mirror", backup.host())).insecure(&[&source, &backup]);
    let both = format!("{}/app:2.0@{digest}", source.host());
    let only = format!("{}/app@{digest}", source.host());

    let out = cloner.run(&["copy", &both, &only]);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}{}", stderr(&out));
    let dest = flat(&source, "app");
    let hex = digest.trim_start_matches("sha256:");
    assert!(
        text.contains(&format!("{both} → {}/{dest}:2.0@{digest}", backup.host())),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "{only} → {}/{dest}:digest-sha256-{hex}@{digest}",
            backup.host()
        )),
        "{text}"
    );
    assert_eq!(
        digest_of(&backup, &format!("{dest}:digest-sha256-{hex}")).unwrap(),
        Some(digest)
    );
    // The two copies of one content into one repository ran one after the other: every blob
    // was uploaded once (side by side, both uploaded each, and the registry could answer 500).
    assert_each_blob_uploaded_once(&backup);
}

#[test]
fn two_tags_sharing_layers_are_copied_with_each_blob_uploaded_once() {
    let source = plain_registry();
    let backup = logged_registry();
    // One seed, two names: the same layers under two configs, as two versions on one base.
    let one = push_all(&source, &multi_arch("v1", 11), "app", "1.0");
    let two = push_all(&source, &multi_arch("v2", 11), "app", "1.1");
    assert_ne!(one, two);
    let cloner = Cloner::new(&format!("{}/mirror", backup.host())).insecure(&[&source, &backup]);
    let tags = ["1.0", "1.1"].map(|tag| format!("{}/app:{tag}", source.host()));

    let out = cloner.run(&["copy", &tags[0], &tags[1]]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let dest = flat(&source, "app");
    assert_eq!(
        digest_of(&backup, &format!("{dest}:1.0")).unwrap(),
        Some(one)
    );
    assert_eq!(
        digest_of(&backup, &format!("{dest}:1.1")).unwrap(),
        Some(two)
    );
    // One after the other, the second copy found the shared layers in place.
    assert_each_blob_uploaded_once(&backup);
}

/// No blob was uploaded twice into `backup` (started with its request log), and some were.
fn assert_each_blob_uploaded_once(backup: &Registry) {
    let log = std::fs::read_to_string(backup.log_path()).expect("the backup registry's log");
    let mut uploads: Vec<&str> = testbed::logged_requests(&log)
        .filter(|r| r.method == "PUT" && r.uri.contains("/blobs/uploads/"))
        .filter_map(|r| r.uri.split_once("digest=").map(|(_, d)| d))
        .collect();
    let all = uploads.len();
    uploads.sort_unstable();
    uploads.dedup();
    assert!(
        all > 0,
        "no blob upload in the backup registry's log:\n{log}"
    );
    assert_eq!(all, uploads.len(), "a blob uploaded twice: {uploads:?}");
}

#[test]
fn a_copy_made_under_the_old_digest_tag_is_found_and_tagged_anew() {
    let source = plain_registry();
    let backup = plain_registry();
    let image = small_image("legacy", 4);
    let digest = push_all(&source, &image, "app", "1");
    let dest = flat(&source, "app");
    let hex = digest.trim_start_matches("sha256:");
    // What version 0.1 left in the backup registry: the copy under `sha256-<hex>`.
    push_all(&backup, &image, &dest, &format!("sha256-{hex}"));
    let cloner = Cloner::new(&format!("{}/mirror", backup.host())).insecure(&[&source, &backup]);
    let only = format!("{}/app@{digest}", source.host());
    let out = cloner.run(&["copy", &only]);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}{}", stderr(&out));
    assert!(
        text.contains("already in backup under its old digest tag; tagged anew"),
        "{text}"
    );
    assert!(
        text.ends_with("1 image(s): 0 copied, 1 already in backup, 0 failed\n"),
        "{text}"
    );
    assert_eq!(
        digest_of(&backup, &format!("{dest}:digest-sha256-{hex}")).unwrap(),
        Some(digest)
    );
}

#[test]
fn credentials_from_a_docker_config_and_tls_with_a_private_ca() {
    let alice = Credentials::new("alice", "s3cret-source");
    let bob = Credentials::new("bob", "s3cret-backup");
    let source = Registry::start(RegistryOptions {
        auth: Some(alice.clone()),
        tls: true,
        ..Default::default()
    })
    .unwrap();
    let backup = Registry::start(RegistryOptions {
        auth: Some(bob.clone()),
        tls: true,
        ..Default::default()
    })
    .unwrap();
    let digest = push_all(&source, &multi_arch("private", 5), "corp/api", "3");
    let cas = cert_dir(&[&source, &backup]);
    let cloner = Cloner::new(&format!("{}/mirror", backup.host()))
        .set("IMAGE_CLONER_CERT_DIR", cas.path().to_string_lossy());
    let config = cloner.home().join("docker.json");
    testbed::write_docker_config(&config, &[(&source.host(), &alice), (&backup.host(), &bob)])
        .unwrap();
    // The source serves its images only with credentials: private, so named as a registry
    // whose private images may be copied (the backup is private too).
    let cloner = cloner
        .set("IMAGE_CLONER_DOCKER_CONFIG", config.to_string_lossy())
        .set("IMAGE_CLONER_COPY_PRIVATE_SOURCES", source.host());
    let image = format!("{}/corp/api:3", source.host());

    let out = cloner.run(&["copy", &image]);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}{}", stderr(&out));
    assert!(text.contains("(copied)"), "{text}");
    assert_eq!(
        digest_of(&backup, &format!("{}:3", flat(&source, "corp/api"))).unwrap(),
        Some(digest)
    );

    // check-config shows the credential file but never a secret.
    let shown = cloner.run(&["check-config"]);
    let all = format!("{}{}", stdout(&shown), stderr(&shown));
    assert!(shown.status.success(), "{all}");
    assert!(all.contains(&source.host()), "{all}");
    assert!(!all.contains("s3cret"), "{all}");
}

#[test]
fn a_wrong_password_fails_as_unauthorized_without_printing_it() {
    let alice = Credentials::new("alice", "right-password");
    let source = Registry::start(RegistryOptions {
        auth: Some(alice.clone()),
        ..Default::default()
    })
    .unwrap();
    let backup = plain_registry();
    push_all(&source, &small_image("locked", 9), "app", "1");
    let cloner = Cloner::new(&format!("{}/mirror", backup.host()))
        .insecure(&[&source, &backup])
        .set("IMAGE_CLONER_RETRY_TIMES", "0")
        // Every command line and decision is logged at this level: still no password.
        .set("IMAGE_CLONER_LOG_LEVEL", "trace");
    let config = cloner.home().join("docker.json");
    let wrong = Credentials::new("alice", "wrong-password-123");
    testbed::write_docker_config(&config, &[(&source.host(), &wrong)]).unwrap();
    let cloner = cloner
        .set("IMAGE_CLONER_DOCKER_CONFIG", config.to_string_lossy())
        .set("IMAGE_CLONER_COPY_PRIVATE_SOURCES", "true");

    let out = cloner.run(&["copy", &format!("{}/app:1", source.host())]);
    let all = format!("{}{}", stdout(&out), stderr(&out));
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(all.contains("unauthorized"), "{all}");
    assert!(!all.contains("wrong-password-123"), "{all}");
    // Nor its base64 form, as it sits in the docker config.
    assert!(!all.contains("YWxpY2U6d3JvbmctcGFzc3dvcmQtMTIz"), "{all}");
    assert!(
        all.contains("running skopeo"),
        "the trace log was on: {all}"
    );
    assert!(
        all.contains("0 copied, 0 already in backup, 1 failed"),
        "{all}"
    );
}

#[test]
fn missing_images_bad_references_and_an_unreachable_backup_are_reported_per_image() {
    let source = plain_registry();
    let mut backup = plain_registry();
    push_all(&source, &small_image("ok", 11), "ok", "1");
    let cloner = Cloner::new(&format!("{}/mirror", backup.host()))
        .insecure(&[&source, &backup])
        .set("IMAGE_CLONER_RETRY_TIMES", "0");
    let missing = format!("{}/nope:1", source.host());
    let ok = format!("{}/ok:1", source.host());

    let out = cloner.run(&["copy", &missing, "Not/Valid", &ok]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with(&format!("{missing} → error:")),
        "{text}"
    );
    assert!(lines[0].ends_with(": not found in its registry"), "{text}");
    assert!(
        lines[1].starts_with("Not/Valid → error: invalid image reference"),
        "{text}"
    );
    assert!(lines[2].contains("(copied)"), "{text}");

    backup.stop().unwrap();
    let out = cloner.run(&["copy", &format!("{}/ok:1", source.host())]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("registry unreachable"), "{text}");
    assert!(text.contains("connection refused"), "{text}");
}

#[test]
fn skopeo_missing_or_not_executable_is_named() {
    let cloner =
        Cloner::new("registry.example.com/b").set("IMAGE_CLONER_SKOPEO", "/nonexistent/skopeo");
    let out = cloner.run(&["check-config"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("skopeo = \"/nonexistent/skopeo\""), "{err}");

    let cloner = Cloner::new("registry.example.com/b");
    let not_exec = cloner.home().join("skopeo");
    std::fs::write(&not_exec, "not a program").unwrap();
    let cloner = cloner.set("IMAGE_CLONER_SKOPEO", not_exec.to_string_lossy());
    let out = cloner.run(&["copy", "nginx:1.27"]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("is not executable"), "{text}");
}
