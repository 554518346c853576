use super::*;

const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// (input, normalized) for references the runtime accepts.
fn valid() -> Vec<(String, String)> {
    valid_by_name()
        .into_iter()
        .chain(valid_with_digest_or_long_tag())
        .collect()
}

fn valid_by_name() -> Vec<(String, String)> {
    [
        ("nginx", "docker.io/library/nginx"),
        ("nginx:1.27", "docker.io/library/nginx:1.27"),
        ("nginx:latest", "docker.io/library/nginx:latest"),
        ("library/nginx", "docker.io/library/nginx"),
        ("docker.io/nginx", "docker.io/library/nginx"),
        (
            "docker.io/library/nginx:1.27",
            "docker.io/library/nginx:1.27",
        ),
        ("index.docker.io/nginx", "docker.io/library/nginx"),
        (
            "index.docker.io/library/nginx:1",
            "docker.io/library/nginx:1",
        ),
        ("bitnami/nginx", "docker.io/bitnami/nginx"),
        (
            "bitnami/nginx:1.25.3-debian-11-r0",
            "docker.io/bitnami/nginx:1.25.3-debian-11-r0",
        ),
        ("docker.io/bitnami/nginx", "docker.io/bitnami/nginx"),
        ("ghcr.io/x/nginx", "ghcr.io/x/nginx"),
        ("ghcr.io/x/nginx:v1", "ghcr.io/x/nginx:v1"),
        ("quay.io/library/nginx", "quay.io/library/nginx"),
        ("quay.io/nginx", "quay.io/nginx"),
        ("registry.k8s.io/pause:3.9", "registry.k8s.io/pause:3.9"),
        (
            "registry.k8s.io/kube-state-metrics/kube-state-metrics:v2.10.0",
            "registry.k8s.io/kube-state-metrics/kube-state-metrics:v2.10.0",
        ),
        ("localhost/foo", "localhost/foo"),
        ("localhost:5000/foo", "localhost:5000/foo"),
        ("localhost:5000/foo/bar:1", "localhost:5000/foo/bar:1"),
        ("localhost", "docker.io/library/localhost"),
        ("localhost:5000", "docker.io/library/localhost:5000"),
        ("127.0.0.1:5000/a/b", "127.0.0.1:5000/a/b"),
        ("[::1]:5000/foo", "[::1]:5000/foo"),
        ("localhost:1/foo", "localhost:1/foo"),
        ("registry.io:65535/foo", "registry.io:65535/foo"),
        ("[2001:db8::1]/foo:v", "[2001:db8::1]/foo:v"),
        ("Registry.Example.COM/foo", "Registry.Example.COM/foo"),
        ("Foo/bar", "Foo/bar"),
        (
            "my-registry.local:8443/team/app_1:2024.01",
            "my-registry.local:8443/team/app_1:2024.01",
        ),
        ("a/b/c/d/e/f", "docker.io/a/b/c/d/e/f"),
        ("foo_bar", "docker.io/library/foo_bar"),
        ("foo__bar", "docker.io/library/foo__bar"),
        ("foo---bar", "docker.io/library/foo---bar"),
        ("foo.bar", "docker.io/library/foo.bar"),
        ("a", "docker.io/library/a"),
        ("0", "docker.io/library/0"),
        (
            "nginx:UPPER_case.tag-1",
            "docker.io/library/nginx:UPPER_case.tag-1",
        ),
        ("nginx:_underscore", "docker.io/library/nginx:_underscore"),
        ("xn--bcher-kva.example/app", "xn--bcher-kva.example/app"),
        ("a-b.c/app", "a-b.c/app"),
    ]
    .into_iter()
    .map(|(a, b)| (a.to_owned(), b.to_owned()))
    .collect()
}

fn valid_with_digest_or_long_tag() -> Vec<(String, String)> {
    let d = D;
    vec![
        (format!("nginx@{d}"), format!("docker.io/library/nginx@{d}")),
        (
            format!("nginx:1.27@{d}"),
            format!("docker.io/library/nginx:1.27@{d}"),
        ),
        (format!("ghcr.io/x/y:t@{d}"), format!("ghcr.io/x/y:t@{d}")),
        (
            format!("localhost:5000/foo@{d}"),
            format!("localhost:5000/foo@{d}"),
        ),
        (
            format!("quay.io/a/b@sha512:{}", "ab".repeat(64)),
            format!("quay.io/a/b@sha512:{}", "ab".repeat(64)),
        ),
        (
            format!("nginx:{}", "t".repeat(128)),
            format!("docker.io/library/nginx:{}", "t".repeat(128)),
        ),
    ]
}

fn invalid() -> Vec<(String, Problem)> {
    use Problem::*;
    let long = "a".repeat(250);
    [
        ("", Empty),
        ("Nginx", Uppercase),
        ("docker.io/Library/nginx", Uppercase),
        ("ghcr.io/X/nginx", Uppercase),
        ("nginx:", InvalidTag(String::new())),
        ("nginx:-x", InvalidTag("-x".into())),
        ("nginx:.x", InvalidTag(".x".into())),
        ("nginx:a+b", InvalidTag("a+b".into())),
        ("nginx:a:b", InvalidPathComponent("nginx:a".into())),
        ("-nginx", InvalidPathComponent("-nginx".into())),
        ("nginx-", InvalidPathComponent("nginx-".into())),
        ("ngi..nx", InvalidPathComponent("ngi..nx".into())),
        ("ngi___nx", InvalidPathComponent("ngi___nx".into())),
        ("ngi._nx", InvalidPathComponent("ngi._nx".into())),
        ("foo//bar", InvalidPathComponent(String::new())),
        ("foo/", InvalidPathComponent(String::new())),
        ("/foo", InvalidPathComponent(String::new())),
        ("ghcr.io/", InvalidPathComponent(String::new())),
        ("a b", InvalidPathComponent("a b".into())),
        ("nginx\n", InvalidPathComponent("nginx\n".into())),
        ("--help", InvalidPathComponent("--help".into())),
        ("-o=/etc/passwd", InvalidPathComponent("-o=".into())),
        ("docker://nginx", InvalidDomain("docker:".into())),
        ("nginx;rm", InvalidPathComponent("nginx;rm".into())),
        ("$(id)", InvalidPathComponent("$(id)".into())),
        ("-bad.io/foo", InvalidDomain("-bad.io".into())),
        ("bad-.io/foo", InvalidDomain("bad-.io".into())),
        ("bad..io/foo", InvalidDomain("bad..io".into())),
        ("host:port/foo", InvalidDomain("host:port".into())),
        ("host:/foo", InvalidDomain("host:".into())),
        ("host.io:99999/foo", InvalidDomain("host.io:99999".into())),
        ("host.io:65536/foo", InvalidDomain("host.io:65536".into())),
        ("host.io:0/foo", InvalidDomain("host.io:0".into())),
        ("host.io:+80/foo", InvalidDomain("host.io:+80".into())),
        ("[::1]:70000/foo", InvalidDomain("[::1]:70000".into())),
        ("[zz::1]/foo", InvalidDomain("[zz::1]".into())),
        ("[::1/foo", InvalidDomain("[::1".into())),
        ("my_host.io/foo", InvalidDomain("my_host.io".into())),
        ("nginx@sha256:abc", InvalidDigest("sha256:abc".into())),
        ("nginx@sha256:", InvalidDigest("sha256:".into())),
        (
            "nginx@md5:0123456789abcdef0123456789abcdef",
            InvalidDigest("md5:0123456789abcdef0123456789abcdef".into()),
        ),
        (
            "nginx@sha256:0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef",
            InvalidDigest(
                "sha256:0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef".into(),
            ),
        ),
        ("nginx@", InvalidDigest(String::new())),
        (
            "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            ImageId,
        ),
    ]
    .into_iter()
    .map(|(a, p)| (a.to_owned(), p))
    .chain([
        (
            format!("nginx:{}", "t".repeat(129)),
            InvalidTag("t".repeat(129)),
        ),
        (format!("quay.io/{long}"), NameTooLong(8 + 250)),
        (long.clone(), NameTooLong(10 + 8 + 250)),
    ])
    .collect()
}

#[test]
fn table_covers_at_least_sixty_references() {
    assert!(
        valid().len() + invalid().len() >= 60,
        "{}",
        valid().len() + invalid().len()
    );
}

#[test]
fn valid_references_normalize() {
    for (input, want) in valid() {
        let got = ImageRef::parse(&input).unwrap_or_else(|e| panic!("{input:?}: {e}"));
        assert_eq!(got.to_string(), want, "input {input:?}");
        // Normalizing is idempotent: the runtime reads our output the same way.
        assert_eq!(ImageRef::parse(&want).unwrap(), got, "re-parse of {want:?}");
    }
}

#[test]
fn invalid_references_name_the_rule() {
    for (input, want) in invalid() {
        match ImageRef::parse(&input) {
            Ok(r) => panic!("{input:?} parsed as {r}"),
            Err(e) => assert_eq!(e.problem, want, "input {input:?}"),
        }
    }
}

#[test]
fn error_message_names_input_and_expectation() {
    let e = ImageRef::parse("Nginx:1").unwrap_err();
    assert_eq!(
        e.to_string(),
        r#"invalid image reference "Nginx:1": repository name must be lowercase"#
    );
    let e = ImageRef::parse(&"x".repeat(10_000)).unwrap_err();
    assert!(
        e.to_string().len() < 400,
        "long inputs are shortened in messages"
    );
}

#[test]
fn tag_and_digest_parts() {
    let r = ImageRef::parse(&format!("nginx:1.27@{D}")).unwrap();
    assert_eq!(r.domain(), "docker.io");
    assert_eq!(r.path(), "library/nginx");
    assert_eq!(r.tag(), Some("1.27"));
    assert_eq!(r.digest().map(Digest::as_str), Some(D));
    assert_eq!(
        r.by_digest(r.digest().unwrap()).to_string(),
        format!("docker.io/library/nginx@{D}")
    );
    assert_eq!(r.by_tag("x").to_string(), "docker.io/library/nginx:x");
}

#[test]
fn canonical_names_one_image_one_way() {
    let a = ImageRef::parse("nginx").unwrap().canonical().into_owned();
    let b = ImageRef::parse("docker.io/library/nginx:latest")
        .unwrap()
        .canonical()
        .into_owned();
    let c = ImageRef::parse("index.docker.io/library/nginx:latest")
        .unwrap()
        .canonical()
        .into_owned();
    assert_eq!(a, b);
    assert_eq!(b, c);
    assert_ne!(a, ImageRef::parse("nginx:1.27").unwrap().canonical());
    assert_eq!(a, "docker.io/library/nginx:latest");
    let by_digest = ImageRef::parse(&format!("nginx@{D}")).unwrap();
    assert_eq!(
        by_digest.canonical(),
        format!("docker.io/library/nginx@{D}")
    );
    let both = ImageRef::parse(&format!("nginx:1.27@{D}")).unwrap();
    assert_eq!(
        both.canonical(),
        format!("docker.io/library/nginx:1.27@{D}")
    );
}

#[test]
fn sha256_of_matches_known_value() {
    assert_eq!(
        Digest::sha256_of(b"").as_str(),
        "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
}

#[test]
fn no_panic_on_arbitrary_bytes() {
    let samples = [
        "@",
        ":",
        "/",
        "[",
        "]",
        "[]",
        "a@b@c",
        "a:b:c/d",
        "é/ü",
        "a/é",
        "🦀",
        "[::1]",
        "x@sha256:é",
    ];
    for s in samples {
        let _ = ImageRef::parse(s);
    }
    for len in 0..300 {
        let s: String = (0..len)
            .map(|i| ['a', '/', ':', '.', '@', '-', '_', 'é'][i % 8])
            .collect();
        let _ = ImageRef::parse(&s);
    }
}

/// No input panics, and whatever parses names the same image again when re-parsed from
/// its canonical form (what later reaches skopeo's arguments).
#[test]
fn arbitrary_strings_never_panic_and_parsed_ones_round_trip() {
    const ALPHABET: &[u8] = b"abcxyzAZ0189-_.:/@[]sha256";
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut parsed = 0;
    for _ in 0..50_000 {
        let len = (next() % 40) as usize;
        let s: String = (0..len)
            .map(|_| ALPHABET[(next() % ALPHABET.len() as u64) as usize] as char)
            .collect();
        if let Ok(r) = ImageRef::parse(&s) {
            parsed += 1;
            let again = ImageRef::parse(&r.canonical()).unwrap();
            assert_eq!(again.canonical(), r.canonical(), "{s:?}");
            assert_eq!(again.repository(), r.repository(), "{s:?}");
        }
    }
    assert!(
        parsed > 100,
        "the generator also produces valid references ({parsed})"
    );
}
