//! The skopeo runner: the only code in the project that starts skopeo.
//!
//! Arguments are built by pure functions ([`copy_args`], [`inspect_args`]) from validated
//! [`ImageRef`]s, so no unvalidated string ever reaches the process, and every image argument
//! carries its `docker://` transport so that it can never be read as a flag. The process runs
//! without a shell, with stdin closed, stderr captured, a timeout, killed when dropped so that a
//! cancelled copy never outlives its caller, and a parent-death signal so that it never
//! outlives image-cloner either (`child.rs`). Each run writes only into its own directory under
//! this process's directory in `tmp_dir`, and what killed processes left there is removed before
//! the first run ([`clean_stale`]).
//!
//! skopeo reports every failure as free text on stderr; [`classify`] turns the text into the
//! error kinds the controller's retry policy needs (missing image, unauthorized, TLS, rate
//! limit, unreachable, other registry error).

mod args;
mod child;
mod classify;
mod error;
mod scratch;

use std::ffi::OsString;
use std::io;
use std::path::Path;
use std::process::ExitStatus;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt as _};

use crate::image::reference::{Digest, ImageRef};

pub use args::{
    CommandLine, CopyFormat, SkopeoOptions, anonymous_inspect_args, copy_args, inspect_args,
    transport,
};
pub use classify::{FailureKind, classify, summarize};
pub use error::SkopeoError;
pub use scratch::{CleanError, CleanReport, base_dir, clean_stale};

use classify::{failure, timed_out};
use scratch::{RunDir, Workspace};

/// The most of skopeo's stderr kept while it runs (the error keeps a shorter tail).
const STDERR_KEEP_BYTES: usize = 64 * 1024;

/// Runs skopeo. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Skopeo {
    options: Arc<SkopeoOptions>,
    /// This process's directory under `tmp_dir`, made (after [`clean_stale`]) on first use.
    workspace: Arc<Mutex<Option<Arc<Workspace>>>>,
}

impl Skopeo {
    pub fn new(options: SkopeoOptions) -> Self {
        Skopeo {
            options: Arc::new(options),
            workspace: Arc::default(),
        }
    }

    pub fn options(&self) -> &SkopeoOptions {
        &self.options
    }

    /// The manifest `image` resolves to, byte for byte.
    pub async fn inspect_raw(&self, image: &ImageRef) -> Result<Vec<u8>, SkopeoError> {
        let scratch = self.scratch()?;
        let args = inspect_args(&self.options_for(&scratch), image);
        self.run(&scratch, args, self.options.inspect_timeout).await
    }

    /// The manifest `image` resolves to for anyone: no docker config, `--no-creds`.
    pub async fn inspect_anonymous(&self, image: &ImageRef) -> Result<Vec<u8>, SkopeoError> {
        let scratch = self.scratch()?;
        let args = anonymous_inspect_args(&self.options_for(&scratch), image);
        self.run(&scratch, args, self.options.inspect_timeout).await
    }

    /// Copies `source` to `dest` and returns the digest skopeo pushed.
    pub async fn copy(
        &self,
        source: &ImageRef,
        dest: &ImageRef,
        format: CopyFormat,
    ) -> Result<Digest, SkopeoError> {
        let scratch = self.scratch()?;
        let digestfile = scratch.path().join("digest");
        // Run directories are emptied after each run, but the skopeo of a cancelled one, killed
        // as it ends, can write its digest file a moment later: never read as this copy's.
        remove_stale(&digestfile)?;
        let options = self.options_for(&scratch);
        let args = copy_args(&options, source, dest, format, &digestfile);
        let command = CommandLine::new(&self.options.program, &args);
        self.run(&scratch, args, self.options.copy_timeout).await?;
        read_digest(command, &digestfile)
    }

    /// The options with the run's directory as skopeo's `--tmpdir`.
    fn options_for(&self, scratch: &RunDir) -> SkopeoOptions {
        SkopeoOptions {
            tmp_dir: Some(scratch.path().to_owned()),
            ..SkopeoOptions::clone(&self.options)
        }
    }

    /// An empty directory for one run; on the first, this process's directory, after removing
    /// what processes that no longer run left next to it.
    fn scratch(&self) -> Result<RunDir, SkopeoError> {
        let workspace = {
            let mut slot = self
                .workspace
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            match &*slot {
                Some(w) => Arc::clone(w),
                None => {
                    let tmp_dir = self.options.tmp_dir.as_deref();
                    log_cleaning(clean_stale(tmp_dir));
                    let w = Arc::new(Workspace::create(&base_dir(tmp_dir))?);
                    *slot = Some(Arc::clone(&w));
                    w
                }
            }
        };
        workspace.run_dir()
    }

    async fn run(
        &self,
        scratch: &RunDir,
        args: Vec<OsString>,
        timeout: Duration,
    ) -> Result<Vec<u8>, SkopeoError> {
        let program = &self.options.program;
        let command = CommandLine::new(program, &args);
        tracing::debug!(command = %command, "running skopeo");
        let spawn_failed = |e: io::Error| match e.kind() {
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
        };
        // Go's own temp files (os.TempDir) go with the run's directory too.
        let env = [("TMPDIR", scratch.path().as_os_str())];
        let mut child = child::spawn(program, &args, &env).map_err(spawn_failed)?;
        let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
        let (out_pipe, err_pipe) = (child.stdout.take(), child.stderr.take());
        let finished = async {
            tokio::try_join!(
                drain(out_pipe, &mut stdout, usize::MAX),
                drain(err_pipe, &mut stderr, STDERR_KEEP_BYTES),
            )?;
            child.wait().await
        };
        // What was read before a timeout stays in the buffers: the stderr so far says why.
        match tokio::time::timeout(timeout, finished).await {
            Ok(Ok(status)) => finish(command, status, stdout, &stderr),
            Ok(Err(e)) => Err(SkopeoError::Wait {
                command,
                source: Arc::new(e),
            }),
            Err(_) => {
                // SIGKILL and reap; if that fails, dropping the child tries again.
                let _ = child.kill().await;
                Err(timed_out(command, timeout, &stderr))
            }
        }
    }
}

fn finish(
    command: CommandLine,
    status: ExitStatus,
    stdout: Vec<u8>,
    stderr: &[u8],
) -> Result<Vec<u8>, SkopeoError> {
    if status.success() {
        Ok(stdout)
    } else {
        Err(failure(command, status, stderr))
    }
}

/// Appends what `pipe` yields to `buf` as it arrives (so a cancelled read keeps what came),
/// keeping at most about `keep` bytes, the latest.
async fn drain(
    pipe: Option<impl AsyncRead + Unpin>,
    buf: &mut Vec<u8>,
    keep: usize,
) -> io::Result<()> {
    let Some(mut pipe) = pipe else {
        return Ok(());
    };
    loop {
        buf.reserve(8192);
        if pipe.read_buf(buf).await? == 0 {
            return Ok(());
        }
        if buf.len() > keep {
            buf.drain(..buf.len() - keep / 2);
        }
    }
}

/// Removes the file at `path` if there is one.
fn remove_stale(path: &Path) -> Result<(), SkopeoError> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(SkopeoError::ScratchDir {
            path: path.to_owned(),
            source: Arc::new(e),
        }),
        _ => Ok(()),
    }
}

/// The digest a successful copy wrote; skopeo exited 0, so an unreadable or malformed file is
/// an error of its own, never an empty digest.
fn read_digest(command: CommandLine, path: &Path) -> Result<Digest, SkopeoError> {
    let content = std::fs::read_to_string(path).map_err(|e| SkopeoError::ReadDigestFile {
        command: command.clone(),
        path: path.to_owned(),
        source: Arc::new(e),
    })?;
    Digest::parse(content.trim()).map_err(|_| SkopeoError::ParseDigestFile {
        command,
        path: path.to_owned(),
        content,
    })
}

/// Removes, at a command's start, what image-cloner processes killed earlier left in `tmp_dir`
/// (the setting), and logs it. The runner also does so before its first skopeo run, but a
/// process that never runs skopeo (every image already in the backup) would leave them.
pub fn clean_at_start(tmp_dir: Option<&Path>) {
    log_cleaning(clean_stale(tmp_dir));
}

fn log_cleaning(result: Result<CleanReport, CleanError>) {
    match result {
        Ok(report) => {
            if !report.removed.is_empty() {
                tracing::info!(
                    removed = ?report.removed,
                    "removed what image-cloner processes that no longer run left in tmp_dir"
                );
            }
            for (path, error) in &report.failed {
                tracing::warn!(path = %path.display(), %error, "could not remove a stale directory");
            }
        }
        Err(e) => tracing::warn!(error = %e, "could not look for stale directories"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Options whose `tmp_dir` is a fresh temp dir (returned, to keep it alive).
    fn options(program: &str) -> (SkopeoOptions, tempfile::TempDir) {
        let tmp = tempfile::tempdir().expect("a temp dir");
        let options = SkopeoOptions {
            program: program.into(),
            authfile: None,
            insecure_registries: vec!["127.0.0.1".into()],
            cert_dir: None,
            tmp_dir: Some(tmp.path().to_owned()),
            retry_times: 3,
            copy_timeout: Duration::from_secs(60),
            inspect_timeout: Duration::from_secs(5),
        };
        (options, tmp)
    }

    fn image(s: &str) -> ImageRef {
        ImageRef::parse(s).expect("a valid reference")
    }

    fn entries(dir: &Path) -> Vec<std::path::PathBuf> {
        std::fs::read_dir(dir)
            .expect("list a dir")
            .map(|e| e.expect("an entry").path())
            .collect()
    }

    #[tokio::test]
    async fn a_missing_program_is_reported_as_such() {
        let (o, _tmp) = options("/nonexistent/skopeo");
        let err = Skopeo::new(o)
            .inspect_raw(&image("a:1"))
            .await
            .expect_err("no such program");
        assert!(matches!(err, SkopeoError::NotFound { .. }), "{err}");
        assert!(err.to_string().contains("/nonexistent/skopeo"));
        assert_eq!(err.reason(), "SkopeoNotFound");
    }

    #[tokio::test]
    async fn a_hanging_process_is_killed_at_the_timeout() {
        // `sleep 30` stands in for a skopeo stuck on an unresponsive registry.
        let (o, _tmp) = options("/bin/sleep");
        let skopeo = Skopeo::new(o);
        let scratch = skopeo.scratch().expect("a run dir");
        let err = skopeo
            .run(&scratch, vec!["30".into()], Duration::from_millis(200))
            .await
            .expect_err("killed");
        assert!(matches!(err, SkopeoError::Timeout { .. }), "{err}");
        assert_eq!(err.reason(), "Timeout");
    }

    /// `true` stands in for a skopeo that exits 0 without writing its digest file.
    #[tokio::test]
    async fn a_copy_without_a_digest_file_is_an_error_not_an_empty_digest() {
        let (o, tmp) = options("/bin/true");
        let skopeo = Skopeo::new(o);
        let err = skopeo
            .copy(&image("a:1"), &image("b:1"), CopyFormat::Preserve)
            .await
            .expect_err("no digest file");
        assert!(matches!(err, SkopeoError::ReadDigestFile { .. }), "{err}");
        assert!(err.to_string().contains("exited 0"), "{err}");
        assert_eq!(err.reason(), "ReadDigestFile");
        // skopeo was given a run directory inside this process's directory, emptied since
        // and kept for the next run.
        let workspace = entries(tmp.path());
        assert_eq!(workspace.len(), 1, "{workspace:?}");
        let mut inside = entries(&workspace[0]);
        inside.sort();
        assert_eq!(inside.len(), 2, "{inside:?}");
        assert_eq!(inside[0], workspace[0].join("lock"));
        let run = &inside[1];
        let tmpdir = format!("--tmpdir {}", run.display());
        assert!(err.to_string().contains(&tmpdir), "{err}");
        assert!(entries(run).is_empty(), "the run dir is emptied");

        // A digest file a late skopeo wrote after the directory was emptied is never read as
        // the next copy's.
        std::fs::write(run.join("digest"), format!("sha256:{}", "a".repeat(64))).expect("write");
        let err = skopeo
            .copy(&image("a:1"), &image("b:1"), CopyFormat::Preserve)
            .await
            .expect_err("still no digest file of this copy's");
        assert!(matches!(err, SkopeoError::ReadDigestFile { .. }), "{err}");
        assert!(err.to_string().contains(&tmpdir), "the same run dir: {err}");
        drop(skopeo);
        assert!(
            entries(tmp.path()).is_empty(),
            "removed with the last handle"
        );
    }

    #[test]
    fn a_digest_file_holding_no_digest_is_reported_with_its_content() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let path = dir.path().join("digest");
        std::fs::write(&path, "garbage\n").expect("write");
        let err = read_digest(CommandLine("skopeo copy".into()), &path).expect_err("no digest");
        assert!(matches!(err, SkopeoError::ParseDigestFile { .. }), "{err}");
        assert!(err.to_string().contains("\"garbage\\n\""), "{err}");
        assert_eq!(err.reason(), "ParseDigestFile");
        assert!(!err.is_transient());
    }

    /// A registry that answers every manifest request with 429 and `Retry-After: 0`, so
    /// containers/image gives up on each request at once and skopeo logs a retry per attempt.
    async fn always_429() -> String {
        use tokio::io::AsyncWriteExt as _;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let host = listener.local_addr().expect("its address").to_string();
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut request = Vec::new();
                    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                        // A TLS hello (skopeo tries HTTPS first): close, so it falls back.
                        if conn.read_buf(&mut request).await.unwrap_or(0) == 0
                            || request.first() == Some(&0x16)
                        {
                            return;
                        }
                    }
                    let answer = if request.starts_with(b"GET /v2/ ") {
                        "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                            .to_owned()
                    } else {
                        let body =
                            r#"{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}"#;
                        format!(
                            "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 0\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                            body.len()
                        )
                    };
                    let _ = conn.write_all(answer.as_bytes()).await;
                });
            }
        });
        host
    }

    /// Real skopeo against a registry that always answers 429: still retrying at the timeout,
    /// it is killed, and the error says rate-limited rather than a bare timeout.
    #[tokio::test]
    async fn a_source_rate_limiting_until_the_timeout_is_reported_as_rate_limited() {
        let host = always_429().await;
        let (mut o, _tmp) = options("skopeo");
        o.insecure_registries = vec![host.clone()];
        o.retry_times = 10;
        o.inspect_timeout = Duration::from_secs(3);
        let err = Skopeo::new(o)
            .inspect_raw(&image(&format!("{host}/a:1")))
            .await
            .expect_err("rate-limited");
        assert!(matches!(err, SkopeoError::RateLimited { .. }), "{err}");
        assert!(err.to_string().contains("killed after 3s"), "{err}");
        assert!(err.to_string().contains("toomanyrequests"), "{err}");
        assert!(err.is_transient());
    }
}
