//! A running `image-cloner run` as the end-to-end tests drive it: its log, its health
//! listener, and what it logged about one workload.

use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A running `image-cloner run`, stopped with SIGTERM on drop.
pub struct Daemon {
    /// Behind a lock so that `wait_until`, which borrows the daemon shared, can see it exit.
    child: Mutex<Child>,
    pub log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Daemon {
    pub fn start(mut cmd: Command) -> Daemon {
        let dir = tempfile::tempdir().expect("a log dir");
        let log = dir.path().join("daemon.log");
        let file = std::fs::File::create(&log).expect("a log file");
        let child = cmd
            .arg("run")
            .stdout(file.try_clone().expect("clone the log file"))
            .stderr(file)
            .spawn()
            .expect("start the daemon");
        Daemon {
            child: Mutex::new(child),
            log,
            _dir: dir,
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The exit status once the daemon has exited; `None` while it runs.
    fn exited(&self) -> Option<ExitStatus> {
        let mut child = self.child.lock().unwrap_or_else(|e| e.into_inner());
        child.try_wait().expect("the daemon's status")
    }

    /// Waits until `check` holds, up to `timeout`, or fails as soon as the daemon has exited;
    /// the failure shows the end of the daemon's log.
    pub fn wait_until(&self, timeout: Duration, what: &str, mut check: impl FnMut() -> bool) {
        let deadline = Instant::now() + timeout;
        while !check() {
            let failure = match self.exited() {
                // What it did last may be what was awaited.
                Some(_) if check() => return,
                Some(status) => format!("the daemon exited ({status})"),
                None if Instant::now() >= deadline => format!("timed out after {timeout:?}"),
                None => {
                    std::thread::sleep(Duration::from_millis(250));
                    continue;
                }
            };
            let log = self.log();
            let lines: Vec<&str> = log.lines().collect();
            panic!(
                "{failure}: {what}; the daemon's log ends:\n{}",
                lines[lines.len().saturating_sub(200)..].join("\n")
            );
        }
    }

    /// Whether the daemon logged a line about one workload (its `reconcile` span) containing
    /// `needle`: how a test knows the daemon has seen a change it must leave alone. Needs
    /// `image_cloner::reconcile=debug` in the log level for the decisions (`decision="opt-out"`).
    pub fn logged_about(&self, kind: &str, ns: &str, name: &str, needle: &str) -> bool {
        let span = format!("reconcile{{namespace=\"{ns}\" kind={kind} name=\"{name}\"}}");
        self.log()
            .lines()
            .any(|l| l.contains(&span) && l.contains(needle))
    }

    /// The address of `/healthz`, `/readyz` and `/metrics`, from the daemon's log.
    pub fn metrics_address(&self) -> Option<String> {
        let log = self.log();
        let line = log.lines().find(|l| l.contains("serving /healthz"))?;
        let addr = line.split("address=").nth(1)?;
        Some(addr.split_whitespace().next()?.trim_matches('"').to_owned())
    }

    /// Whether the daemon serves its health listener and `/readyz` answers 200.
    pub fn ready(&self) -> bool {
        self.metrics_address().is_some() && self.get("/readyz").0 == 200
    }

    /// `GET path` on the daemon's health listener: (status, body).
    pub fn get(&self, path: &str) -> (u16, String) {
        use std::io::{Read, Write};
        let addr = self
            .metrics_address()
            .expect("the daemon logged its listen address");
        let mut stream =
            std::net::TcpStream::connect(&addr).expect("connect to the health listener");
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
        )
        .expect("send a request");
        let mut response = String::new();
        stream
            .read_to_string(&mut response)
            .expect("read the response");
        let status = response
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let body = response
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default();
        (status, body)
    }

    /// The exit code once the daemon has exited on its own, up to `timeout`; the failure shows
    /// the end of its log.
    pub fn exit_within(&self, timeout: Duration) -> Option<i32> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.exited() {
                return status.code();
            }
            assert!(
                Instant::now() < deadline,
                "the daemon still runs after {timeout:?}; its log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// A line of the daemon's `/proc/<pid>/<file>` that starts with `key`, without the key
    /// (`status`'s `THP_enabled:`, say).
    pub fn proc_line(&self, file: &str, key: &str) -> String {
        let pid = self.child.lock().unwrap_or_else(|e| e.into_inner()).id();
        let text = std::fs::read_to_string(format!("/proc/{pid}/{file}"))
            .unwrap_or_else(|e| panic!("/proc/{pid}/{file}: {e}"));
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .unwrap_or_else(|| panic!("no {key} line in /proc/{pid}/{file}:\n{text}"))
            .trim()
            .to_owned()
    }

    /// SIGTERM, then the exit code.
    pub fn stop(&mut self) -> Option<i32> {
        let child = self.child.get_mut().unwrap_or_else(|e| e.into_inner());
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        child.wait().ok().and_then(|s| s.code())
    }

    /// SIGKILL, as a node's failure would stop it, and the process reaped.
    pub fn kill(&mut self) {
        let child = self.child.get_mut().unwrap_or_else(|e| e.into_inner());
        child.kill().expect("SIGKILL the daemon");
        child.wait().expect("reap the daemon");
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.exited().is_none() {
            let _ = self.stop();
        }
    }
}
