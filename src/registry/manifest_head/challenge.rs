//! The distribution token protocol's `WWW-Authenticate: Bearer ...` challenge.

use std::collections::HashMap;

/// A 401's `WWW-Authenticate`, by scheme.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Challenge {
    Basic,
    /// The token protocol, with its parameters (`realm`, `service`, ...).
    Bearer(HashMap<String, String>),
    /// A scheme this client does not speak.
    Other(String),
}

/// `Bearer realm="...",service="..."` → [`Challenge::Bearer`]; schemes are case-insensitive.
pub(super) fn parse_www_authenticate(value: &str) -> Challenge {
    let (scheme, params) = value.split_once(' ').unwrap_or((value, ""));
    if scheme.eq_ignore_ascii_case("basic") {
        Challenge::Basic
    } else if scheme.eq_ignore_ascii_case("bearer") {
        Challenge::Bearer(parse_challenge(params))
    } else {
        Challenge::Other(scheme.to_owned())
    }
}

/// `realm="https://auth.example",service="registry",scope="..."` → map.
pub(super) fn parse_challenge(params: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let mut rest = params.trim();
    while let Some((key, after)) = rest.split_once('=') {
        let key = key
            .trim()
            .trim_start_matches(',')
            .trim()
            .to_ascii_lowercase();
        let (value, remaining) = if let Some(quoted) = after.strip_prefix('"') {
            match quoted.find('"') {
                Some(end) => (&quoted[..end], &quoted[end + 1..]),
                None => (quoted, ""),
            }
        } else {
            match after.find(',') {
                Some(end) => (&after[..end], &after[end..]),
                None => (after, ""),
            }
        };
        out.insert(key, value.to_owned());
        rest = remaining.trim_start_matches(',').trim();
    }
    out
}

pub(super) fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_challenges_are_parsed() {
        let p = parse_challenge(
            r#"realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/nginx:pull""#,
        );
        assert_eq!(p["realm"], "https://auth.docker.io/token");
        assert_eq!(p["service"], "registry.docker.io");
        assert_eq!(p["scope"], "repository:library/nginx:pull");
    }

    #[test]
    fn schemes_are_told_apart() {
        assert_eq!(
            parse_www_authenticate(r#"Basic realm="r""#),
            Challenge::Basic
        );
        match parse_www_authenticate(r#"bearer realm="https://a/token""#) {
            Challenge::Bearer(p) => assert_eq!(p["realm"], "https://a/token"),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            parse_www_authenticate("Negotiate"),
            Challenge::Other("Negotiate".into())
        );
    }

    #[test]
    fn query_values_are_percent_encoded() {
        assert_eq!(percent_encode("registry.docker.io"), "registry.docker.io");
        assert_eq!(percent_encode("a b/c:d"), "a%20b%2Fc%3Ad");
    }
}
