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
        let domain = normalize_domain(host).to_owned();
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
            Naming::Flat => fold(source.repository()),
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
        let path = &repository[self.domain.len() + 1..];
        let legacy = match (source.tag(), source.digest()) {
            (None, Some(d)) => Some(ImageRef::from_parts(
                &self.domain,
                path,
                Some(&legacy_tag_for_digest(d)),
            )),
            _ => None,
        };
        let image = ImageRef::from_parts(&self.domain, path, Some(&tag));
        Ok(BackupTarget {
            repository,
            tag,
            image,
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
mod tests;
