//! The glob patterns of `source_include` and `source_exclude`, over a normalized source
//! repository such as `docker.io/library/nginx`.
//!
//! Two wildcards: `*` matches any run of characters, `/` included (`docker.io/*` is every
//! repository on Docker Hub, `*.internal/*` every repository on a host ending in `.internal`),
//! and `?` one character. Nothing else is special. Hand-written rather than `globset`: the
//! settings are comma-separated lists, so globset's `{a,b}` alternation would collide with the
//! list separator, its `[...]` classes and `**` rules have no use over repository names, and
//! it would bring a regex engine for a twenty-line matcher.

use std::fmt;

/// A validated pattern, lowercase (repository names are).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob(String);

/// Why a pattern is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GlobError {
    #[error("a pattern cannot be empty")]
    Empty,
    #[error(
        "{0:?} holds a character no repository name has (expected letters, digits, '.', '_', '-', ':', '/' and the wildcards '*' and '?')"
    )]
    Character(String),
    #[error(
        "{0:?} has neither a '/' nor a wildcard, so it matches no repository: patterns match whole repositories such as docker.io/library/nginx; write {0}/* for a registry"
    )]
    Unmatchable(String),
}

impl Glob {
    pub fn parse(pattern: &str) -> Result<Glob, GlobError> {
        let p = pattern.trim().to_ascii_lowercase();
        if p.is_empty() {
            return Err(GlobError::Empty);
        }
        let allowed = |c: char| c.is_ascii_alphanumeric() || "._-:/*?".contains(c);
        if !p.chars().all(allowed) {
            return Err(GlobError::Character(pattern.to_owned()));
        }
        if !p.contains(['/', '*', '?']) {
            return Err(GlobError::Unmatchable(pattern.to_owned()));
        }
        Ok(Glob(p))
    }

    /// Whether the whole of `repository` matches (case-insensitively). Iterative, with one
    /// backtrack point: linear in practice, never exponential.
    pub fn matches(&self, repository: &str) -> bool {
        let (p, s) = (self.0.as_bytes(), repository.as_bytes());
        let (mut pi, mut si) = (0, 0);
        let mut star: Option<(usize, usize)> = None;
        while si < s.len() {
            match p.get(pi) {
                Some(b'*') => {
                    star = Some((pi, si));
                    pi += 1;
                }
                Some(&c) if c == b'?' || c == s[si].to_ascii_lowercase() => {
                    pi += 1;
                    si += 1;
                }
                _ => match star {
                    // Let the last `*` swallow one more character and try again.
                    Some((sp, ss)) => {
                        pi = sp + 1;
                        si = ss + 1;
                        star = Some((sp, ss + 1));
                    }
                    None => return false,
                },
            }
        }
        p[pi..].iter().all(|&c| c == b'*')
    }
}

impl fmt::Display for Glob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn glob(p: &str) -> Glob {
        Glob::parse(p).expect("a valid pattern")
    }

    #[test]
    fn a_star_crosses_slashes_and_a_question_mark_is_one_character() {
        let hub = glob("docker.io/*");
        assert!(hub.matches("docker.io/library/nginx"));
        assert!(hub.matches("docker.io/bitnami/redis"));
        assert!(!hub.matches("ghcr.io/docker.io/x"));
        assert!(!hub.matches("docker.io"), "the pattern asks for a path");
        let internal = glob("*.internal/*");
        assert!(internal.matches("registry.corp.internal/team/app"));
        assert!(
            !internal.matches("a.internal:5000/x"),
            "a port is part of the host"
        );
        assert!(glob("*.internal*/*").matches("a.internal:5000/x"));
        assert!(!internal.matches("registry.internal.example.com/app"));
        assert!(glob("ghcr.io/org-?/*").matches("ghcr.io/org-a/api"));
        assert!(!glob("ghcr.io/org-?/*").matches("ghcr.io/org-ab/api"));
        assert!(glob("*").matches("quay.io/x/y"));
        assert!(glob("*nginx").matches("docker.io/library/nginx"));
        assert!(!glob("*nginx").matches("docker.io/library/nginx-exporter"));
        assert!(glob("docker.io/library/nginx").matches("docker.io/library/nginx"));
    }

    #[test]
    fn matching_ignores_case_and_many_stars_do_not_explode() {
        assert!(glob("Quay.IO/*").matches("quay.io/a/b"));
        assert!(glob("quay.io/*").matches("QUAY.io/a/b"));
        let many = glob(&format!("{}b", "*a".repeat(20)));
        assert!(!many.matches(&"a".repeat(200)));
        assert!(many.matches(&format!("{}b", "a".repeat(200))));
    }

    #[test]
    fn patterns_that_cannot_work_are_refused_with_a_reason() {
        assert_eq!(Glob::parse(" "), Err(GlobError::Empty));
        assert!(matches!(
            Glob::parse("docker.io/{a,b}"),
            Err(GlobError::Character(_))
        ));
        assert!(matches!(
            Glob::parse("nginx:1.27 x"),
            Err(GlobError::Character(_))
        ));
        let e = Glob::parse("docker.io").expect_err("no slash, no wildcard");
        assert!(
            e.to_string().contains("write docker.io/* for a registry"),
            "{e}"
        );
    }
}
