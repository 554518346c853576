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
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ImageRef {
    domain: String,
    path: String,
    tag: Option<String>,
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
        let path = if domain == DOCKER_HUB && !remainder.contains('/') {
            format!("{OFFICIAL_NAMESPACE}/{remainder}")
        } else {
            remainder.to_owned()
        };
        if let Some(bad) = path.split('/').find(|c| !valid_path_component(c)) {
            return Err(fail(input, Problem::InvalidPathComponent(bad.to_owned())));
        }
        let name_len = domain.len() + 1 + path.len();
        if name_len > NAME_TOTAL_LENGTH_MAX {
            return Err(fail(input, Problem::NameTooLong(name_len)));
        }
        Ok(ImageRef {
            domain,
            path,
            tag: tag.map(str::to_owned),
            digest,
        })
    }

    /// Builds a reference from parts the caller has already validated.
    pub(crate) fn from_parts(domain: String, path: String, tag: Option<String>) -> Self {
        ImageRef {
            domain,
            path,
            tag,
            digest: None,
        }
    }

    /// The registry host, with its port if any.
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The repository path inside the registry (`library/nginx`).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// `domain/path`: the fully qualified repository.
    pub fn repository(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }

    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// The tag a runtime would pull when the reference names neither tag nor digest.
    pub fn tag_or_latest(&self) -> &str {
        self.tag.as_deref().unwrap_or("latest")
    }

    /// The same repository pinned to `digest` alone. skopeo refuses references carrying both a
    /// tag and a digest, so a source is always read by digest once its digest is known.
    pub fn by_digest(&self, digest: &Digest) -> ImageRef {
        ImageRef {
            domain: self.domain.clone(),
            path: self.path.clone(),
            tag: None,
            digest: Some(digest.clone()),
        }
    }

    /// The same repository at `tag` alone.
    pub fn by_tag(&self, tag: &str) -> ImageRef {
        ImageRef {
            domain: self.domain.clone(),
            path: self.path.clone(),
            tag: Some(tag.to_owned()),
            digest: None,
        }
    }

    /// The name a source is known by for single-flight and caching: what the runtime would
    /// resolve, so `nginx`, `nginx:latest` and `docker.io/library/nginx:latest` are one image.
    pub fn canonical(&self) -> String {
        match &self.digest {
            Some(d) => match &self.tag {
                Some(t) => format!("{}:{t}@{d}", self.repository()),
                None => format!("{}@{d}", self.repository()),
            },
            None => format!("{}:{}", self.repository(), self.tag_or_latest()),
        }
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.domain, self.path)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

/// `index.docker.io` is Docker Hub's old name. Case is kept, as the runtime keeps it: an
/// uppercase first component is what makes `Foo/bar` a host at all.
pub(crate) fn normalize_domain(domain: &str) -> String {
    if domain == DOCKER_HUB_LEGACY {
        DOCKER_HUB.to_owned()
    } else {
        domain.to_owned()
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
mod tests {
    use super::*;

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    /// (input, normalized) for references the runtime accepts.
    fn valid() -> Vec<(String, String)> {
        let d = D;
        [
            ("nginx", "docker.io/library/nginx"),
            ("nginx:1.27", "docker.io/library/nginx:1.27"),
            ("nginx:latest", "docker.io/library/nginx:latest"),
            ("library/nginx", "docker.io/library/nginx"),
            ("docker.io/nginx", "docker.io/library/nginx"),
            (
                "docker.io/library/nginx:1.27",
                "docker.io/library/nginx:1.27",
            ),
            ("index.docker.io/nginx", "docker.io/library/nginx"),
            (
                "index.docker.io/library/nginx:1",
                "docker.io/library/nginx:1",
            ),
            ("bitnami/nginx", "docker.io/bitnami/nginx"),
            (
                "bitnami/nginx:1.25.3-debian-11-r0",
                "docker.io/bitnami/nginx:1.25.3-debian-11-r0",
            ),
            ("docker.io/bitnami/nginx", "docker.io/bitnami/nginx"),
            ("ghcr.io/x/nginx", "ghcr.io/x/nginx"),
            ("ghcr.io/x/nginx:v1", "ghcr.io/x/nginx:v1"),
            ("quay.io/library/nginx", "quay.io/library/nginx"),
            ("quay.io/nginx", "quay.io/nginx"),
            ("registry.k8s.io/pause:3.9", "registry.k8s.io/pause:3.9"),
            (
                "registry.k8s.io/kube-state-metrics/kube-state-metrics:v2.10.0",
                "registry.k8s.io/kube-state-metrics/kube-state-metrics:v2.10.0",
            ),
            ("localhost/foo", "localhost/foo"),
            ("localhost:5000/foo", "localhost:5000/foo"),
            ("localhost:5000/foo/bar:1", "localhost:5000/foo/bar:1"),
            ("localhost", "docker.io/library/localhost"),
            ("localhost:5000", "docker.io/library/localhost:5000"),
            ("127.0.0.1:5000/a/b", "127.0.0.1:5000/a/b"),
            ("[::1]:5000/foo", "[::1]:5000/foo"),
            ("localhost:1/foo", "localhost:1/foo"),
            ("registry.io:65535/foo", "registry.io:65535/foo"),
            ("[2001:db8::1]/foo:v", "[2001:db8::1]/foo:v"),
            ("Registry.Example.COM/foo", "Registry.Example.COM/foo"),
            ("Foo/bar", "Foo/bar"),
            (
                "my-registry.local:8443/team/app_1:2024.01",
                "my-registry.local:8443/team/app_1:2024.01",
            ),
            ("a/b/c/d/e/f", "docker.io/a/b/c/d/e/f"),
            ("foo_bar", "docker.io/library/foo_bar"),
            ("foo__bar", "docker.io/library/foo__bar"),
            ("foo---bar", "docker.io/library/foo---bar"),
            ("foo.bar", "docker.io/library/foo.bar"),
            ("a", "docker.io/library/a"),
            ("0", "docker.io/library/0"),
            (
                "nginx:UPPER_case.tag-1",
                "docker.io/library/nginx:UPPER_case.tag-1",
            ),
            ("nginx:_underscore", "docker.io/library/nginx:_underscore"),
            ("xn--bcher-kva.example/app", "xn--bcher-kva.example/app"),
            ("a-b.c/app", "a-b.c/app"),
        ]
        .into_iter()
        .map(|(a, b)| (a.to_owned(), b.to_owned()))
        .chain([
            (format!("nginx@{d}"), format!("docker.io/library/nginx@{d}")),
            (
                format!("nginx:1.27@{d}"),
                format!("docker.io/library/nginx:1.27@{d}"),
            ),
            (format!("ghcr.io/x/y:t@{d}"), format!("ghcr.io/x/y:t@{d}")),
            (
                format!("localhost:5000/foo@{d}"),
                format!("localhost:5000/foo@{d}"),
            ),
            (
                format!("quay.io/a/b@sha512:{}", "ab".repeat(64)),
                format!("quay.io/a/b@sha512:{}", "ab".repeat(64)),
            ),
            (
                format!("nginx:{}", "t".repeat(128)),
                format!("docker.io/library/nginx:{}", "t".repeat(128)),
            ),
        ])
        .collect()
    }

    fn invalid() -> Vec<(String, Problem)> {
        use Problem::*;
        let long = "a".repeat(250);
        [
            ("", Empty),
            ("Nginx", Uppercase),
            ("docker.io/Library/nginx", Uppercase),
            ("ghcr.io/X/nginx", Uppercase),
            ("nginx:", InvalidTag(String::new())),
            ("nginx:-x", InvalidTag("-x".into())),
            ("nginx:.x", InvalidTag(".x".into())),
            ("nginx:a+b", InvalidTag("a+b".into())),
            ("nginx:a:b", InvalidPathComponent("nginx:a".into())),
            ("-nginx", InvalidPathComponent("-nginx".into())),
            ("nginx-", InvalidPathComponent("nginx-".into())),
            ("ngi..nx", InvalidPathComponent("ngi..nx".into())),
            ("ngi___nx", InvalidPathComponent("ngi___nx".into())),
            ("ngi._nx", InvalidPathComponent("ngi._nx".into())),
            ("foo//bar", InvalidPathComponent(String::new())),
            ("foo/", InvalidPathComponent(String::new())),
            ("/foo", InvalidPathComponent(String::new())),
            ("ghcr.io/", InvalidPathComponent(String::new())),
            ("a b", InvalidPathComponent("a b".into())),
            ("nginx\n", InvalidPathComponent("nginx\n".into())),
            ("--help", InvalidPathComponent("--help".into())),
            ("-o=/etc/passwd", InvalidPathComponent("-o=".into())),
            ("docker://nginx", InvalidDomain("docker:".into())),
            ("nginx;rm", InvalidPathComponent("nginx;rm".into())),
            ("$(id)", InvalidPathComponent("$(id)".into())),
            ("-bad.io/foo", InvalidDomain("-bad.io".into())),
            ("bad-.io/foo", InvalidDomain("bad-.io".into())),
            ("bad..io/foo", InvalidDomain("bad..io".into())),
            ("host:port/foo", InvalidDomain("host:port".into())),
            ("host:/foo", InvalidDomain("host:".into())),
            ("host.io:99999/foo", InvalidDomain("host.io:99999".into())),
            ("host.io:65536/foo", InvalidDomain("host.io:65536".into())),
            ("host.io:0/foo", InvalidDomain("host.io:0".into())),
            ("host.io:+80/foo", InvalidDomain("host.io:+80".into())),
            ("[::1]:70000/foo", InvalidDomain("[::1]:70000".into())),
            ("[zz::1]/foo", InvalidDomain("[zz::1]".into())),
            ("[::1/foo", InvalidDomain("[::1".into())),
            ("my_host.io/foo", InvalidDomain("my_host.io".into())),
            ("nginx@sha256:abc", InvalidDigest("sha256:abc".into())),
            ("nginx@sha256:", InvalidDigest("sha256:".into())),
            (
                "nginx@md5:0123456789abcdef0123456789abcdef",
                InvalidDigest("md5:0123456789abcdef0123456789abcdef".into()),
            ),
            (
                "nginx@sha256:0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef",
                InvalidDigest(
                    "sha256:0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef"
                        .into(),
                ),
            ),
            ("nginx@", InvalidDigest(String::new())),
            (
                "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
                ImageId,
            ),
        ]
        .into_iter()
        .map(|(a, p)| (a.to_owned(), p))
        .chain([
            (
                format!("nginx:{}", "t".repeat(129)),
                InvalidTag("t".repeat(129)),
            ),
            (format!("quay.io/{long}"), NameTooLong(8 + 250)),
            (long.clone(), NameTooLong(10 + 8 + 250)),
        ])
        .collect()
    }

    #[test]
    fn table_covers_at_least_sixty_references() {
        assert!(
            valid().len() + invalid().len() >= 60,
            "{}",
            valid().len() + invalid().len()
        );
    }

    #[test]
    fn valid_references_normalize() {
        for (input, want) in valid() {
            let got = ImageRef::parse(&input).unwrap_or_else(|e| panic!("{input:?}: {e}"));
            assert_eq!(got.to_string(), want, "input {input:?}");
            // Normalizing is idempotent: the runtime reads our output the same way.
            assert_eq!(ImageRef::parse(&want).unwrap(), got, "re-parse of {want:?}");
        }
    }

    #[test]
    fn invalid_references_name_the_rule() {
        for (input, want) in invalid() {
            match ImageRef::parse(&input) {
                Ok(r) => panic!("{input:?} parsed as {r}"),
                Err(e) => assert_eq!(e.problem, want, "input {input:?}"),
            }
        }
    }

    #[test]
    fn error_message_names_input_and_expectation() {
        let e = ImageRef::parse("Nginx:1").unwrap_err();
        assert_eq!(
            e.to_string(),
            r#"invalid image reference "Nginx:1": repository name must be lowercase"#
        );
        let e = ImageRef::parse(&"x".repeat(10_000)).unwrap_err();
        assert!(
            e.to_string().len() < 400,
            "long inputs are shortened in messages"
        );
    }

    #[test]
    fn tag_and_digest_parts() {
        let r = ImageRef::parse(&format!("nginx:1.27@{D}")).unwrap();
        assert_eq!(r.domain(), "docker.io");
        assert_eq!(r.path(), "library/nginx");
        assert_eq!(r.tag(), Some("1.27"));
        assert_eq!(r.digest().map(Digest::as_str), Some(D));
        assert_eq!(
            r.by_digest(r.digest().unwrap()).to_string(),
            format!("docker.io/library/nginx@{D}")
        );
        assert_eq!(r.by_tag("x").to_string(), "docker.io/library/nginx:x");
    }

    #[test]
    fn canonical_names_one_image_one_way() {
        let a = ImageRef::parse("nginx").unwrap().canonical();
        let b = ImageRef::parse("docker.io/library/nginx:latest")
            .unwrap()
            .canonical();
        let c = ImageRef::parse("index.docker.io/library/nginx:latest")
            .unwrap()
            .canonical();
        assert_eq!(a, b);
        assert_eq!(b, c);
        assert_ne!(a, ImageRef::parse("nginx:1.27").unwrap().canonical());
    }

    #[test]
    fn sha256_of_matches_known_value() {
        assert_eq!(
            Digest::sha256_of(b"").as_str(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn no_panic_on_arbitrary_bytes() {
        let samples = [
            "@",
            ":",
            "/",
            "[",
            "]",
            "[]",
            "a@b@c",
            "a:b:c/d",
            "é/ü",
            "a/é",
            "🦀",
            "[::1]",
            "x@sha256:é",
        ];
        for s in samples {
            let _ = ImageRef::parse(s);
        }
        for len in 0..300 {
            let s: String = (0..len)
                .map(|i| ['a', '/', ':', '.', '@', '-', '_', 'é'][i % 8])
                .collect();
            let _ = ImageRef::parse(&s);
        }
    }

    /// No input panics, and whatever parses names the same image again when re-parsed from
    /// its canonical form (what later reaches skopeo's arguments).
    #[test]
    fn arbitrary_strings_never_panic_and_parsed_ones_round_trip() {
        const ALPHABET: &[u8] = b"abcxyzAZ0189-_.:/@[]sha256";
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut parsed = 0;
        for _ in 0..50_000 {
            let len = (next() % 40) as usize;
            let s: String = (0..len)
                .map(|_| ALPHABET[(next() % ALPHABET.len() as u64) as usize] as char)
                .collect();
            if let Ok(r) = ImageRef::parse(&s) {
                parsed += 1;
                let again = ImageRef::parse(&r.canonical()).unwrap();
                assert_eq!(again.canonical(), r.canonical(), "{s:?}");
                assert_eq!(again.repository(), r.repository(), "{s:?}");
            }
        }
        assert!(
            parsed > 100,
            "the generator also produces valid references ({parsed})"
        );
    }
}
