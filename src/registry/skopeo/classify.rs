//! Reading skopeo's (containers/image's) free-text stderr: which kind of failure it describes
//! and the one line a person wants to read.

use std::time::Duration;

use super::args::CommandLine;
use super::error::SkopeoError;

/// How much of skopeo's stderr an error keeps.
const STDERR_TAIL_BYTES: usize = 1500;

/// The kind of failure skopeo's stderr describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    ManifestUnknown,
    Unauthorized,
    Tls,
    RateLimited,
    Unreachable,
    Registry,
    Other,
}

/// What each kind of failure says, most specific first: a 429 or a TLS failure can mention
/// the manifest URL, and "denied" appears in both unauthorized and not-found answers of some
/// registries. Status codes are matched with their words: a bare "429" can occur inside a
/// digest.
const SIGNALS: [(FailureKind, &[&str]); 5] = [
    (
        FailureKind::RateLimited,
        &[
            "toomanyrequests",
            "too many requests",
            "status 429",
            "rate limit",
        ],
    ),
    (
        FailureKind::Tls,
        &[
            "x509:",
            "tls:",
            "certificate",
            "server gave http response to https client",
            "first record does not look like a tls handshake",
        ],
    ),
    (
        FailureKind::Unauthorized,
        &[
            "unauthorized",
            "authentication required",
            "requested access to the resource is denied",
            "denied:",
            "invalid username/password",
            "incorrect username or password",
            "401 unauthorized",
            "status 401",
            "403 forbidden",
        ],
    ),
    (
        FailureKind::ManifestUnknown,
        &[
            "manifest unknown",
            "name unknown",
            "repository name not known",
            "404 not found",
            "status 404",
        ],
    ),
    (
        FailureKind::Unreachable,
        &[
            "connection refused",
            "no such host",
            "i/o timeout",
            "network is unreachable",
            "connection reset",
            "no route to host",
            "tls handshake timeout",
            "timeout awaiting response headers",
            "unexpected eof",
            // Go's io.EOF after the URL: the connection was closed without an answer (a
            // registry restarting, a load balancer with no backend).
            "\": eof",
            "broken pipe",
            "server misbehaving",
            "temporary failure in name resolution",
            // Go's net/http when a connection dies under a request: a registry stopped
            // mid-copy.
            "use of closed network connection",
            "transport connection broken",
            "server closed idle connection",
            // io.EOF ending the message: the answer stopped short.
            ": eof\"",
        ],
    ),
];

/// What a registry answering with an error says: tested after [`SIGNALS`].
const REGISTRY_ERRORS: &[&str] = &[
    "500 internal server error",
    "502 bad gateway",
    "503 service unavailable",
    "504 gateway timeout",
    "status 500",
    "status 502",
    "status 503",
    "status 504",
    // containers/image's own wording of an answer it did not expect ("...: 500 (Internal
    // Server Error)").
    "500 (internal server error)",
    "502 (bad gateway)",
    "503 (service unavailable)",
    "504 (gateway timeout)",
    "unknown: ",
    "manifest invalid",
    "blob unknown",
    "unsupported",
    // containers/image says this when the PUT of a manifest list failed for *any* reason (a
    // registry going down mid-copy as well as one refusing the type) and the next type it
    // would try needs a conversion that --preserve-digests forbids; the real cause is only in
    // its debug log. Found by make reliability: taken for permanent, a copy cut by a backup
    // outage waited 15 minutes.
    "manifest list must be converted",
];

/// Reads skopeo's (containers/image's) error text: the first kind of [`SIGNALS`] whose words
/// it contains, else a registry error, else `Other`.
pub fn classify(stderr: &str) -> FailureKind {
    let s = stderr.to_ascii_lowercase();
    let says = |needles: &[&str]| needles.iter().any(|n| s.contains(n));
    SIGNALS
        .iter()
        .chain(&[(FailureKind::Registry, REGISTRY_ERRORS)])
        .find(|(_, needles)| says(needles))
        .map_or(FailureKind::Other, |(kind, _)| *kind)
}

/// The message of skopeo's last `level=fatal msg="..."` line (or its last non-empty line),
/// which is what a person wants to read; the rest stays in the stderr tail.
pub fn summarize(stderr: &str) -> String {
    let line = stderr
        .lines()
        .rev()
        .find(|l| l.contains("level=fatal"))
        .or_else(|| stderr.lines().rev().find(|l| !l.trim().is_empty()))
        .unwrap_or("")
        .trim();
    match line.find("msg=\"") {
        Some(i) => {
            let rest = &line[i + 5..];
            let end = rest.rfind('"').unwrap_or(rest.len());
            rest[..end].replace("\\\"", "\"")
        }
        None => line.to_owned(),
    }
}

fn tail(bytes: &[u8]) -> String {
    let start = bytes.len().saturating_sub(STDERR_TAIL_BYTES);
    String::from_utf8_lossy(&bytes[start..]).into_owned()
}

/// The error for a skopeo killed at its timeout, from what it had printed by then. A registry
/// that answers 429 to every request keeps skopeo retrying (containers/image backs off up to
/// 30 s per request, silently, then logs `Failed, retrying ... toomanyrequests` per attempt)
/// until the timeout: that is a rate limit, not a generic timeout, and is reported as one.
/// When the registry's `Retry-After` outlasts the timeout, skopeo has printed nothing yet and
/// this stays a [`SkopeoError::Timeout`].
pub(super) fn timed_out(command: CommandLine, after: Duration, stderr: &[u8]) -> SkopeoError {
    let stderr = tail(stderr);
    if classify(&stderr) == FailureKind::RateLimited {
        SkopeoError::RateLimited {
            command,
            summary: format!(
                "still rate-limited when killed after {}: {}",
                humantime::format_duration(after),
                summarize(&stderr)
            ),
            stderr,
        }
    } else {
        SkopeoError::Timeout { command, after }
    }
}

pub(super) fn failure(
    command: CommandLine,
    status: std::process::ExitStatus,
    stderr: &[u8],
) -> SkopeoError {
    let stderr = tail(stderr);
    let summary = summarize(&stderr);
    match classify(&stderr) {
        FailureKind::ManifestUnknown => SkopeoError::ManifestUnknown {
            command,
            summary,
            stderr,
        },
        FailureKind::Unauthorized => SkopeoError::Unauthorized {
            command,
            summary,
            stderr,
        },
        FailureKind::Tls => SkopeoError::Tls {
            command,
            summary,
            stderr,
        },
        FailureKind::RateLimited => SkopeoError::RateLimited {
            command,
            summary,
            stderr,
        },
        FailureKind::Unreachable => SkopeoError::Unreachable {
            command,
            summary,
            stderr,
        },
        FailureKind::Registry => SkopeoError::Registry {
            command,
            summary,
            stderr,
        },
        FailureKind::Other => SkopeoError::Failed {
            command,
            status: status.to_string(),
            summary,
            stderr,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    /// Real skopeo 1.9 messages, captured against docker-registry 2.8 on loopback.
    #[test]
    fn stderr_is_classified_by_what_went_wrong() {
        let with_digest = format!(
            r#"level=fatal msg="reading manifest 4291401404 in r/a@{D}: manifest unknown: manifest unknown""#
        );
        let cases: [(&str, FailureKind); 12] = [
            // Found by make reliability: a backup registry whose connections close without an
            // answer was taken for a permanent failure, retried every 15 minutes.
            (
                r#"level=fatal msg="Error parsing image name \"docker://127.0.0.1:34905/m/a:1.2\": pinging container registry 127.0.0.1:34905: Get \"http://127.0.0.1:34905/v2/\": EOF""#,
                FailureKind::Unreachable,
            ),
            (
                r#"time="2026-11-24T10:00:00Z" level=fatal msg="Error parsing image name \"docker://127.0.0.1:5000/nope:1\": reading manifest 1 in 127.0.0.1:5000/nope: manifest unknown: manifest unknown""#,
                FailureKind::ManifestUnknown,
            ),
            (
                r#"level=fatal msg="Error parsing image name \"docker://127.0.0.1:5000/a:1\": pinging container registry 127.0.0.1:5000: Get \"https://127.0.0.1:5000/v2/\": dial tcp 127.0.0.1:5000: connect: connection refused""#,
                FailureKind::Unreachable,
            ),
            (
                r#"level=fatal msg="pinging container registry 127.0.0.1:5000: Get \"https://127.0.0.1:5000/v2/\": http: server gave HTTP response to HTTPS client""#,
                FailureKind::Tls,
            ),
            (
                r#"level=fatal msg="pinging container registry 127.0.0.1:5000: Get \"https://127.0.0.1:5000/v2/\": x509: certificate signed by unknown authority""#,
                FailureKind::Tls,
            ),
            (
                r#"level=fatal msg="Error parsing image name \"docker://127.0.0.1:5000/a:1\": reading manifest 1 in 127.0.0.1:5000/a: unauthorized: authentication required""#,
                FailureKind::Unauthorized,
            ),
            (
                r#"level=fatal msg="initializing source docker://nginx:1: reading manifest 1 in docker.io/library/nginx: toomanyrequests: You have reached your pull rate limit.""#,
                FailureKind::RateLimited,
            ),
            (
                r#"level=fatal msg="reading manifest 1 in 127.0.0.1:5000/a: received unexpected HTTP status: 503 Service Unavailable""#,
                FailureKind::Registry,
            ),
            (&with_digest, FailureKind::ManifestUnknown),
            // Real skopeo, from `make reliability-short` (seed 0x18ecdb734ec591b9): the backup
            // registry answering 500 while a blob was written. Taken for permanent, the copy
            // waited 15 minutes for a registry that came back in seconds.
            (
                r#"level=fatal msg="copying image 1/2 from manifest list: writing blob: failed to read from destination repository mirror/127.0.0.1--46681_team_app-2: 500 (Internal Server Error)""#,
                FailureKind::Registry,
            ),
            // Real skopeo 1.9, the backup registry stopped while the OCI index was written.
            (
                r#"level=fatal msg="Manifest list must be converted to type \"application/vnd.docker.distribution.manifest.list.v2+json\" to be written to destination, but we cannot modify it: \"Instructed to preserve digests\"""#,
                FailureKind::Registry,
            ),
            (
                r#"level=fatal msg="open /etc/containers/policy.json: no such file or directory""#,
                FailureKind::Other,
            ),
        ];
        for (stderr, want) in cases {
            assert_eq!(classify(stderr), want, "{stderr}");
        }
    }

    /// Go's net/http texts for a connection that died under a request (from its source, not
    /// captured): what skopeo ends with when a registry is stopped in the middle of a copy.
    #[test]
    fn a_connection_dying_mid_request_is_unreachable() {
        for stderr in [
            r#"level=fatal msg="writing blob: Patch \"http://127.0.0.1:5000/v2/a/blobs/uploads/1\": read tcp 127.0.0.1:40000->127.0.0.1:5000: use of closed network connection""#,
            r#"level=fatal msg="writing manifest: Put \"http://127.0.0.1:5000/v2/a/manifests/1\": net/http: HTTP/1.x transport connection broken: write tcp: broken""#,
            r#"level=fatal msg="reading blob sha256:0: Get \"http://127.0.0.1:5000/v2/a/blobs/sha256:0\": http: server closed idle connection""#,
            r#"level=fatal msg="copying image 1/2 from manifest list: writing blob: storing blob to file: EOF""#,
        ] {
            assert_eq!(classify(stderr), FailureKind::Unreachable, "{stderr}");
        }
    }

    #[test]
    fn the_summary_is_the_fatal_message() {
        let stderr = "time=\"x\" level=warning msg=\"Failed, retrying in 1s ... (1/3)\"\ntime=\"y\" level=fatal msg=\"reading manifest 1 in r/a: manifest unknown: manifest unknown\"\n";
        assert_eq!(
            summarize(stderr),
            "reading manifest 1 in r/a: manifest unknown: manifest unknown"
        );
        assert_eq!(summarize("plain text\n\n"), "plain text");
    }

    #[test]
    fn transient_errors_are_the_retryable_ones() {
        let command = CommandLine("skopeo".into());
        let e = |kind| {
            failure(
                command.clone(),
                std::process::ExitStatus::default(),
                match kind {
                    0 => b"connection refused" as &[u8],
                    1 => b"manifest unknown",
                    _ => b"unauthorized",
                },
            )
        };
        assert!(e(0).is_transient());
        assert!(!e(1).is_transient());
        assert!(!e(2).is_transient());
    }

    #[test]
    fn killed_at_the_timeout_while_rate_limited_is_rate_limited() {
        // Real skopeo 1.9 output against a registry answering 429 to every manifest request.
        let retrying = br#"time="2026-11-30T04:30:42Z" level=warning msg="Failed, retrying in 1s ... (1/3). Error: reading manifest 1 in 127.0.0.1:34421/a: toomanyrequests: slow down""#;
        let command = CommandLine("skopeo inspect".into());
        let err = timed_out(command.clone(), Duration::from_secs(60), retrying);
        assert!(matches!(err, SkopeoError::RateLimited { .. }), "{err}");
        assert!(
            err.to_string()
                .contains("still rate-limited when killed after 1m: Failed, retrying in 1s"),
            "{err}"
        );
        // Silent or anything else: a timeout.
        let err = timed_out(command.clone(), Duration::from_secs(60), b"");
        assert!(matches!(err, SkopeoError::Timeout { .. }), "{err}");
        let other = b"level=warning msg=\"Failed, retrying ... connection reset by peer\"";
        let err = timed_out(command, Duration::from_secs(60), other);
        assert_eq!(err.reason(), "Timeout");
    }
}
