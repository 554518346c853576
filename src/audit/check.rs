//! Is a backup reference still there? One manifest HEAD per distinct reference (a HEAD is not
//! a pull against a registry's rate limit), at a bounded concurrency outside the copy slots:
//! the audit, `image-cloner status` and `plan --check-backup` all ask this way.

use std::collections::HashMap;
use std::fmt;

use futures::StreamExt as _;
use serde::Serialize;

use crate::audit::refs::{References, tag_shared_with};
use crate::image::reference::ImageRef;
use crate::registry::mirror::Mirror;

/// What the backup registry says about one reference.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "liveness", rename_all = "snake_case")]
pub enum Liveness {
    /// Its tag resolves to the digest it pins (or, pinned by tag alone, exists).
    Alive,
    /// Its tag is gone.
    Missing,
    /// Its tag resolves to another digest.
    WrongDigest { found: String },
    /// The registry could not be asked.
    Unknown { error: String },
}

impl Liveness {
    /// The copy is gone or moved: copy it again (or report it).
    pub fn broken(&self) -> bool {
        matches!(self, Liveness::Missing | Liveness::WrongDigest { .. })
    }
}

impl fmt::Display for Liveness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Liveness::Alive => f.write_str("present"),
            Liveness::Missing => f.write_str("missing from the backup registry"),
            Liveness::WrongDigest { found } => write!(f, "its tag now resolves to {found}"),
            Liveness::Unknown { error } => write!(f, "could not be checked: {error}"),
        }
    }
}

/// The tag of `image` is what is asked: a copy whose tag is gone is unreferenced, and a
/// registry's garbage collection deletes it even while pods still pull it by digest.
fn probe(image: &ImageRef) -> ImageRef {
    match image.tag() {
        Some(tag) => image.by_tag(tag),
        None => image.clone(),
    }
}

/// One request: the liveness of `image`.
pub async fn liveness(mirror: &Mirror, image: &ImageRef) -> Liveness {
    match mirror.registry_digest(&probe(image)).await {
        Ok(Some(found)) => match image.digest() {
            Some(pinned) if *pinned != found => Liveness::WrongDigest {
                found: found.to_string(),
            },
            _ => Liveness::Alive,
        },
        Ok(None) => Liveness::Missing,
        Err(e) => Liveness::Unknown {
            error: e.to_string(),
        },
    }
}

/// Whether the manifest `image` pins still exists, whatever its tag says.
async fn pinned_exists(mirror: &Mirror, image: &ImageRef) -> Liveness {
    let Some(digest) = image.digest() else {
        return Liveness::Missing;
    };
    match mirror.registry_digest(&image.by_digest(digest)).await {
        Ok(Some(_)) => Liveness::Alive,
        Ok(None) => Liveness::Missing,
        Err(e) => Liveness::Unknown {
            error: e.to_string(),
        },
    }
}

/// Simultaneous checks: the mirror's own limit for registry checks.
pub fn concurrency(mirror: &Mirror) -> usize {
    mirror.options().max_concurrent_checks()
}

/// One reference of `refs`: a tag shared by two digests in use ([`tag_shared_with`]) costs one
/// more request, by digest.
async fn check_one(mirror: &Mirror, refs: &References, image: &ImageRef) -> Liveness {
    let found = liveness(mirror, image).await;
    match &found {
        Liveness::WrongDigest { found: other } if tag_shared_with(refs, image, other) => {
            pinned_exists(mirror, image).await
        }
        _ => found,
    }
}

/// The liveness of every reference in `refs`, one request each, `concurrency` at a time.
pub async fn check_all(mirror: &Mirror, refs: &References) -> HashMap<String, Liveness> {
    // Futures made first, so the stream holds no closure (whose higher-ranked lifetimes would
    // keep the daemon's task from being `Send`).
    let checks: Vec<_> = refs
        .iter()
        .map(|(written, in_use)| async move {
            (
                written.clone(),
                check_one(mirror, refs, &in_use.image).await,
            )
        })
        .collect();
    futures::stream::iter(checks)
        .buffer_unordered(concurrency(mirror))
        .collect()
        .await
}
