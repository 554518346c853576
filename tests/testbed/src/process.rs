//! Running external programs: display of command lines, bounded waits, output tails.

use std::ffi::{OsStr, OsString};
use std::io::Read;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::error::{Result, TestbedError};

/// Flags whose value is `user:password`: shown as `user:***` in messages.
const SECRET_FLAGS: &[&str] = &["--creds", "--src-creds", "--dest-creds"];

/// The program to run for `name`, overridable by an environment variable
/// (e.g. `TESTBED_SKOPEO=/opt/skopeo`).
pub(crate) fn program(env_var: &str, default: &str) -> OsString {
    std::env::var_os(env_var)
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| OsString::from(default))
}

/// A shell-like rendering of a command line for messages, with credentials redacted.
pub(crate) fn display_command(program: &OsStr, args: &[OsString]) -> String {
    let mut out = quote(&program.to_string_lossy());
    let mut redact_next = false;
    for arg in args {
        let arg = arg.to_string_lossy();
        out.push(' ');
        if redact_next {
            out.push_str(&quote(&redact(&arg)));
            redact_next = false;
            continue;
        }
        if let Some((flag, value)) = arg.split_once('=')
            && SECRET_FLAGS.contains(&flag)
        {
            out.push_str(&quote(&format!("{flag}={}", redact(value))));
            continue;
        }
        redact_next = SECRET_FLAGS.contains(&arg.as_ref());
        out.push_str(&quote(&arg));
    }
    out
}

fn redact(creds: &str) -> String {
    match creds.split_once(':') {
        Some((user, _)) => format!("{user}:***"),
        None => creds.to_string(),
    }
}

fn quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./:=@,+%".contains(&b));
    if plain {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// The last `max_lines` lines of `text`, at most about `max_bytes` bytes.
pub(crate) fn tail(text: &str, max_lines: usize, max_bytes: usize) -> String {
    let trimmed = text.trim_end();
    let mut start = trimmed.len().saturating_sub(max_bytes);
    while !trimmed.is_char_boundary(start) {
        start += 1;
    }
    let window = &trimmed[start..];
    let lines: Vec<&str> = window.lines().collect();
    let keep = lines.len().saturating_sub(max_lines);
    lines[keep..].join("\n")
}

/// The tail of a (log) file; empty if it cannot be read.
pub(crate) fn file_tail(path: &Path, max_lines: usize, max_bytes: usize) -> String {
    match std::fs::read(path) {
        Ok(bytes) => tail(&String::from_utf8_lossy(&bytes), max_lines, max_bytes),
        Err(e) => format!("(cannot read {}: {e})", path.display()),
    }
}

/// What a finished (or timed out) process produced.
pub(crate) struct Finished {
    pub command: String,
    /// `None` when the process was killed at the deadline.
    pub status: Option<ExitStatus>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub timeout: Duration,
}

impl Finished {
    pub fn success(&self) -> bool {
        self.status.is_some_and(|s| s.success())
    }

    pub fn status_text(&self) -> String {
        match self.status {
            Some(status) => status.to_string(),
            None => format!("killed after the {:?} deadline", self.timeout),
        }
    }

    pub fn stderr_tail(&self) -> String {
        tail(&String::from_utf8_lossy(&self.stderr), 20, 4000)
    }
}

/// Runs `program args…` (no shell) with stdin closed, capturing stdout and
/// stderr; kills it if it runs longer than `timeout`.
pub(crate) fn run(program: &OsStr, args: &[OsString], timeout: Duration) -> Result<Finished> {
    let command = display_command(program, args);
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| TestbedError::Spawn {
            command: command.clone(),
            source,
        })?;
    let stdout = child.stdout.take().map(drain);
    let stderr = child.stderr.take().map(drain);
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            Ok(None) => thread::sleep(Duration::from_millis(10)),
            Err(source) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(TestbedError::Spawn { command, source });
            }
        }
    };
    let join =
        |h: Option<thread::JoinHandle<Vec<u8>>>| h.and_then(|h| h.join().ok()).unwrap_or_default();
    Ok(Finished {
        command,
        status,
        stdout: join(stdout),
        stderr: join(stderr),
        timeout,
    })
}

fn drain(mut r: impl Read + Send + 'static) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        buf
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<OsString> {
        a.iter().map(OsString::from).collect()
    }

    #[test]
    fn credentials_are_redacted_in_both_spellings() {
        let shown = display_command(
            OsStr::new("skopeo"),
            &args(&[
                "copy",
                "--dest-creds",
                "alice:s3cret",
                "--creds=bob:pw",
                "a b",
            ]),
        );
        assert_eq!(
            shown,
            "skopeo copy --dest-creds 'alice:***' '--creds=bob:***' 'a b'"
        );
        assert!(!shown.contains("s3cret"));
    }

    #[test]
    fn tail_keeps_last_lines() {
        assert_eq!(tail("a\nb\nc\nd\n", 2, 100), "c\nd");
        assert_eq!(tail("abcdef", 5, 3), "def");
    }
}
