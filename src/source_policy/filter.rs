//! `source_include` and `source_exclude`: which source repositories are copied at all.

use std::fmt;

use super::glob::Glob;
use crate::image::reference::ImageRef;

/// The two lists. Empty `include` means everything is included; `exclude` wins over `include`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceFilter {
    pub include: Vec<Glob>,
    pub exclude: Vec<Glob>,
}

/// Why a source is left out, for `plan`'s detail column and the logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Excluded {
    /// It matches this `source_exclude` pattern.
    Matches(String),
    /// `source_include` is set and no pattern of it matches.
    NotIncluded,
}

impl fmt::Display for Excluded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Excluded::Matches(p) => write!(f, "matches source_exclude {p:?}"),
            Excluded::NotIncluded => f.write_str("matches no source_include pattern"),
        }
    }
}

impl SourceFilter {
    /// Why `source` (its repository, `docker.io/library/nginx`; tag and digest play no part)
    /// is not copied, or `None` when it is.
    pub fn excluded(&self, source: &ImageRef) -> Option<Excluded> {
        let repository = source.repository();
        if let Some(p) = self.exclude.iter().find(|p| p.matches(repository)) {
            return Some(Excluded::Matches(p.to_string()));
        }
        let included =
            self.include.is_empty() || self.include.iter().any(|p| p.matches(repository));
        (!included).then_some(Excluded::NotIncluded)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(include: &[&str], exclude: &[&str]) -> SourceFilter {
        let globs = |l: &[&str]| {
            l.iter()
                .map(|p| Glob::parse(p).expect("a valid pattern"))
                .collect()
        };
        SourceFilter {
            include: globs(include),
            exclude: globs(exclude),
        }
    }

    fn image(s: &str) -> ImageRef {
        ImageRef::parse(s).expect("a valid reference")
    }

    #[test]
    fn patterns_see_the_normalized_repository() {
        let f = filter(&["docker.io/*", "ghcr.io/*"], &[]);
        // `nginx` is docker.io/library/nginx; tags and digests do not matter.
        assert_eq!(f.excluded(&image("nginx:1.27")), None);
        assert_eq!(f.excluded(&image("index.docker.io/bitnami/redis@sha256:0000000000000000000000000000000000000000000000000000000000000000")), None);
        assert_eq!(f.excluded(&image("ghcr.io/org/app:1")), None);
        assert_eq!(
            f.excluded(&image("quay.io/org/app:1")),
            Some(Excluded::NotIncluded)
        );
    }

    #[test]
    fn exclude_wins_and_empty_lists_copy_everything() {
        assert_eq!(
            filter(&[], &[]).excluded(&image("anything.example/x")),
            None
        );
        let f = filter(&["*"], &["*.internal/*", "docker.io/library/busybox"]);
        assert_eq!(
            f.excluded(&image("registry.corp.internal/team/app:3")),
            Some(Excluded::Matches("*.internal/*".into()))
        );
        assert_eq!(
            f.excluded(&image("busybox")),
            Some(Excluded::Matches("docker.io/library/busybox".into()))
        );
        assert_eq!(f.excluded(&image("busybox-extra")), None);
        assert_eq!(
            Excluded::Matches("*.internal/*".into()).to_string(),
            "matches source_exclude \"*.internal/*\""
        );
    }
}
