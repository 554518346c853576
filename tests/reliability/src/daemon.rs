//! `image-cloner` as the suite runs it: the daemon as a child process with its output in a log
//! file, stopped with SIGTERM (or killed with SIGKILL) by pid; and one-shot commands.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use rustix::process::Signal;

use crate::processes::signal;

/// A running `image-cloner run`. Dropping it stops it (SIGTERM, then SIGKILL after 10 s).
pub struct Daemon {
    child: Child,
    pub log: PathBuf,
}

impl Daemon {
    /// Starts `cmd run`, its stdout and stderr appended to `log`.
    pub fn start(mut cmd: Command, log: &Path) -> Result<Daemon> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("opening the daemon log {}", log.display()))?;
        let child = cmd
            .arg("run")
            .stdin(Stdio::null())
            .stdout(file.try_clone().context("the daemon log")?)
            .stderr(file)
            .spawn()
            .context("starting image-cloner run")?;
        Ok(Daemon {
            child,
            log: log.to_owned(),
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL, and reaped.
    pub fn kill(&mut self) {
        signal(self.pid(), Signal::KILL);
        let _ = self.child.wait();
    }

    /// SIGTERM, up to `grace` to exit (then SIGKILL); the exit code (`None`: killed).
    pub fn stop(&mut self, grace: Duration) -> Option<i32> {
        if let Ok(Some(status)) = self.child.try_wait() {
            return status.code();
        }
        signal(self.pid(), Signal::TERM);
        let deadline = Instant::now() + grace;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return status.code(),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50))
                }
                _ => {
                    self.kill();
                    return None;
                }
            }
        }
    }

    /// The address of `/healthz`, `/readyz` and `/metrics`, from the line announcing it.
    pub fn metrics_address(&self) -> Option<String> {
        let log = self.log();
        let line = log.lines().rev().find(|l| l.contains("serving /healthz"))?;
        let addr = line.split("address=").nth(1)?;
        Some(
            addr.split_whitespace()
                .next()?
                .trim_matches(|c| c == '"' || c == ',' || c == '}')
                .to_owned(),
        )
    }

    /// `/metrics`, once the daemon serves it.
    pub fn metrics(&self) -> Option<String> {
        let addr = self.metrics_address()?;
        match crate::http::get(&addr, "/metrics") {
            Ok((200, body)) => Some(body),
            _ => None,
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(10));
    }
}

/// Runs a one-shot command to its end (killed after `timeout`).
pub fn run(mut cmd: Command, timeout: Duration) -> Result<Output> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting image-cloner")?;
    // Read both pipes on threads, so a chatty child never blocks on a full pipe.
    let mut out = child.stdout.take().context("stdout")?;
    let mut err = child.stderr.take().context("stderr")?;
    let out_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = std::io::Read::read_to_end(&mut out, &mut v);
        v
    });
    let err_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = std::io::Read::read_to_end(&mut err, &mut v);
        v
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().context("waiting for image-cloner")? {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            break child.wait().context("reaping image-cloner")?;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    Ok(Output {
        status,
        stdout: out_t.join().unwrap_or_default(),
        stderr: err_t.join().unwrap_or_default(),
    })
}

/// stdout then stderr, as text.
pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Whether an output shows a panic: exit 101 or the word anywhere.
pub fn panicked(o: &Output) -> bool {
    o.status.code() == Some(101) || text(o).contains("panicked")
}
