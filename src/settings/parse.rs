//! Value parsers for the settings: pure functions from a trimmed string (or a TOML value) to a
//! typed value, or [`Bad`] with the detail that goes after "expected …" in the message.

use std::path::PathBuf;
use std::time::Duration;

use config::{Value, ValueKind};

/// A value a setting cannot use, with an optional detail; the validator adds the setting's
/// name, the value, its origin and what is expected.
pub(super) struct Bad(pub(super) Option<String>);

impl Bad {
    pub(super) fn because(detail: impl Into<String>) -> Self {
        Bad(Some(detail.into()))
    }
}

/// Exactly `true` or `false`, as TOML writes them: `yes`, `1` or `on` are not taken, so that
/// the file and the environment accept the same words.
pub(super) fn boolean(s: &str) -> Result<bool, Bad> {
    match s {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(Bad(None)),
    }
}

/// Digits only, from `min` to `max`.
pub(super) fn number(s: &str, min: u64, max: u64) -> Result<u64, Bad> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Bad(None));
    }
    match s.parse::<u64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(Bad::because("out of range")),
    }
}

/// A humantime duration (`90s`, `30m`, `1h 30m`) from `min` to `max`.
pub(super) fn duration(s: &str, min: Duration, max: Duration) -> Result<Duration, Bad> {
    match humantime::parse_duration(s) {
        Ok(d) if d < min => Err(Bad::because(format!(
            "{} is less than {}",
            humantime::format_duration(d),
            humantime::format_duration(min)
        ))),
        Ok(d) if d > max => Err(Bad::because(format!(
            "more than {}",
            humantime::format_duration(max)
        ))),
        Ok(d) => Ok(d),
        Err(e) => Err(Bad::because(e.to_string())),
    }
}

/// An existing directory, made absolute: a relative path such as `-certs` would otherwise reach
/// skopeo's command line as something that looks like a flag.
pub(super) fn existing_dir(s: &str) -> Result<PathBuf, Bad> {
    let p = PathBuf::from(s);
    if p.is_dir() {
        absolute(&p)
    } else {
        Err(Bad::because("no such directory"))
    }
}

/// An existing file, made absolute (see [`existing_dir`]; a relative `skopeo` would also be
/// looked up on PATH rather than run from where it was checked).
pub(super) fn existing_file(s: &str) -> Result<PathBuf, Bad> {
    let p = PathBuf::from(s);
    if p.is_file() {
        absolute(&p)
    } else {
        Err(Bad::because("no such file"))
    }
}

fn absolute(p: &std::path::Path) -> Result<PathBuf, Bad> {
    std::path::absolute(p).map_err(|e| Bad::because(format!("cannot make it absolute: {e}")))
}

/// A namespace name: an RFC 1123 label.
pub(super) fn is_dns_label(s: &str) -> bool {
    let b = s.as_bytes();
    (1..=63).contains(&b.len())
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

/// A Kubernetes object name (RFC 1123 subdomain: at most 253 characters, dot-separated
/// labels of lowercase letters, digits and dashes); empty means none.
pub(super) fn optional_dns_subdomain(s: &str) -> Result<Option<String>, Bad> {
    if s.is_empty() {
        return Ok(None);
    }
    let labels_ok = s.split('.').all(|label| {
        let b = label.as_bytes();
        !b.is_empty()
            && b.iter()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
            && b[0] != b'-'
            && b[b.len() - 1] != b'-'
    });
    if s.len() <= 253 && labels_ok {
        Ok(Some(s.to_owned()))
    } else {
        Err(Bad(None))
    }
}

/// A TOML value as the file wrote it (strings quoted), for messages.
pub(super) fn shown(v: &Value) -> String {
    match &v.kind {
        ValueKind::String(s) => format!("{s:?}"),
        ValueKind::Array(items) => {
            let items: Vec<String> = items.iter().map(shown).collect();
            format!("[{}]", items.join(", "))
        }
        ValueKind::Table(t) => {
            let entries: Vec<String> = t
                .iter()
                .map(|(k, v)| format!("{k} = {}", shown(v)))
                .collect();
            format!("{{ {} }}", entries.join(", "))
        }
        ValueKind::Nil => "(nothing)".to_owned(),
        other => other.to_string(),
    }
}

/// The TOML type of a value, for messages.
pub(super) fn toml_type(v: &Value) -> &'static str {
    match &v.kind {
        ValueKind::Nil => "nothing",
        ValueKind::Boolean(_) => "a boolean",
        ValueKind::I64(_) | ValueKind::I128(_) | ValueKind::U64(_) | ValueKind::U128(_) => {
            "an integer"
        }
        ValueKind::Float(_) => "a float",
        ValueKind::String(_) => "a string",
        ValueKind::Table(_) => "a table",
        ValueKind::Array(_) => "an array",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_digits_within_bounds() {
        for ok in ["0", "10", "007"] {
            assert!(number(ok, 0, 10).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "-1",
            "+1",
            "11",
            "1.5",
            "1e3",
            "99999999999999999999999",
        ] {
            assert!(number(bad, 0, 10).is_err(), "{bad}");
        }
    }

    #[test]
    fn durations_are_bounded() {
        let (min, max) = (Duration::from_secs(10), Duration::from_secs(86400));
        assert_eq!(
            duration("30m", min, max).ok(),
            Some(Duration::from_secs(1800))
        );
        for bad in ["1ns", "9s", "100000000000h", "25h", "soon", ""] {
            assert!(duration(bad, min, max).is_err(), "{bad}");
        }
        assert!(duration("0s", Duration::ZERO, max).is_ok());
    }

    /// What reaches skopeo's command line never starts with '-' (found by make reliability).
    #[test]
    fn existing_paths_are_made_absolute() {
        let dir = existing_dir(".").ok().expect("the working directory");
        assert!(dir.is_absolute(), "{}", dir.display());
        let file = existing_file("Cargo.toml").ok().expect("Cargo.toml");
        assert!(
            file.is_absolute() && file.ends_with("Cargo.toml"),
            "{}",
            file.display()
        );
    }

    #[test]
    fn booleans_are_true_or_false() {
        assert_eq!(boolean("true").ok(), Some(true));
        assert_eq!(boolean("false").ok(), Some(false));
        for bad in ["yes", "1", "on", "TRUE ", "maybe", ""] {
            assert!(boolean(bad).is_err(), "{bad}");
        }
    }
}
