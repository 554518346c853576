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

mod args;
mod classify;
mod error;

use std::ffi::OsString;
use std::io;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use tokio::process::Command;

use crate::image::reference::{Digest, ImageRef};

pub use args::{CommandLine, CopyFormat, SkopeoOptions, copy_args, inspect_args, transport};
pub use classify::{FailureKind, classify, summarize};
pub use error::SkopeoError;

use classify::failure;

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
