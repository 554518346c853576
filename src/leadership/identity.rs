//! Who this replica is: the Lease's holder identity, and the user agent of its requests (so an
//! API server's audit log, or the simulator's request log, tells two replicas apart).

use std::hash::{BuildHasher, Hasher};

/// A name long enough to recognize, short enough for a field manager (128 characters at most).
const NAME_MAX: usize = 60;

/// `<pod or host name>_<8 hex digits>`, new for each process: a restarted replica must never
/// mistake its predecessor's Lease for its own, even with the same pod or host name.
pub fn identity() -> String {
    let name = std::env::var("POD_NAME")
        .ok()
        .filter(|n| !n.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok().filter(|n| !n.is_empty()))
        .unwrap_or_else(|| {
            rustix::system::uname()
                .nodename()
                .to_string_lossy()
                .into_owned()
        });
    format!("{}_{:08x}", clean(&name), suffix())
}

/// The user agent of every request: the program, its version and the identity.
pub fn user_agent(identity: &str) -> String {
    format!("image-cloner/{} ({identity})", env!("CARGO_PKG_VERSION"))
}

/// Letters, digits, `-` and `.` only (a header value and a label value), at most [`NAME_MAX`].
fn clean(name: &str) -> String {
    let cleaned: String = name
        .chars()
        .map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '-' | '.' => c,
            _ => '-',
        })
        .take(NAME_MAX)
        .collect();
    if cleaned.is_empty() {
        "image-cloner".to_owned()
    } else {
        cleaned
    }
}

/// 32 bits that differ between processes: the process id and the time, through the standard
/// library's randomly keyed hasher.
fn suffix() -> u32 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish() as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_cleaned_and_cut() {
        assert_eq!(
            clean("image-cloner-7d9f8-abcde"),
            "image-cloner-7d9f8-abcde"
        );
        assert_eq!(clean("bastion 1/ä"), "bastion-1--");
        assert_eq!(clean(""), "image-cloner");
        assert_eq!(clean(&"x".repeat(200)).len(), NAME_MAX);
    }

    #[test]
    fn two_identities_differ_and_make_a_valid_header() {
        let (a, b) = (identity(), identity());
        assert_ne!(a, b);
        assert!(http::HeaderValue::from_str(&user_agent(&a)).is_ok(), "{a}");
    }
}
