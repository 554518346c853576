//! Properties of the reference grammar and of backup naming, over generated input: parsing
//! never panics and round-trips, and two different source repositories never share a backup
//! repository. `make test` runs the default number of cases; `make reliability` many more
//! (`PROPTEST_CASES`).

use proptest::prelude::*;

use crate::image::naming::{BackupRegistry, Naming};
use crate::image::reference::{Digest, ImageRef};

/// A host: a name of one to three labels (upper case allowed, as the runtime keeps it), an
/// IPv4 address, `localhost` or Docker Hub's names, with an optional port.
fn host() -> impl Strategy<Value = String> {
    let label = "[a-zA-Z0-9]([a-zA-Z0-9-]{0,6}[a-zA-Z0-9])?";
    let name = prop::collection::vec(label, 1..4).prop_map(|l| l.join("."));
    let bare = prop_oneof![
        name,
        "(25[0-5]|1?[0-9]{1,2})\\.[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}",
        Just("localhost".to_owned()),
        Just("docker.io".to_owned()),
        Just("index.docker.io".to_owned()),
    ];
    (bare, prop::option::of(1u16..)).prop_map(|(h, port)| match port {
        Some(p) => format!("{h}:{p}"),
        None => h,
    })
}

/// A path component: lowercase letters and digits with the separators the grammar allows.
fn component() -> impl Strategy<Value = String> {
    "[a-z0-9]{1,4}(([._]|__|-{1,3})[a-z0-9]{1,4}){0,3}"
}

/// A valid reference, as a user might write it (host, tag and digest optional).
pub(crate) fn reference() -> impl Strategy<Value = String> {
    (
        prop::option::of(host()),
        prop::collection::vec(component(), 1..4),
        prop::option::of("[a-zA-Z0-9_][a-zA-Z0-9_.-]{0,20}"),
        prop::option::of("[0-9a-f]{64}"),
    )
        .prop_map(|(host, path, tag, digest)| {
            let mut s = path.join("/");
            match host {
                Some(h) => s = format!("{h}/{s}"),
                // A first component holding a '.' would be read as a host.
                None if path[0].contains('.') => s = format!("library/{s}"),
                None => {}
            }
            if let Some(t) = tag {
                s.push(':');
                s.push_str(&t);
            }
            if let Some(d) = digest {
                s.push_str("@sha256:");
                s.push_str(&d);
            }
            s
        })
}

/// Text near the grammar: its characters, and some that are not.
fn near_grammar() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9./:@_\\[\\]\\- ~$\\\\\u{0}\u{e9}\u{200b}]{0,80}"
}

/// `parse → to_string → parse` gives the same reference, and its parts make it up.
fn round_trips(input: &str) -> Result<(), TestCaseError> {
    if let Ok(r) = ImageRef::parse(input) {
        let again = ImageRef::parse(&r.to_string());
        prop_assert_eq!(again.as_ref(), Ok(&r), "{} printed as {}", input, r);
        parts_make_it_up(&r)?;
    }
    Ok(())
}

/// The reference is its parts, each as they were given: `domain/path[:tag][@digest]`; its
/// canonical name adds `:latest` where it has neither tag nor digest, and is lent exactly when
/// it has a tag and no digest; and a repository's other references keep its domain and path.
fn parts_make_it_up(r: &ImageRef) -> Result<(), TestCaseError> {
    use std::borrow::Cow;
    let (domain, path, tag, digest) = (r.domain(), r.path(), r.tag(), r.digest());
    prop_assert!(!domain.contains('/') && !path.is_empty(), "{:?}", r);
    let tag_part = tag.map(|t| format!(":{t}")).unwrap_or_default();
    let digest_part = digest.map(|d| format!("@{d}")).unwrap_or_default();
    prop_assert_eq!(
        r.to_string(),
        format!("{domain}/{path}{tag_part}{digest_part}")
    );
    prop_assert_eq!(r.repository(), format!("{domain}/{path}"));
    let latest = if tag.is_none() && digest.is_none() {
        ":latest"
    } else {
        ""
    };
    let canonical = r.canonical();
    prop_assert_eq!(
        canonical.as_ref(),
        format!("{domain}/{path}{tag_part}{latest}{digest_part}")
    );
    prop_assert_eq!(
        matches!(canonical, Cow::Borrowed(_)),
        tag.is_some() && digest.is_none()
    );
    prop_assert_eq!(
        format!("{r:?}"),
        format!(
            "ImageRef {{ domain: {domain:?}, path: {path:?}, tag: {tag:?}, digest: {digest:?} }}"
        )
    );
    let retagged = r.by_tag("v2");
    prop_assert_eq!((retagged.domain(), retagged.path()), (domain, path));
    prop_assert_eq!((retagged.tag(), retagged.digest()), (Some("v2"), None));
    let d = Digest::sha256_of(b"x");
    let pinned = r.by_digest(&d);
    prop_assert_eq!((pinned.domain(), pinned.path()), (domain, path));
    prop_assert_eq!((pinned.tag(), pinned.digest()), (None, Some(&d)));
    Ok(())
}

proptest! {
    #[test]
    fn parsing_anything_never_panics_and_round_trips(input in any::<String>()) {
        round_trips(&input)?;
    }

    #[test]
    fn parsing_text_near_the_grammar_round_trips(input in near_grammar()) {
        round_trips(&input)?;
    }

    #[test]
    fn valid_references_parse_and_round_trip(input in reference()) {
        let parsed = ImageRef::parse(&input);
        prop_assert!(parsed.is_ok(), "{:?}: {:?}", input, parsed);
        round_trips(&input)?;
    }

    #[test]
    fn different_sources_never_share_a_backup_repository(
        a in reference(),
        b in reference(),
        nested in any::<bool>(),
    ) {
        let backup = BackupRegistry::parse("backup.example.com:5000/mirror").expect("a backup registry");
        let naming = if nested { Naming::Nested } else { Naming::Flat };
        let (a, b) = (ImageRef::parse(&a).expect("valid"), ImageRef::parse(&b).expect("valid"));
        let same_source = a.domain().eq_ignore_ascii_case(b.domain()) && a.path() == b.path();
        if let (Ok(ta), Ok(tb)) = (backup.target(&a, naming), backup.target(&b, naming)) {
            prop_assert_eq!(
                ta.repository == tb.repository,
                same_source,
                "{} and {} → {} and {}", a, b, ta.repository, tb.repository
            );
        }
    }
}
