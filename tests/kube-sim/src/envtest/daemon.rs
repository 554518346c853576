//! One long-running process (etcd or kube-apiserver) with its output in a log file, stopped
//! gracefully — SIGTERM, then SIGKILL after [`GRACE`] — when asked or when dropped, so that a
//! panicking test leaves nothing running.

use std::ffi::OsString;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, kill_process};

use super::EnvtestError;

/// How long a process may take to exit after SIGTERM.
const GRACE: Duration = Duration::from_secs(5);
/// How many lines of a log an error message shows.
const TAIL_LINES: usize = 20;

pub(super) struct Daemon {
    name: &'static str,
    child: Child,
    log: PathBuf,
    stopped: bool,
}

impl Daemon {
    /// Starts `program args…` (no shell) with stdin closed and stdout and stderr in `log`.
    pub fn spawn(
        name: &'static str,
        program: &Path,
        args: &[OsString],
        log: PathBuf,
    ) -> Result<Daemon, EnvtestError> {
        let write_err = |source| EnvtestError::WriteFile {
            path: log.clone(),
            source,
        };
        let out = File::create(&log).map_err(write_err)?;
        let err = out.try_clone().map_err(write_err)?;
        let child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|source| EnvtestError::Spawn {
                program: program.to_owned(),
                source,
            })?;
        Ok(Daemon {
            name,
            child,
            log,
            stopped: false,
        })
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    pub fn log(&self) -> &Path {
        &self.log
    }

    /// How it ended, if it has.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    pub fn log_text(&self) -> String {
        std::fs::read(&self.log)
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .unwrap_or_else(|e| format!("(cannot read {}: {e})", self.log.display()))
    }

    /// The last lines of the log.
    pub fn log_tail(&self) -> String {
        let text = self.log_text();
        let lines: Vec<&str> = text.trim_end().lines().collect();
        if lines.is_empty() {
            return "(empty)".to_string();
        }
        lines[lines.len().saturating_sub(TAIL_LINES)..].join("\n")
    }

    /// SIGTERM, up to [`GRACE`] to exit, then SIGKILL; reaped either way. Idempotent.
    pub fn stop(&mut self) {
        if std::mem::replace(&mut self.stopped, true) {
            return;
        }
        // Signalled only while not yet reaped, so the pid cannot belong to another process.
        if self.exited().is_none() {
            let _ = kill_process(Pid::from_child(&self.child), Signal::TERM);
            let deadline = Instant::now() + GRACE;
            while self.exited().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
    }
}
