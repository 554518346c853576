//! Where a source image lands in the backup registry, and the reference a workload is
//! patched to.
//!
//! `flat` folds the whole source repository, registry host included, into one path
//! component, for registries that allow a single level under the account (Docker Hub, Quay).
//! The fold keeps every letter and digit and rewrites only the separators between them:
//!
//! | in the source            | in the backup name | example                                   |
//! |--------------------------|--------------------|-------------------------------------------|
//! | `/`                      | `_`                | `ghcr.io/x/nginx` → `ghcr.io_x_nginx`     |
//! | `.`                      | `.`                |                                           |
//! | `-`                      | `-`                |                                           |
//! | `_`                      | `__`               | `my_app` → `my__app`                      |
//! | `:` (before a port)      | `--`               | `localhost:5000/a` → `localhost--5000_a`  |
//! | `__`                     | `---`              |                                           |
//! | `-` repeated n ≥ 2 times | `-` n + 2 times    | `a--b` → `a----b`                         |
//!
//! Each source separator maps to a different backup separator and letters and digits are
//! untouched, so the fold is injective: two different source repositories can never share a
//! backup repository. The common names (`docker.io_library_nginx`) use only single
//! separators, which every registry accepts; the rare ones use `__` and repeated dashes, which
//! the OCI distribution spec's name grammar allows.
//!
//! `nested` keeps the path: `<backup>/<host>/<path>`, with the host folded by the same rule
//! (a port's `:` is not allowed in a path).

use std::fmt;
use std::str::FromStr;

use thiserror::Error;

use crate::image::reference::{
    Digest, ImageRef, NAME_TOTAL_LENGTH_MAX, TAG_LENGTH_MAX, normalize_domain, valid_domain,
    valid_path_component,
};

/// How a source repository becomes a backup repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Naming {
    #[default]
    Flat,
    Nested,
}

/// What the patched workload names: the tag and the digest, or the tag alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Pin {
    #[default]
    Digest,
    Tag,
}

impl FromStr for Naming {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "flat" => Ok(Naming::Flat),
            "nested" => Ok(Naming::Nested),
            _ => Err(()),
        }
    }
}

impl FromStr for Pin {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "digest" => Ok(Pin::Digest),
            "tag" => Ok(Pin::Tag),
            _ => Err(()),
        }
    }
}

impl fmt::Display for Naming {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Naming::Flat => "flat",
            Naming::Nested => "nested",
        })
    }
}

impl fmt::Display for Pin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Pin::Digest => "digest",
            Pin::Tag => "tag",
        })
    }
}

/// Why a source cannot be given a backup name.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum NamingError {
    #[error(
        "backup repository for {image} would be {len} characters long; at most 255 are allowed (shorten the backup registry path)"
    )]
    NameTooLong { image: String, len: usize },
    #[error("{image} is on an IPv6 literal host, which cannot be folded into a repository name")]
    Ipv6Host { image: String },
}

/// The operator's registry plus an optional path, e.g. `quay.io/my-org`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupRegistry {
    domain: String,
    path: Option<String>,
}

impl BackupRegistry {
    /// Parses `host[:port][/path]`. The host is required: a bare `my-org` would silently
    /// mean `docker.io/library/my-org`, which is never what an operator meant.
    pub fn parse(s: &str) -> Result<Self, String> {
        const EXPECTED: &str = "expected a registry host with an optional path, e.g. quay.io/my-org, docker.io/my-org or 127.0.0.1:5000";
        let trimmed = s.trim_end_matches('/');
        let (host, path) = match trimmed.split_once('/') {
            Some((host, path)) => (host, Some(path)),
            None => (trimmed, None),
        };
        if !(host.contains(['.', ':']) || host == "localhost") || !valid_domain(host) {
            return Err(EXPECTED.to_owned());
        }
        if let Some(path) = path
            && let Some(bad) = path.split('/').find(|c| !valid_path_component(c))
        {
            return Err(format!(
                "path component {bad:?} is not valid (lowercase letters and digits, separated by '.', '_', '__' or dashes); {EXPECTED}"
            ));
        }
        let domain = normalize_domain(host);
        if domain.starts_with('[') {
            return Err(format!("an IPv6 literal host cannot be used; {EXPECTED}"));
        }
        Ok(BackupRegistry {
            domain,
            path: path.map(str::to_owned),
        })
    }

    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// True when `image` already lives under this backup location: it is not copied again.
    pub fn contains(&self, image: &ImageRef) -> bool {
        if !image.domain().eq_ignore_ascii_case(&self.domain) {
            return false;
        }
        match &self.path {
            None => true,
            Some(p) => {
                image.path() == p
                    || image
                        .path()
                        .strip_prefix(p.as_str())
                        .is_some_and(|r| r.starts_with('/'))
            }
        }
    }

    /// The backup repository and tag for `source`.
    pub fn target(&self, source: &ImageRef, naming: Naming) -> Result<BackupTarget, NamingError> {
        if source.domain().starts_with('[') {
            return Err(NamingError::Ipv6Host {
                image: source.to_string(),
            });
        }
        let relative = match naming {
            Naming::Flat => fold(&source.repository()),
            Naming::Nested => format!("{}/{}", fold(source.domain()), source.path()),
        };
        let repository = match &self.path {
            Some(p) => format!("{}/{p}/{relative}", self.domain),
            None => format!("{}/{relative}", self.domain),
        };
        if repository.len() > NAME_TOTAL_LENGTH_MAX {
            return Err(NamingError::NameTooLong {
                image: source.to_string(),
                len: repository.len(),
            });
        }
        let tag = match (source.tag(), source.digest()) {
            (Some(t), _) => t.to_owned(),
            (None, Some(d)) => tag_for_digest(d),
            (None, None) => "latest".to_owned(),
        };
        let path = repository[self.domain.len() + 1..].to_owned();
        let legacy = match (source.tag(), source.digest()) {
            (None, Some(d)) => Some(ImageRef::from_parts(
                self.domain.clone(),
                path.clone(),
                Some(legacy_tag_for_digest(d)),
            )),
            _ => None,
        };
        Ok(BackupTarget {
            repository,
            tag: tag.clone(),
            image: ImageRef::from_parts(self.domain.clone(), path, Some(tag)),
            legacy,
        })
    }
}

impl fmt::Display for BackupRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.path {
            Some(p) => write!(f, "{}/{p}", self.domain),
            None => f.write_str(&self.domain),
        }
    }
}

/// A digest-only source still needs a tag in the backup registry, or it would be garbage
/// collected as untagged: `digest-<algorithm>-<hex>`, cut to the tag length limit for longer
/// digests.
///
/// Not `sha256-<hex>`: that is the OCI 1.1 referrers fallback tag, which a registry without
/// the referrers API gets from the first signature or SBOM pushed for that digest — the copy
/// would lose its tag and could be garbage-collected under running workloads — and the prefix
/// of cosign's `.sig`/`.att`/`.sbom` tags. No tool writes tags starting with `digest-`.
fn tag_for_digest(d: &Digest) -> String {
    let mut tag = format!("digest-{}-{}", d.algorithm(), d.hex());
    tag.truncate(TAG_LENGTH_MAX);
    tag
}

/// The tag versions before 0.2 gave a digest-only source (`sha256-<hex>`): copies made under
/// it are still found, and given the current tag, instead of being copied again.
fn legacy_tag_for_digest(d: &Digest) -> String {
    let mut tag = format!("{}-{}", d.algorithm(), d.hex());
    tag.truncate(TAG_LENGTH_MAX);
    tag
}

/// The injective separator rewrite documented at the top of this module.
fn fold(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 8);
    let mut chars = name.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
            continue;
        }
        let mut run = String::from(c);
        while let Some(&n) = chars.peek() {
            if n.is_ascii_alphanumeric() {
                break;
            }
            run.push(n);
            chars.next();
        }
        out.push_str(&match run.as_str() {
            "/" => "_".to_owned(),
            "." => ".".to_owned(),
            "-" => "-".to_owned(),
            "_" => "__".to_owned(),
            ":" => "--".to_owned(),
            "__" => "---".to_owned(),
            dashes => "-".repeat(dashes.len() + 2),
        });
    }
    out
}

/// Whether `backup` is where image-cloner would have put `original` — under some backup
/// location, with either naming, at the tag it would have used. This is how `restore` tells
/// an annotation image-cloner wrote from one edited to smuggle an arbitrary image in.
pub fn is_copy_of(backup: &ImageRef, original: &ImageRef) -> bool {
    let repository = backup.repository();
    repository
        .match_indices('/')
        .map(|(i, _)| &repository[..i])
        .filter_map(|prefix| BackupRegistry::parse(prefix).ok())
        .any(|location| {
            [Naming::Flat, Naming::Nested].into_iter().any(|naming| {
                location.target(original, naming).is_ok_and(|t| {
                    let legacy = t.legacy_tagged().and_then(ImageRef::tag);
                    t.repository == repository
                        && (backup.tag() == Some(t.tag.as_str())
                            || (legacy.is_some() && backup.tag() == legacy))
                })
            })
        })
}

/// Where a source goes: a repository and a tag in the backup registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupTarget {
    /// `domain/path`, fully qualified.
    pub repository: String,
    pub tag: String,
    image: ImageRef,
    /// For a digest-only source: where an earlier version of image-cloner put it.
    legacy: Option<ImageRef>,
}

impl BackupTarget {
    /// The destination skopeo writes to: the repository at the tag.
    pub fn tagged(&self) -> &ImageRef {
        &self.image
    }

    /// Where versions before 0.2 tagged a digest-only source (`sha256-<hex>`), if this is one.
    pub fn legacy_tagged(&self) -> Option<&ImageRef> {
        self.legacy.as_ref()
    }

    /// The reference a workload is patched to.
    pub fn pinned(&self, digest: &Digest, pin: Pin) -> String {
        match pin {
            Pin::Digest => format!("{}:{}@{digest}", self.repository, self.tag),
            Pin::Tag => format!("{}:{}", self.repository, self.tag),
        }
    }
}

#[cfg(test)]
mod tests {
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
                if let Some(prev) = seen.insert(t.clone(), r.repository()) {
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
}
