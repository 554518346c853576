//! The skopeo runner: the only code in the project that starts skopeo.
//!
//! Arguments are built by pure functions ([`copy_args`], [`inspect_args`]) from validated
//! [`ImageRef`]s, so no unvalidated string ever reaches the process, and every image argument
//! carries its `docker://` transport so that it can never be read as a flag. The process runs
//! without a shell, with stdin closed, stderr captured, a timeout, and `kill_on_drop` so that a
//! cancelled copy never outlives its caller.
//!
//! skopeo reports every failure as free text on stderr; [`classify`] turns the text into the
//! error kinds the controller's retry policy needs (missing image, unauthorized, TLS, rate
//! limit, unreachable, other registry error).

use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use thiserror::Error;
use tokio::process::Command;

use crate::image::reference::{Digest, ImageRef};

/// How much of skopeo's stderr an error keeps.
const STDERR_TAIL_BYTES: usize = 1500;

/// What every skopeo invocation shares, taken from the settings.
#[derive(Debug, Clone)]
pub struct SkopeoOptions {
    pub program: PathBuf,
    /// The docker `config.json` handed to `--authfile`; `None` leaves skopeo to its own
    /// default lookup (`$REGISTRY_AUTH_FILE`, `${XDG_RUNTIME_DIR}/containers/auth.json`, ...).
    pub authfile: Option<PathBuf>,
    /// `host[:port]` entries reached over plain HTTP or unverified TLS.
    pub insecure_registries: Vec<String>,
    /// Extra CA certificates (`*.crt`) for every registry.
    pub cert_dir: Option<PathBuf>,
    /// Where skopeo stages blobs (its `--tmpdir`).
    pub tmp_dir: Option<PathBuf>,
    pub retry_times: u32,
    pub copy_timeout: Duration,
    pub inspect_timeout: Duration,
}

/// How a copy treats the manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyFormat {
    /// `--all --preserve-digests`: byte-identical manifests and indexes, every platform.
    Preserve,
    /// `--format v2s2`: a schema-1 source rewritten to schema 2 (its digest changes).
    ConvertToV2s2,
}

/// The `docker://` argument for an image. A reference with both a tag and a digest is given by
/// its digest, since skopeo refuses the pair.
pub fn transport(image: &ImageRef) -> String {
    match image.digest() {
        Some(d) => format!("docker://{}@{d}", image.repository()),
        None => format!("docker://{}:{}", image.repository(), image.tag_or_latest()),
    }
}

fn insecure(options: &SkopeoOptions, image: &ImageRef) -> bool {
    options
        .insecure_registries
        .iter()
        .any(|r| r.eq_ignore_ascii_case(image.domain()))
}

fn global_args(options: &SkopeoOptions, out: &mut Vec<OsString>) {
    if let Some(dir) = &options.tmp_dir {
        out.push("--tmpdir".into());
        out.push(dir.into());
    }
}

fn retry_and_auth(options: &SkopeoOptions, out: &mut Vec<OsString>) {
    out.push(format!("--retry-times={}", options.retry_times).into());
    if let Some(file) = &options.authfile {
        out.push("--authfile".into());
        out.push(file.into());
    }
}

/// Arguments of `skopeo inspect --raw`, which prints the manifest's exact bytes.
pub fn inspect_args(options: &SkopeoOptions, image: &ImageRef) -> Vec<OsString> {
    let mut out = Vec::new();
    global_args(options, &mut out);
    out.push("inspect".into());
    out.push("--raw".into());
    retry_and_auth(options, &mut out);
    if insecure(options, image) {
        out.push("--tls-verify=false".into());
    }
    if let Some(dir) = &options.cert_dir {
        out.push("--cert-dir".into());
        out.push(dir.into());
    }
    out.push(transport(image).into());
    out
}

/// Arguments of `skopeo copy` from `source` to `dest`, writing the pushed digest to `digestfile`.
pub fn copy_args(
    options: &SkopeoOptions,
    source: &ImageRef,
    dest: &ImageRef,
    format: CopyFormat,
    digestfile: &Path,
) -> Vec<OsString> {
    let mut out = Vec::new();
    global_args(options, &mut out);
    out.push("copy".into());
    out.push("--quiet".into());
    match format {
        CopyFormat::Preserve => {
            out.push("--all".into());
            out.push("--preserve-digests".into());
        }
        CopyFormat::ConvertToV2s2 => {
            out.push("--format".into());
            out.push("v2s2".into());
        }
    }
    out.push("--digestfile".into());
    out.push(digestfile.into());
    retry_and_auth(options, &mut out);
    if insecure(options, source) {
        out.push("--src-tls-verify=false".into());
    }
    if insecure(options, dest) {
        out.push("--dest-tls-verify=false".into());
    }
    if let Some(dir) = &options.cert_dir {
        out.push("--src-cert-dir".into());
        out.push(dir.into());
        out.push("--dest-cert-dir".into());
        out.push(dir.into());
    }
    out.push(transport(source).into());
    out.push(transport(dest).into());
    out
}

/// A skopeo command as shown in errors and logs. It holds paths and image names only: no
/// credential is ever on skopeo's command line (they stay in the authfile).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandLine(pub String);

impl std::fmt::Display for CommandLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl CommandLine {
    fn new(program: &Path, args: &[OsString]) -> Self {
        let mut s = program.display().to_string();
        for a in args {
            s.push(' ');
            s.push_str(&a.to_string_lossy());
        }
        CommandLine(s)
    }
}

/// A failed skopeo run, by what went wrong. Every variant that ran skopeo shows the command
/// and the end of what skopeo printed.
#[derive(Debug, Clone, Error)]
pub enum SkopeoError {
    #[error("skopeo not found at {program} (install the skopeo package or set `skopeo`)")]
    NotFound { program: PathBuf },
    #[error("skopeo at {program} is not executable (check its permissions or set `skopeo`)")]
    NotExecutable { program: PathBuf },
    #[error("could not start `{command}`: {source}")]
    Spawn {
        command: CommandLine,
        #[source]
        source: Arc<io::Error>,
    },
    #[error("`{command}` did not finish within {}; killed", humantime::format_duration(*after))]
    Timeout {
        command: CommandLine,
        after: Duration,
    },
    #[error(
        "manifest unknown: the image does not exist in the registry: {summary} (command: `{command}`)"
    )]
    ManifestUnknown {
        command: CommandLine,
        summary: String,
        stderr: String,
    },
    #[error(
        "unauthorized: the registry refused the credentials (or their absence): {summary} (command: `{command}`)"
    )]
    Unauthorized {
        command: CommandLine,
        summary: String,
        stderr: String,
    },
    #[error(
        "TLS failure (list the registry in `insecure_registries` or give its CA in `cert_dir`): {summary} (command: `{command}`)"
    )]
    Tls {
        command: CommandLine,
        summary: String,
        stderr: String,
    },
    #[error("rate-limited by the registry (429): {summary} (command: `{command}`)")]
    RateLimited {
        command: CommandLine,
        summary: String,
        stderr: String,
    },
    #[error("registry unreachable: {summary} (command: `{command}`)")]
    Unreachable {
        command: CommandLine,
        summary: String,
        stderr: String,
    },
    #[error("registry error: {summary} (command: `{command}`)")]
    Registry {
        command: CommandLine,
        summary: String,
        stderr: String,
    },
    #[error("skopeo failed ({status}): {summary} (command: `{command}`)")]
    Failed {
        command: CommandLine,
        status: String,
        summary: String,
        stderr: String,
    },
    #[error(
        "skopeo copy succeeded but its digest file {path} holds {content:?}, not a digest (command: `{command}`)"
    )]
    DigestFile {
        command: CommandLine,
        path: PathBuf,
        content: String,
    },
}

impl SkopeoError {
    /// Whether trying again later can succeed on its own: network trouble, rate limits, server
    /// errors and timeouts. A missing image or refused credentials need a person.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            SkopeoError::Timeout { .. }
                | SkopeoError::RateLimited { .. }
                | SkopeoError::Unreachable { .. }
                | SkopeoError::Registry { .. }
                | SkopeoError::Spawn { .. }
        )
    }

    /// The full captured stderr tail, for the debug log.
    pub fn stderr(&self) -> Option<&str> {
        match self {
            SkopeoError::ManifestUnknown { stderr, .. }
            | SkopeoError::Unauthorized { stderr, .. }
            | SkopeoError::Tls { stderr, .. }
            | SkopeoError::RateLimited { stderr, .. }
            | SkopeoError::Unreachable { stderr, .. }
            | SkopeoError::Registry { stderr, .. }
            | SkopeoError::Failed { stderr, .. } => Some(stderr),
            _ => None,
        }
    }
}

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

/// Reads skopeo's (containers/image's) error text. Order matters: a 429 or a TLS failure can
/// mention the manifest URL, and "denied" appears in both unauthorized and not-found answers of
/// some registries, so the most specific signals are tested first.
pub fn classify(stderr: &str) -> FailureKind {
    let s = stderr.to_ascii_lowercase();
    let any = |needles: &[&str]| needles.iter().any(|n| s.contains(n));
    // Status codes are matched with their words: a bare "429" can occur inside a digest.
    if any(&[
        "toomanyrequests",
        "too many requests",
        "status 429",
        "rate limit",
    ]) {
        FailureKind::RateLimited
    } else if any(&[
        "x509:",
        "tls:",
        "certificate",
        "server gave http response to https client",
        "first record does not look like a tls handshake",
    ]) {
        FailureKind::Tls
    } else if any(&[
        "unauthorized",
        "authentication required",
        "requested access to the resource is denied",
        "denied:",
        "invalid username/password",
        "incorrect username or password",
        "401 unauthorized",
        "status 401",
        "403 forbidden",
    ]) {
        FailureKind::Unauthorized
    } else if any(&[
        "manifest unknown",
        "name unknown",
        "repository name not known",
        "404 not found",
        "status 404",
    ]) {
        FailureKind::ManifestUnknown
    } else if any(&[
        "connection refused",
        "no such host",
        "i/o timeout",
        "network is unreachable",
        "connection reset",
        "no route to host",
        "tls handshake timeout",
        "timeout awaiting response headers",
        "unexpected eof",
        "server misbehaving",
        "temporary failure in name resolution",
    ]) {
        FailureKind::Unreachable
    } else if any(&[
        "500 internal server error",
        "502 bad gateway",
        "503 service unavailable",
        "504 gateway timeout",
        "status 500",
        "status 502",
        "status 503",
        "status 504",
        "unknown: ",
        "manifest invalid",
        "blob unknown",
        "unsupported",
    ]) {
        FailureKind::Registry
    } else {
        FailureKind::Other
    }
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

fn failure(command: CommandLine, status: std::process::ExitStatus, stderr: &[u8]) -> SkopeoError {
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

/// Runs skopeo. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Skopeo {
    options: Arc<SkopeoOptions>,
}

impl Skopeo {
    pub fn new(options: SkopeoOptions) -> Self {
        Skopeo {
            options: Arc::new(options),
        }
    }

    pub fn options(&self) -> &SkopeoOptions {
        &self.options
    }

    /// The manifest `image` resolves to, byte for byte.
    pub async fn inspect_raw(&self, image: &ImageRef) -> Result<Vec<u8>, SkopeoError> {
        let args = inspect_args(&self.options, image);
        self.run(args, self.options.inspect_timeout).await
    }

    /// Copies `source` to `dest` and returns the digest skopeo pushed.
    pub async fn copy(
        &self,
        source: &ImageRef,
        dest: &ImageRef,
        format: CopyFormat,
    ) -> Result<Digest, SkopeoError> {
        let digestfile = match &self.options.tmp_dir {
            Some(dir) => tempfile::Builder::new()
                .prefix("image-cloner-digest-")
                .tempfile_in(dir),
            None => tempfile::Builder::new()
                .prefix("image-cloner-digest-")
                .tempfile(),
        }
        .map_err(|e| SkopeoError::Spawn {
            command: CommandLine("creating the --digestfile temp file".into()),
            source: Arc::new(e),
        })?;
        let args = copy_args(&self.options, source, dest, format, digestfile.path());
        let command = CommandLine::new(&self.options.program, &args);
        self.run(args, self.options.copy_timeout).await?;
        let content = std::fs::read_to_string(digestfile.path()).unwrap_or_default();
        Digest::parse(content.trim()).map_err(|_| SkopeoError::DigestFile {
            command,
            path: digestfile.path().to_owned(),
            content,
        })
    }

    async fn run(&self, args: Vec<OsString>, timeout: Duration) -> Result<Vec<u8>, SkopeoError> {
        let program = &self.options.program;
        let command = CommandLine::new(program, &args);
        tracing::debug!(command = %command, "running skopeo");
        let child = Command::new(program)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| match e.kind() {
                io::ErrorKind::NotFound => SkopeoError::NotFound {
                    program: program.clone(),
                },
                io::ErrorKind::PermissionDenied => SkopeoError::NotExecutable {
                    program: program.clone(),
                },
                _ => SkopeoError::Spawn {
                    command: command.clone(),
                    source: Arc::new(e),
                },
            })?;
        // Dropping the wait future on timeout drops the child, which kills it.
        let output = match tokio::time::timeout(timeout, child.wait_with_output()).await {
            Ok(result) => result.map_err(|e| SkopeoError::Spawn {
                command: command.clone(),
                source: Arc::new(e),
            })?,
            Err(_) => {
                return Err(SkopeoError::Timeout {
                    command,
                    after: timeout,
                });
            }
        };
        if output.status.success() {
            Ok(output.stdout)
        } else {
            Err(failure(command, output.status, &output.stderr))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> SkopeoOptions {
        SkopeoOptions {
            program: "/usr/bin/skopeo".into(),
            authfile: Some("/etc/image-cloner/docker.json".into()),
            insecure_registries: vec!["127.0.0.1:5000".into()],
            cert_dir: None,
            tmp_dir: None,
            retry_times: 3,
            copy_timeout: Duration::from_secs(60),
            inspect_timeout: Duration::from_secs(5),
        }
    }

    fn image(s: &str) -> ImageRef {
        ImageRef::parse(s).unwrap()
    }

    fn strings(args: Vec<OsString>) -> Vec<String> {
        args.into_iter().map(|a| a.into_string().unwrap()).collect()
    }

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn inspect_reads_the_raw_manifest_with_the_authfile() {
        let args = strings(inspect_args(&options(), &image("nginx:1.27")));
        assert_eq!(
            args,
            [
                "inspect",
                "--raw",
                "--retry-times=3",
                "--authfile",
                "/etc/image-cloner/docker.json",
                "docker://docker.io/library/nginx:1.27"
            ]
        );
    }

    #[test]
    fn copy_preserves_digests_of_every_platform() {
        let args = strings(copy_args(
            &options(),
            &image(&format!("ghcr.io/x/app@{D}")),
            &image("quay.io/backup/ghcr.io_x_app:latest"),
            CopyFormat::Preserve,
            Path::new("/tmp/d"),
        ));
        assert_eq!(
            args,
            [
                "copy",
                "--quiet",
                "--all",
                "--preserve-digests",
                "--digestfile",
                "/tmp/d",
                "--retry-times=3",
                "--authfile",
                "/etc/image-cloner/docker.json",
                &format!("docker://ghcr.io/x/app@{D}"),
                "docker://quay.io/backup/ghcr.io_x_app:latest"
            ]
        );
    }

    #[test]
    fn schema1_sources_are_converted_not_preserved() {
        let args = strings(copy_args(
            &options(),
            &image("old/app:1"),
            &image("quay.io/b/x:1"),
            CopyFormat::ConvertToV2s2,
            Path::new("/tmp/d"),
        ));
        assert!(args.windows(2).any(|w| w == ["--format", "v2s2"]));
        assert!(!args.contains(&"--preserve-digests".to_owned()));
        assert!(!args.contains(&"--all".to_owned()));
    }

    #[test]
    fn tag_and_digest_sources_are_read_by_digest_alone() {
        assert_eq!(
            transport(&image(&format!("nginx:1.27@{D}"))),
            format!("docker://docker.io/library/nginx@{D}")
        );
        assert_eq!(
            transport(&image("localhost:5000/a")),
            "docker://localhost:5000/a:latest"
        );
    }

    #[test]
    fn tls_is_relaxed_only_for_the_listed_registries_and_per_side() {
        let args = strings(copy_args(
            &options(),
            &image("127.0.0.1:5000/src:1"),
            &image("quay.io/b/x:1"),
            CopyFormat::Preserve,
            Path::new("/tmp/d"),
        ));
        assert!(args.contains(&"--src-tls-verify=false".to_owned()));
        assert!(!args.iter().any(|a| a.starts_with("--dest-tls-verify")));
        let args = strings(inspect_args(&options(), &image("quay.io/b/x:1")));
        assert!(!args.iter().any(|a| a.contains("tls-verify")));
    }

    #[test]
    fn cert_dir_tmpdir_and_anonymous_access() {
        let mut o = options();
        o.cert_dir = Some("/etc/image-cloner/certs".into());
        o.tmp_dir = Some("/var/cache/image-cloner".into());
        o.authfile = None;
        let args = strings(copy_args(
            &o,
            &image("a/b:1"),
            &image("quay.io/b/x:1"),
            CopyFormat::Preserve,
            Path::new("/tmp/d"),
        ));
        assert_eq!(&args[..3], ["--tmpdir", "/var/cache/image-cloner", "copy"]);
        assert!(
            args.windows(2)
                .any(|w| w == ["--src-cert-dir", "/etc/image-cloner/certs"])
        );
        assert!(
            args.windows(2)
                .any(|w| w == ["--dest-cert-dir", "/etc/image-cloner/certs"])
        );
        assert!(!args.contains(&"--authfile".to_owned()));
    }

    #[test]
    fn no_image_argument_can_be_read_as_a_flag() {
        for s in ["a", "localhost/x:1", &format!("x@{D}")] {
            let args = strings(inspect_args(&options(), &image(s)));
            assert!(args.last().unwrap().starts_with("docker://"));
        }
    }

    /// Real skopeo 1.9 messages, captured against docker-registry 2.8 on loopback.
    #[test]
    fn stderr_is_classified_by_what_went_wrong() {
        let with_digest = format!(
            r#"level=fatal msg="reading manifest 4291401404 in r/a@{D}: manifest unknown: manifest unknown""#
        );
        let cases: [(&str, FailureKind); 9] = [
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
            (
                r#"level=fatal msg="open /etc/containers/policy.json: no such file or directory""#,
                FailureKind::Other,
            ),
        ];
        for (stderr, want) in cases {
            assert_eq!(classify(stderr), want, "{stderr}");
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

    #[tokio::test]
    async fn a_missing_program_is_reported_as_such() {
        let mut o = options();
        o.program = "/nonexistent/skopeo".into();
        let err = Skopeo::new(o).inspect_raw(&image("a:1")).await.unwrap_err();
        assert!(matches!(err, SkopeoError::NotFound { .. }), "{err}");
        assert!(err.to_string().contains("/nonexistent/skopeo"));
    }

    #[tokio::test]
    async fn a_hanging_process_is_killed_at_the_timeout() {
        // `sleep 30` stands in for a skopeo stuck on an unresponsive registry.
        let mut o = options();
        o.program = "/bin/sleep".into();
        let skopeo = Skopeo::new(o);
        let err = skopeo
            .run(vec!["30".into()], Duration::from_millis(200))
            .await
            .unwrap_err();
        assert!(matches!(err, SkopeoError::Timeout { .. }), "{err}");
    }
}
