//! Processes as /proc shows them: the skopeo processes of one world, the children of a daemon,
//! and signals by pid (never by name).

use std::path::Path;
use std::time::{Duration, Instant};

/// A live skopeo: its pid, parent and arguments.
#[derive(Debug, Clone)]
pub struct Process {
    pub pid: u32,
    pub parent: u32,
    pub args: Vec<String>,
}

fn cmdline(dir: &Path) -> Vec<String> {
    std::fs::read(dir.join("cmdline"))
        .unwrap_or_default()
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect()
}

/// `(state, parent)` from /proc/<pid>/stat (after the last ')': the name may hold spaces).
fn stat(dir: &Path) -> Option<(String, u32)> {
    let stat = std::fs::read_to_string(dir.join("stat")).ok()?;
    let after = stat.rsplit_once(')')?.1;
    let mut fields = after.split_whitespace();
    let state = fields.next()?.to_owned();
    let parent = fields.next()?.parse().ok()?;
    Some((state, parent))
}

/// The live (not zombie) skopeo processes whose arguments mention `needle`.
pub fn skopeo_processes(needle: &str) -> Vec<Process> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let args = cmdline(&entry.path());
        let is_skopeo = args.first().is_some_and(|a| a.ends_with("skopeo"));
        if !is_skopeo || !args.iter().any(|a| a.contains(needle)) {
            continue;
        }
        if let Some((state, parent)) = stat(&entry.path())
            && state != "Z"
        {
            found.push(Process { pid, parent, args });
        }
    }
    found
}

/// The skopeo processes `pid` has started and that still run.
pub fn skopeo_children(pid: u32, needle: &str) -> usize {
    skopeo_processes(needle)
        .iter()
        .filter(|p| p.parent == pid)
        .count()
}

/// Waits up to `within` for no skopeo mentioning `needle` to be left; what is left then.
pub fn survivors(needle: &str, within: Duration) -> Vec<Process> {
    let deadline = Instant::now() + within;
    loop {
        let left = skopeo_processes(needle);
        if left.is_empty() || Instant::now() > deadline {
            return left;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Sends `signal` to one process, by pid.
pub fn signal(pid: u32, signal: rustix::process::Signal) {
    if let Some(pid) = rustix::process::Pid::from_raw(pid as i32) {
        let _ = rustix::process::kill_process(pid, signal);
    }
}
