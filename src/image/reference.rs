//! Image references: parsing and normalization by the docker reference grammar.
//!
//! Kubernetes hands us whatever string a user wrote in `image:`. The container runtime
//! resolves it with the grammar of `github.com/distribution/reference` (regexp.go,
//! normalize.go), so this module implements exactly that grammar: implicit `docker.io` and
//! `library/`, `index.docker.io` folded into `docker.io`, registry ports, `localhost`, IPv6
//! literals, tag, digest and tag+digest. It is hand-written rather than taken from a crate
//! because the one candidate (`oci-spec`'s `distribution::Reference`) pulls a regex engine and
//! four proc-macro crates for a sixty-line grammar, and does not accept bracketed IPv6 hosts.
//!
//! Everything that later reaches skopeo's argument list is built from an [`ImageRef`], so a
//! string that fails here can never become an argument.

use std::borrow::Cow;
use std::fmt;

use thiserror::Error;

/// The longest repository name (domain included) the grammar allows.
pub const NAME_TOTAL_LENGTH_MAX: usize = 255;
/// The longest tag the grammar allows.
pub const TAG_LENGTH_MAX: usize = 128;

const DOCKER_HUB: &str = "docker.io";
const DOCKER_HUB_LEGACY: &str = "index.docker.io";
const OFFICIAL_NAMESPACE: &str = "library";

/// Why a string is not an image reference. The message names the input.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("invalid image reference {input:?}: {problem}")]
pub struct ReferenceError {
    /// The offending input, shortened when very long so that a log line stays readable.
    pub input: String,
    pub problem: Problem,
}

/// The grammar rule an input broke.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Problem {
    #[error("it is empty")]
    Empty,
    #[error("a 64-character hex string is an image ID, not a reference")]
    ImageId,
    #[error("repository name must be lowercase")]
    Uppercase,
    #[error("repository name is {0} characters long; at most 255 are allowed")]
    NameTooLong(usize),
    #[error("registry host {0:?} is not a valid host[:port]")]
    InvalidDomain(String),
    #[error(
        "path component {0:?} is not valid: expected lowercase letters and digits, separated by '.', '_', '__' or dashes"
    )]
    InvalidPathComponent(String),
    #[error(
        "tag {0:?} is not valid: expected up to 128 letters, digits, '_', '.' or '-', not starting with '.' or '-'"
    )]
    InvalidTag(String),
    #[error(
        "digest {0:?} is not valid: expected sha256:<64 hex>, sha384:<96 hex> or sha512:<128 hex>"
    )]
    InvalidDigest(String),
}

fn fail(input: &str, problem: Problem) -> ReferenceError {
    const SHOWN: usize = 300;
    let input = if input.len() > SHOWN {
        let cut = (0..=SHOWN)
            .rev()
            .find(|i| input.is_char_boundary(*i))
            .unwrap_or(0);
        format!("{}…", &input[..cut])
    } else {
        input.to_owned()
    };
    ReferenceError { input, problem }
}

/// A content digest such as `sha256:…`, validated like go-digest does: a registered algorithm
/// and an encoded part of exactly its length in lowercase hex.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest(String);

impl Digest {
    pub fn parse(s: &str) -> Result<Self, Problem> {
        let invalid = || Problem::InvalidDigest(s.to_owned());
        let (algorithm, hex) = s.split_once(':').ok_or_else(invalid)?;
        let len = match algorithm {
            "sha256" => 64,
            "sha384" => 96,
            "sha512" => 128,
            _ => return Err(invalid()),
        };
        if hex.len() == len
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            Ok(Digest(s.to_owned()))
        } else {
            Err(invalid())
        }
    }

    /// The digest of `bytes` by sha256, the algorithm registries use for manifests.
    pub fn sha256_of(bytes: &[u8]) -> Self {
        use sha2::{Digest as _, Sha256};
        let hash = Sha256::digest(bytes);
        let mut hex = String::with_capacity(71);
        hex.push_str("sha256:");
        for b in hash {
            hex.push_str(&format!("{b:02x}"));
        }
        Digest(hex)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn algorithm(&self) -> &str {
        self.0.split_once(':').map_or("", |(a, _)| a)
    }

    pub fn hex(&self) -> &str {
        self.0.split_once(':').map_or("", |(_, h)| h)
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A normalized image reference: `domain/path[:tag][@digest]`.
///
/// Held as one string with the places its parts start: a cold `run --once` clones references
/// ~10,000 times and asks for their canonical name ~18,000 times, and as three strings each
/// clone was three allocations and each canonical name a fourth (callgrind: ~48,000 of the
/// run's ~330,000 allocations). A tagged reference without a digest — nearly every one a
/// workload names — is its own canonical name, lent rather than built.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ImageRef {
    /// `domain/path[:tag]`.
    name: String,
    /// Where the path starts in `name`, after the `/` that ends the domain.
    path_at: usize,
    /// Where the tag starts in `name`, after its `:`, when there is one.
    tag_at: Option<usize>,
    digest: Option<Digest>,
}

impl ImageRef {
    /// Parses and normalizes a reference the way the container runtime would
    /// (`reference.ParseNormalizedNamed` followed by the tag and digest rules).
    pub fn parse(input: &str) -> Result<Self, ReferenceError> {
        if input.is_empty() {
            return Err(fail(input, Problem::Empty));
        }
        if input.len() == 64
            && input
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(fail(input, Problem::ImageId));
        }
        let (name_and_tag, digest) = match input.split_once('@') {
            Some((name, digest)) => (
                name,
                Some(Digest::parse(digest).map_err(|p| fail(input, p))?),
            ),
            None => (input, None),
        };
        // A tag is whatever follows the last ':' after the last '/'; a ':' before a '/' is a port.
        let last_slash = name_and_tag.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match name_and_tag[last_slash..].rfind(':') {
            Some(i) => {
                let at = last_slash + i;
                (&name_and_tag[..at], Some(&name_and_tag[at + 1..]))
            }
            None => (name_and_tag, None),
        };
        if let Some(tag) = tag
            && !valid_tag(tag)
        {
            return Err(fail(input, Problem::InvalidTag(tag.to_owned())));
        }
        let (domain, remainder) = split_domain(name);
        if remainder.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(fail(input, Problem::Uppercase));
        }
        if !valid_domain(domain) {
            return Err(fail(input, Problem::InvalidDomain(domain.to_owned())));
        }
        let domain = normalize_domain(domain);
        let official = domain == DOCKER_HUB && !remainder.contains('/');
        let mut path = String::new();
        let path: &str = if official {
            path.push_str(OFFICIAL_NAMESPACE);
            path.push('/');
            path.push_str(remainder);
            &path
        } else {
            remainder
        };
        if let Some(bad) = path.split('/').find(|c| !valid_path_component(c)) {
            return Err(fail(input, Problem::InvalidPathComponent(bad.to_owned())));
        }
        let name_len = domain.len() + 1 + path.len();
        if name_len > NAME_TOTAL_LENGTH_MAX {
            return Err(fail(input, Problem::NameTooLong(name_len)));
        }
        let mut image = ImageRef::from_parts(domain, path, tag);
        image.digest = digest;
        Ok(image)
    }

    /// `domain/path[:tag]`, without a digest, from parts the caller has already validated.
    pub(crate) fn from_parts(domain: &str, path: &str, tag: Option<&str>) -> Self {
        let tag_len = tag.map_or(0, |t| 1 + t.len());
        let mut name = String::with_capacity(domain.len() + 1 + path.len() + tag_len);
        name.push_str(domain);
        name.push('/');
        name.push_str(path);
        let tag_at = tag.map(|t| {
            name.push(':');
            name.push_str(t);
            name.len() - t.len()
        });
        ImageRef {
            name,
            path_at: domain.len() + 1,
            tag_at,
            digest: None,
        }
    }

    /// The registry host, with its port if any.
    pub fn domain(&self) -> &str {
        &self.name[..self.path_at - 1]
    }

    /// The repository path inside the registry (`library/nginx`).
    pub fn path(&self) -> &str {
        &self.name[self.path_at..self.repository_end()]
    }

    /// Where `domain/path` ends in `name`.
    fn repository_end(&self) -> usize {
        self.tag_at.map_or(self.name.len(), |at| at - 1)
    }

    /// `domain/path`: the fully qualified repository.
    pub fn repository(&self) -> &str {
        &self.name[..self.repository_end()]
    }

    pub fn tag(&self) -> Option<&str> {
        self.tag_at.map(|at| &self.name[at..])
    }

    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// The tag a runtime would pull when the reference names neither tag nor digest.
    pub fn tag_or_latest(&self) -> &str {
        self.tag().unwrap_or("latest")
    }

    /// The same repository pinned to `digest` alone. skopeo refuses references carrying both a
    /// tag and a digest, so a source is always read by digest once its digest is known.
    pub fn by_digest(&self, digest: &Digest) -> ImageRef {
        let mut image = ImageRef::from_parts(self.domain(), self.path(), None);
        image.digest = Some(digest.clone());
        image
    }

    /// The same repository at `tag` alone.
    pub fn by_tag(&self, tag: &str) -> ImageRef {
        ImageRef::from_parts(self.domain(), self.path(), Some(tag))
    }

    /// The name a source is known by for single-flight and caching: what the runtime would
    /// resolve, so `nginx`, `nginx:latest` and `docker.io/library/nginx:latest` are one image.
    /// A reference with a tag and no digest is its own name, lent; the others are built.
    pub fn canonical(&self) -> Cow<'_, str> {
        let (tag, digest) = match (self.tag_at, &self.digest) {
            (Some(_), None) => return Cow::Borrowed(&self.name),
            (None, None) => (Some("latest"), None),
            (_, Some(d)) => (None, Some(d.as_str())),
        };
        let extra = tag.map_or(0, |t| 1 + t.len()) + digest.map_or(0, |d| 1 + d.len());
        let mut s = String::with_capacity(self.name.len() + extra);
        s.push_str(&self.name);
        if let Some(t) = tag {
            s.push(':');
            s.push_str(t);
        }
        if let Some(d) = digest {
            s.push('@');
            s.push_str(d);
        }
        Cow::Owned(s)
    }
}

impl fmt::Debug for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ImageRef")
            .field("domain", &self.domain())
            .field("path", &self.path())
            .field("tag", &self.tag())
            .field("digest", &self.digest)
            .finish()
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)?;
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

/// `index.docker.io` is Docker Hub's old name. Case is kept, as the runtime keeps it: an
/// uppercase first component is what makes `Foo/bar` a host at all.
pub(crate) fn normalize_domain(domain: &str) -> &str {
    if domain == DOCKER_HUB_LEGACY {
        DOCKER_HUB
    } else {
        domain
    }
}

/// `splitDockerDomain`: the first component is a registry only if it looks like a host
/// (a '.' or ':', `localhost`, or an uppercase letter, which a path may not hold).
fn split_domain(name: &str) -> (&str, &str) {
    match name.split_once('/') {
        Some((first, rest))
            if first.contains(['.', ':'])
                || first == "localhost"
                || first.bytes().any(|b| b.is_ascii_uppercase()) =>
        {
            (first, rest)
        }
        _ => (DOCKER_HUB, name),
    }
}

/// `host[:port]` with host a domain name, an IPv4 address (which the domain-name rule also
/// matches) or a bracketed IPv6 literal, and port a TCP port (1–65535). Docker's grammar takes
/// any digits as a port; a registry on port 99999 cannot exist, so saying so here beats a
/// connection error from skopeo on every copy.
pub(crate) fn valid_domain(domain: &str) -> bool {
    let (host, port) = if let Some(rest) = domain.strip_prefix('[') {
        let Some((inside, after)) = rest.split_once(']') else {
            return false;
        };
        if inside.is_empty() || !inside.bytes().all(|b| b.is_ascii_hexdigit() || b == b':') {
            return false;
        }
        match after {
            "" => return true,
            _ => match after.strip_prefix(':') {
                Some(port) => ("[ipv6]", Some(port)),
                None => return false,
            },
        }
    } else {
        match domain.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (domain, None),
        }
    };
    if let Some(port) = port
        && !valid_port(port)
    {
        return false;
    }
    host == "[ipv6]" || host.split('.').all(valid_domain_component)
}

/// Digits only (no sign, no spaces), naming a port from 1 to 65535.
fn valid_port(port: &str) -> bool {
    port.bytes().all(|b| b.is_ascii_digit()) && port.parse::<u16>().is_ok_and(|p| p != 0)
}

/// `[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]`
fn valid_domain_component(c: &str) -> bool {
    let b = c.as_bytes();
    !b.is_empty()
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter().all(|x| x.is_ascii_alphanumeric() || *x == b'-')
}

/// `[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*`
pub(crate) fn valid_path_component(c: &str) -> bool {
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let b = c.as_bytes();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = matches!(sep, "." | "_" | "__") || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

/// `[\w][\w.-]{0,127}`
fn valid_tag(tag: &str) -> bool {
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let b = tag.as_bytes();
    !b.is_empty()
        && b.len() <= TAG_LENGTH_MAX
        && word(b[0])
        && b.iter().all(|x| word(*x) || *x == b'.' || *x == b'-')
}

#[cfg(test)]
mod tests;
