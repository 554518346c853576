use std::collections::HashMap;

use super::*;

const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn backup(s: &str) -> BackupRegistry {
    BackupRegistry::parse(s).unwrap()
}

fn flat(src: &str) -> String {
    backup("quay.io/cargaona")
        .target(&ImageRef::parse(src).unwrap(), Naming::Flat)
        .unwrap()
        .repository
}

/// Reverses [`fold`], to prove it injective on every name the tests produce.
fn unfold(folded: &str) -> String {
    let mut out = String::new();
    let b: Vec<char> = folded.chars().collect();
    let mut i = 0;
    while i < b.len() {
        if b[i].is_ascii_alphanumeric() {
            out.push(b[i]);
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !b[i].is_ascii_alphanumeric() {
            i += 1;
        }
        let run: String = b[start..i].iter().collect();
        out.push_str(&match run.as_str() {
            "_" => "/".to_owned(),
            "." => ".".to_owned(),
            "-" => "-".to_owned(),
            "__" => "_".to_owned(),
            "--" => ":".to_owned(),
            "---" => "__".to_owned(),
            dashes => "-".repeat(dashes.len() - 2),
        });
    }
    out
}

#[test]
fn classic_collisions_land_in_different_repositories() {
    let sources = [
        "nginx",
        "bitnami/nginx",
        "ghcr.io/x/nginx",
        "quay.io/library/nginx",
        "quay.io/nginx",
        "docker.io/library_nginx",
        "library/nginx_x",
        "library/nginx/x",
        "x/nginx",
        "ghcr.io/x_nginx",
        "ghcr.io/x__nginx",
        "ghcr.io/x-nginx",
        "ghcr.io/x--nginx",
        "ghcr.io/x---nginx",
        "ghcr.io/x.nginx",
        "ghcr.io:5000/x/nginx",
        "ghcr.io-5000/x/nginx",
        "localhost:5000/x/nginx",
        "localhost/5000/x/nginx",
    ];
    for naming in [Naming::Flat, Naming::Nested] {
        let mut seen = HashMap::new();
        for s in sources {
            let t = backup("quay.io/cargaona")
                .target(&ImageRef::parse(s).unwrap(), naming)
                .unwrap();
            if let Some(other) = seen.insert(t.repository.clone(), s) {
                panic!("{naming}: {s} and {other} both map to {}", t.repository);
            }
        }
    }
}

#[test]
fn flat_names_are_readable_and_documented() {
    assert_eq!(flat("nginx"), "quay.io/cargaona/docker.io_library_nginx");
    assert_eq!(
        flat("bitnami/nginx"),
        "quay.io/cargaona/docker.io_bitnami_nginx"
    );
    assert_eq!(flat("ghcr.io/x/nginx"), "quay.io/cargaona/ghcr.io_x_nginx");
    assert_eq!(
        flat("quay.io/library/nginx"),
        "quay.io/cargaona/quay.io_library_nginx"
    );
    assert_eq!(
        flat("registry.k8s.io/kube-state-metrics/kube-state-metrics"),
        "quay.io/cargaona/registry.k8s.io_kube-state-metrics_kube-state-metrics"
    );
    assert_eq!(
        flat("localhost:5000/my_app"),
        "quay.io/cargaona/localhost--5000_my__app"
    );
    assert_eq!(
        flat("a__b--c"),
        "quay.io/cargaona/docker.io_library_a---b----c"
    );
}

#[test]
fn fold_round_trips() {
    for s in [
        "docker.io/library/nginx",
        "localhost:5000/a_b/c__d/e-f/g--h/i---j/k.l",
        "127.0.0.1:5000/x",
        "a-b.c:1/d",
    ] {
        let f = fold(s);
        assert!(valid_path_component(&f), "{f} is a valid path component");
        assert_eq!(unfold(&f), s);
    }
}

#[test]
fn flat_is_injective_over_generated_names() {
    // Every repository built from a small alphabet of letters and separators, up to a
    // length: distinct valid sources must give distinct backup names.
    let atoms = ["a", "b", ".", "_", "__", "-", "--", "/"];
    let mut names = vec![String::new()];
    for _ in 0..5 {
        let mut next = Vec::new();
        for n in &names {
            for a in atoms {
                next.push(format!("{n}{a}"));
            }
        }
        names.extend(next);
    }
    let mut seen: HashMap<String, String> = HashMap::new();
    let b = backup("quay.io/c");
    for n in names {
        for host in ["docker.io", "a.b:1", "a-b.c"] {
            let Ok(r) = ImageRef::parse(&format!("{host}/{n}")) else {
                continue;
            };
            let t = b.target(&r, Naming::Flat).unwrap().repository;
            if let Some(prev) = seen.insert(t.clone(), r.repository().to_owned()) {
                assert_eq!(prev, r.repository(), "collision on {t}");
            }
        }
    }
    assert!(
        seen.len() > 1000,
        "the generator produced {} names",
        seen.len()
    );
}

#[test]
fn nested_keeps_the_path() {
    let b = backup("registry.example.com:5000/mirror");
    let t = b
        .target(
            &ImageRef::parse("ghcr.io/x/nginx:1").unwrap(),
            Naming::Nested,
        )
        .unwrap();
    assert_eq!(
        t.repository,
        "registry.example.com:5000/mirror/ghcr.io/x/nginx"
    );
    let t = b
        .target(
            &ImageRef::parse("localhost:5000/a/b").unwrap(),
            Naming::Nested,
        )
        .unwrap();
    assert_eq!(
        t.repository,
        "registry.example.com:5000/mirror/localhost--5000/a/b"
    );
    let t = backup("10.0.0.1:5000")
        .target(&ImageRef::parse("nginx").unwrap(), Naming::Nested)
        .unwrap();
    assert_eq!(t.repository, "10.0.0.1:5000/docker.io/library/nginx");
}

#[test]
fn tags_are_kept_and_digest_only_sources_get_one() {
    let b = backup("quay.io/c");
    let t = b
        .target(&ImageRef::parse("nginx:1.27").unwrap(), Naming::Flat)
        .unwrap();
    assert_eq!(t.tag, "1.27");
    let t = b
        .target(&ImageRef::parse("nginx").unwrap(), Naming::Flat)
        .unwrap();
    assert_eq!(t.tag, "latest");
    let t = b
        .target(
            &ImageRef::parse(&format!("nginx@{D}")).unwrap(),
            Naming::Flat,
        )
        .unwrap();
    assert_eq!(t.tag, format!("digest-sha256-{}", &D[7..]));
    assert!(
        !t.tag.starts_with("sha256-"),
        "never the referrers fallback tag"
    );
    assert_eq!(
        t.legacy_tagged().map(ToString::to_string),
        Some(format!("{}:sha256-{}", t.repository, &D[7..]))
    );
    let t = b
        .target(
            &ImageRef::parse(&format!("nginx:1.27@{D}")).unwrap(),
            Naming::Flat,
        )
        .unwrap();
    assert_eq!(t.tag, "1.27");
    let long = format!("nginx@sha512:{}", "ab".repeat(64));
    let t = b
        .target(&ImageRef::parse(&long).unwrap(), Naming::Flat)
        .unwrap();
    assert_eq!(t.tag.len(), 128);
    assert!(t.tagged().to_string().ends_with(&t.tag));
    assert_eq!(
        ImageRef::parse(&t.tagged().to_string()).unwrap(),
        *t.tagged()
    );
}

#[test]
fn pinning() {
    let b = backup("quay.io/c");
    let t = b
        .target(&ImageRef::parse("nginx:1.27").unwrap(), Naming::Flat)
        .unwrap();
    let d = Digest::parse(D).unwrap();
    assert_eq!(
        t.pinned(&d, Pin::Digest),
        format!("quay.io/c/docker.io_library_nginx:1.27@{D}")
    );
    assert_eq!(
        t.pinned(&d, Pin::Tag),
        "quay.io/c/docker.io_library_nginx:1.27"
    );
    // What we write into a workload is itself a valid reference.
    assert!(ImageRef::parse(&t.pinned(&d, Pin::Digest)).is_ok());
}

#[test]
fn images_already_in_the_backup_are_recognized() {
    let b = backup("quay.io/cargaona");
    let yes = |s: &str| b.contains(&ImageRef::parse(s).unwrap());
    assert!(yes("quay.io/cargaona/docker.io_library_nginx:1"));
    assert!(yes("quay.io/cargaona/a/b/c"));
    assert!(!yes("quay.io/cargaonax/a"));
    assert!(!yes("quay.io/other/a"));
    assert!(!yes("ghcr.io/cargaona/a"));
    let hub = backup("docker.io/cargaona");
    assert!(hub.contains(&ImageRef::parse("cargaona/x").unwrap()));
    assert!(hub.contains(&ImageRef::parse("index.docker.io/cargaona/x").unwrap()));
    assert!(!hub.contains(&ImageRef::parse("nginx").unwrap()));
    let whole = backup("127.0.0.1:5000");
    assert!(whole.contains(&ImageRef::parse("127.0.0.1:5000/anything").unwrap()));
}

#[test]
fn backup_registry_needs_a_host() {
    for bad in [
        "cargaona",
        "cargaona/x",
        "",
        "quay.io/Bad",
        "quay.io/x:tag",
        "-x.io/y",
    ] {
        assert!(BackupRegistry::parse(bad).is_err(), "{bad:?} accepted");
    }
    for good in [
        "quay.io/cargaona",
        "docker.io/cargaona",
        "127.0.0.1:5000",
        "localhost:5000/a/b",
        "quay.io/x/",
    ] {
        assert!(BackupRegistry::parse(good).is_ok(), "{good:?} refused");
    }
    assert_eq!(
        backup("index.docker.io/cargaona").to_string(),
        "docker.io/cargaona"
    );
}

#[test]
fn overlong_names_are_refused_not_truncated() {
    let b = backup(&format!("quay.io/{}", "p".repeat(200)));
    let src = ImageRef::parse(&format!("ghcr.io/{}", "n".repeat(60))).unwrap();
    assert!(matches!(
        b.target(&src, Naming::Flat),
        Err(NamingError::NameTooLong { .. })
    ));
}

#[test]
fn a_backup_reference_is_recognised_as_the_copy_of_its_original() {
    let parse = |s: &str| ImageRef::parse(s).unwrap();
    let nginx = parse("nginx:1.27");
    let pinned = format!("quay.io/my-org/docker.io_library_nginx:1.27@{D}");
    assert!(is_copy_of(&parse(&pinned), &nginx));
    assert!(is_copy_of(
        &parse("127.0.0.1:5000/m/docker.io/library/nginx:1.27"),
        &nginx
    ));
    // Another image, another tag, or a hand-written repository: not a copy.
    assert!(!is_copy_of(&parse(&pinned), &parse("redis:1.27")));
    assert!(!is_copy_of(&parse(&pinned), &parse("nginx:1.28")));
    assert!(!is_copy_of(&parse("quay.io/my-org/evil:1.27"), &nginx));
    // A digest-only original, under the current and the legacy tag.
    let by_digest = parse(&format!("nginx@{D}"));
    let hex = &D[7..];
    for tag in [format!("digest-sha256-{hex}"), format!("sha256-{hex}")] {
        let copy = parse(&format!("quay.io/my-org/docker.io_library_nginx:{tag}@{D}"));
        assert!(is_copy_of(&copy, &by_digest), "{tag}");
    }
}
