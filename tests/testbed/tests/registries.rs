//! Real `docker-registry` processes and real `skopeo`, on loopback.
//!
//! Every registry and image lives in a temporary directory removed on drop,
//! and every registry process is killed on drop — also when a test panics.

use testbed::{
    Access, Credentials, Creds, Format, ImageSpec, Platform, PushOptions, Registry,
    RegistryOptions, TestbedError, digest_of, digest_of_at, inspect_raw, inspect_raw_at,
    manifest_digest, push, sha256_digest, write_docker_config,
};

/// 2 layers of 64 KiB: fast, but real blobs.
fn small_image(name: &str, seed: u64) -> ImageSpec {
    ImageSpec::new(name, seed).with_layers(2, 64 * 1024)
}

fn json(raw: &[u8]) -> serde_json::Value {
    serde_json::from_slice(raw).expect("manifest is JSON")
}

#[test]
fn plain_registry_push_and_inspect_round_trip() {
    let registry = Registry::start(RegistryOptions::default()).unwrap();
    assert!(registry.host().starts_with("127.0.0.1:"));
    assert_eq!(registry.url(), format!("http://{}", registry.host()));
    assert!(registry.ca_dir().is_none());

    let image = small_image("plain", 1).build().unwrap();
    let pushed = push(&image, &registry, "team/app", "1.0", PushOptions::default()).unwrap();
    assert_eq!(pushed, image.digest, "an OCI manifest is copied unchanged");

    let raw = inspect_raw(&registry, "team/app:1.0").unwrap();
    assert_eq!(sha256_digest(&raw), image.digest);
    assert_eq!(json(&raw)["mediaType"], testbed::MEDIA_TYPE_OCI_MANIFEST);
    let by_digest = inspect_raw(&registry, &format!("team/app@{}", image.digest)).unwrap();
    assert_eq!(by_digest, raw);
    assert_eq!(
        digest_of(&registry, "team/app:1.0").unwrap(),
        Some(image.digest.clone())
    );

    // Unknown tag, unknown digest, unknown repository: None, not an error.
    assert_eq!(digest_of(&registry, "team/app:nope").unwrap(), None);
    let other = format!("team/app@{}", sha256_digest(b"nothing"));
    assert_eq!(digest_of(&registry, &other).unwrap(), None);
    assert_eq!(digest_of(&registry, "never/pushed:1.0").unwrap(), None);
    eprintln!(
        "unknown repo: {}",
        inspect_raw(&registry, "never/pushed:1.0").unwrap_err()
    );
    let err = inspect_raw(&registry, "team/app:nope").unwrap_err();
    eprintln!("manifest unknown: {err}");
    assert!(matches!(err, TestbedError::Inspect { .. }));
    assert!(
        err.stderr_tail().unwrap().contains("manifest unknown"),
        "{err}"
    );
}

#[test]
fn multi_arch_index_pushed_with_all_keeps_its_digest() {
    let registry = Registry::start(RegistryOptions::default()).unwrap();
    let image = small_image("multi", 2)
        .with_platforms(vec![Platform::linux_amd64(), Platform::linux_arm64()])
        .build()
        .unwrap();
    assert!(image.is_multi_platform());
    let opts = PushOptions {
        all: true,
        ..Default::default()
    };
    let pushed = push(&image, &registry, "multi", "1.0", opts).unwrap();
    assert_eq!(pushed, image.digest);
    assert_eq!(
        digest_of(&registry, "multi:1.0").unwrap(),
        Some(image.digest.clone())
    );
    let index = json(&inspect_raw(&registry, "multi:1.0").unwrap());
    assert_eq!(index["mediaType"], testbed::MEDIA_TYPE_OCI_INDEX);
    assert_eq!(index["manifests"].as_array().unwrap().len(), 2);
    for (platform, digest) in &image.platform_digests {
        let reference = format!("multi@{digest}");
        assert_eq!(
            digest_of(&registry, &reference).unwrap().as_deref(),
            Some(digest.as_str()),
            "{platform} manifest is in the registry"
        );
    }
}

#[test]
fn multi_arch_index_pushed_without_all_is_one_platform() {
    let registry = Registry::start(RegistryOptions::default()).unwrap();
    let image = small_image("multi", 3)
        .with_platforms(vec![Platform::linux_amd64(), Platform::linux_arm64()])
        .build()
        .unwrap();
    let pushed = push(&image, &registry, "one", "1.0", PushOptions::default()).unwrap();
    assert_ne!(pushed, image.digest, "the index is not copied");
    assert!(
        image.platform_digests.iter().any(|(_, d)| *d == pushed),
        "one platform manifest is copied: {pushed}"
    );
}

#[test]
fn auth_registry_rejects_anonymous_and_accepts_an_authfile() {
    let creds = Credentials::new("tester", "s3cret:pw");
    let registry = Registry::start(RegistryOptions {
        auth: Some(creds.clone()),
        ..Default::default()
    })
    .unwrap();
    assert_eq!(registry.credentials(), Some(&creds));
    let image = small_image("auth", 4).build().unwrap();
    push(&image, &registry, "private", "1.0", PushOptions::default()).unwrap();

    let anonymous = Access::default();
    let err = inspect_raw_at(&registry.host(), &anonymous, "private:1.0").unwrap_err();
    eprintln!("anonymous: {err}");
    let stderr = err.stderr_tail().unwrap();
    assert!(stderr.contains("unauthorized"), "{err}");
    // Not mistaken for a missing manifest.
    assert!(digest_of_at(&registry.host(), &anonymous, "private:1.0").is_err());

    let wrong = Access {
        creds: Creds::Basic(Credentials::new("tester", "wrong")),
        ..Default::default()
    };
    let err = inspect_raw_at(&registry.host(), &wrong, "private:1.0").unwrap_err();
    eprintln!("wrong password: {err}");
    assert!(err.stderr_tail().unwrap().contains("unauthorized"), "{err}");

    let dir = tempfile::tempdir().unwrap();
    let authfile = dir.path().join("docker/config.json");
    write_docker_config(&authfile, &[(&registry.host(), &creds)]).unwrap();
    let with_file = Access {
        creds: Creds::AuthFile(authfile),
        ..Default::default()
    };
    assert_eq!(
        digest_of_at(&registry.host(), &with_file, "private:1.0").unwrap(),
        Some(image.digest.clone())
    );
}

#[test]
fn tls_registry_needs_its_ca() {
    let registry = Registry::start(RegistryOptions {
        tls: true,
        ..Default::default()
    })
    .unwrap();
    assert_eq!(registry.url(), format!("https://{}", registry.host()));
    let ca_dir = registry.ca_dir().unwrap().to_path_buf();
    assert!(ca_dir.join("ca.crt").is_file());
    assert!(
        registry
            .ca_pem()
            .unwrap()
            .starts_with("-----BEGIN CERTIFICATE-----")
    );

    // push uses tls_verify=true with the CA.
    let image = small_image("tls", 5).build().unwrap();
    push(&image, &registry, "secure", "1.0", PushOptions::default()).unwrap();
    let verified = Access {
        tls_verify: true,
        cert_dir: Some(ca_dir),
        ..Default::default()
    };
    assert_eq!(
        digest_of_at(&registry.host(), &verified, "secure:1.0").unwrap(),
        Some(image.digest.clone())
    );

    let no_ca = Access {
        tls_verify: true,
        ..Default::default()
    };
    let err = inspect_raw_at(&registry.host(), &no_ca, "secure:1.0").unwrap_err();
    eprintln!("no CA: {err}");
    let stderr = err.stderr_tail().unwrap();
    assert!(
        stderr.contains("x509") || stderr.contains("certificate"),
        "{err}"
    );

    // Without verification skopeo still speaks HTTPS.
    let unverified = Access::default();
    assert!(inspect_raw_at(&registry.host(), &unverified, "secure:1.0").is_ok());
}

#[test]
fn schema1_registry_takes_a_v2s1_push() {
    let registry = Registry::start(RegistryOptions {
        schema1: true,
        ..Default::default()
    })
    .unwrap();
    let image = small_image("old", 6).build().unwrap();
    let opts = PushOptions {
        format: Some(Format::V2s1),
        all: false,
    };
    let pushed = push(&image, &registry, "legacy", "1.0", opts).unwrap();
    let raw = inspect_raw(&registry, "legacy:1.0").unwrap();
    eprintln!("schema1 manifest:\n{}", String::from_utf8_lossy(&raw));
    let manifest = json(&raw);
    assert_eq!(manifest["schemaVersion"], 1);
    assert!(
        manifest["signatures"].is_array(),
        "a signed schema 1 manifest"
    );
    assert_eq!(manifest["fsLayers"].as_array().unwrap().len(), 2);
    // The registry's digest is that of the payload without signatures.
    assert_eq!(manifest_digest(&raw), pushed);
    assert_ne!(sha256_digest(&raw), pushed);
    assert_eq!(
        digest_of(&registry, "legacy:1.0").unwrap(),
        Some(pushed.clone())
    );
    let by_digest = inspect_raw(&registry, &format!("legacy@{pushed}")).unwrap();
    assert_eq!(manifest_digest(&by_digest), pushed);
}

#[test]
fn registry_without_schema1_refuses_a_v2s1_push() {
    let registry = Registry::start(RegistryOptions::default()).unwrap();
    let image = small_image("old", 7).build().unwrap();
    let opts = PushOptions {
        format: Some(Format::V2s1),
        all: false,
    };
    let err = push(&image, &registry, "legacy", "1.0", opts).unwrap_err();
    eprintln!("v2s1 into a registry without schema1: {err}");
    assert!(matches!(err, TestbedError::Push { .. }), "{err}");
    eprintln!("registry log:\n{}", registry.log_tail());
}

#[test]
fn restart_keeps_port_and_content() {
    let mut registry = Registry::start(RegistryOptions::default()).unwrap();
    let host = registry.host();
    let image = small_image("restart", 8).build().unwrap();
    push(&image, &registry, "kept", "1.0", PushOptions::default()).unwrap();

    registry.stop().unwrap();
    assert!(!registry.is_running());
    let err = inspect_raw(&registry, "kept:1.0").unwrap_err();
    eprintln!("stopped registry: {err}");
    assert!(
        err.stderr_tail().unwrap().contains("connection refused"),
        "{err}"
    );
    registry.stop().unwrap(); // idempotent

    registry.restart().unwrap();
    assert!(registry.is_running());
    assert_eq!(registry.host(), host);
    assert_eq!(
        digest_of(&registry, "kept:1.0").unwrap(),
        Some(image.digest.clone())
    );
}

/// `make bench` counts connections by the client address and port of each logged request.
#[test]
fn request_log_names_each_request_with_its_client_port() {
    use std::io::{Read as _, Write as _};
    let registry = Registry::start(RegistryOptions {
        request_log: true,
        ..RegistryOptions::default()
    })
    .unwrap();
    let mut stream = std::net::TcpStream::connect(registry.host()).unwrap();
    let port = stream.local_addr().unwrap().port();
    write!(
        stream,
        "GET /v2/ HTTP/1.1\r\nHost: {}\r\nUser-Agent: probe\r\nConnection: close\r\n\r\n",
        registry.host()
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let log = std::fs::read_to_string(registry.log_path()).unwrap();
    let client = format!("http.request.remoteaddr=\"127.0.0.1:{port}\"");
    let line = log
        .lines()
        .find(|l| l.contains("msg=\"response completed\"") && l.contains(&client))
        .unwrap_or_else(|| panic!("no request from port {port} logged:\n{log}"));
    assert!(
        line.contains("http.request.method=GET") && line.contains("http.request.useragent=probe"),
        "{line}"
    );
    let quiet = Registry::start(RegistryOptions::default()).unwrap();
    let config = std::fs::read_to_string(quiet.dir().join("config.yml")).unwrap();
    assert!(config.contains("level: warn"), "{config}");
}

#[test]
fn drop_kills_the_registry_and_removes_its_directory() {
    let registry = Registry::start(RegistryOptions {
        auth: Some(Credentials::new("a", "b")),
        tls: true,
        schema1: true,
        dir: None,
        request_log: false,
    })
    .unwrap();
    let dir = registry.dir().to_path_buf();
    let port = registry.port();
    assert!(dir.join("config.yml").is_file());
    let config = std::fs::read_to_string(dir.join("config.yml")).unwrap();
    assert!(config.contains("htpasswd") && config.contains("tls:") && config.contains("schema1"));
    drop(registry);
    assert!(!dir.exists());
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
}

#[test]
fn restart_waits_for_a_port_taken_meanwhile() {
    let mut registry = Registry::start(RegistryOptions::default()).unwrap();
    registry.stop().unwrap();
    let squatter = std::net::TcpListener::bind(("127.0.0.1", registry.port())).unwrap();
    let release = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(700));
        drop(squatter);
    });
    registry.restart().unwrap();
    release.join().unwrap();
    assert!(registry.is_running());
    assert_eq!(digest_of(&registry, "any:1.0").unwrap(), None);
    assert!(
        std::fs::read_to_string(registry.log_path())
            .unwrap()
            .contains("address already in use"),
        "the failed attempts are in the log"
    );
}

#[test]
fn restart_on_a_port_held_too_long_fails_with_the_log_tail() {
    let mut registry = Registry::start(RegistryOptions::default()).unwrap();
    registry.stop().unwrap();
    let _squatter = std::net::TcpListener::bind(("127.0.0.1", registry.port())).unwrap();
    let started = std::time::Instant::now();
    let err = registry.restart().unwrap_err();
    eprintln!("{err}");
    assert!(started.elapsed() >= testbed::READY_TIMEOUT);
    assert!(matches!(err, TestbedError::StartRegistry { .. }), "{err}");
    assert!(err.to_string().contains("address already in use"), "{err}");
    assert!(!registry.is_running());
}
