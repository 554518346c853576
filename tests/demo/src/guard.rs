//! Everything the demo and the benchmark start, held until they end: stopped on exit, on
//! failure and on Ctrl-C.

use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};

/// Everything that must not outlive the program: child processes (stopped first, with SIGTERM),
/// registries (killed) and temporary directories (removed).
pub struct Guard {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    children: Vec<(String, Child)>,
    registries: Vec<testbed::Registry>,
    dirs: Vec<tempfile::TempDir>,
    done: bool,
}

static GUARD: OnceLock<Guard> = OnceLock::new();
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

pub fn guard() -> &'static Guard {
    GUARD.get_or_init(|| Guard {
        state: Mutex::new(State::default()),
    })
}

/// Whether a signal arrived (the signal thread is cleaning up and will exit).
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// On SIGINT, SIGTERM or SIGHUP: clean up everything the guard holds, then exit 128+signal.
pub fn clean_up_on_signals() -> Result<()> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let mut signals =
        signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP]).context("signal handler")?;
    std::thread::spawn(move || {
        if let Some(signal) = signals.forever().next() {
            INTERRUPTED.store(true, Ordering::SeqCst);
            eprintln!(
                "\n*** interrupted (signal {signal}): stopping the daemon and the registries, removing temporary files"
            );
            guard().cleanup();
            eprintln!("*** cleaned up");
            std::process::exit(128 + signal);
        }
    });
    Ok(())
}

fn send_signal(pid: u32, signal: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// SIGTERM, up to `grace` to exit, then SIGKILL; reaped either way.
fn terminate(child: &mut Child, grace: Duration) -> Option<ExitStatus> {
    if let Ok(Some(status)) = child.try_wait() {
        return Some(status);
    }
    send_signal(child.id(), "TERM");
    let deadline = Instant::now() + grace;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            _ => {
                let _ = child.kill();
                return child.wait().ok();
            }
        }
    }
}

/// Direct children of this process not (or no longer) held by the guard: a skopeo push or a
/// registry that was starting when the signal came.
fn stray_children() -> Vec<u32> {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return Vec::new();
    };
    tasks
        .filter_map(|t| t.ok())
        .filter_map(|t| std::fs::read_to_string(t.path().join("children")).ok())
        .flat_map(|s| {
            s.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect::<Vec<u32>>()
        })
        .collect()
}

impl Guard {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Holds a started registry until cleanup; returns its host.
    pub fn keep_registry(&self, registry: testbed::Registry) -> Result<String> {
        let host = registry.host();
        let mut s = self.lock();
        if s.done {
            drop(registry);
            bail!("interrupted");
        }
        s.registries.push(registry);
        Ok(host)
    }

    /// What `read` takes from the registry at `host` held by [`Guard::keep_registry`] (its
    /// log file, its process id).
    pub fn registry<T>(&self, host: &str, read: impl FnOnce(&testbed::Registry) -> T) -> Option<T> {
        let s = self.lock();
        s.registries.iter().find(|r| r.host() == host).map(read)
    }

    /// Stops a registry held by [`Guard::keep_registry`] and removes its directory now, unless
    /// it was started in a directory of its own (`RegistryOptions::dir`).
    pub fn release_registry(&self, host: &str) {
        let registry = {
            let mut s = self.lock();
            let Some(i) = s.registries.iter().position(|r| r.host() == host) else {
                return;
            };
            s.registries.remove(i)
        };
        drop(registry);
    }

    /// A temporary directory removed at cleanup; returns its path.
    pub fn temp_dir(&self, prefix: &str) -> Result<PathBuf> {
        let dir = tempfile::Builder::new()
            .prefix(prefix)
            .tempdir()
            .context("creating a temporary directory")?;
        let path = dir.path().to_owned();
        let mut s = self.lock();
        if s.done {
            bail!("interrupted");
        }
        s.dirs.push(dir);
        Ok(path)
    }

    /// Spawns `cmd` and holds the child until [`Guard::stop`] or cleanup; returns its pid.
    pub fn spawn(&self, name: &str, cmd: &mut Command) -> Result<u32> {
        let mut s = self.lock();
        if s.done {
            bail!("interrupted");
        }
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {name} ({:?})", cmd.get_program()))?;
        let pid = child.id();
        s.children.push((name.to_owned(), child));
        Ok(pid)
    }

    /// The exit status of a held child that has exited.
    pub fn exited(&self, pid: u32) -> Option<ExitStatus> {
        let mut s = self.lock();
        let (_, child) = s.children.iter_mut().find(|(_, c)| c.id() == pid)?;
        child.try_wait().ok().flatten()
    }

    /// Stops a held child: SIGTERM, up to `grace`, then SIGKILL.
    pub fn stop(&self, pid: u32, grace: Duration) -> Option<ExitStatus> {
        let mut child = {
            let mut s = self.lock();
            let i = s.children.iter().position(|(_, c)| c.id() == pid)?;
            s.children.remove(i).1
        };
        terminate(&mut child, grace)
    }

    /// SIGKILLs a held child (no chance to clean up, as `kill -9` or a lost node) and reaps it.
    pub fn kill(&self, pid: u32) -> Option<ExitStatus> {
        let mut child = {
            let mut s = self.lock();
            let i = s.children.iter().position(|(_, c)| c.id() == pid)?;
            s.children.remove(i).1
        };
        let _ = child.kill();
        child.wait().ok()
    }

    /// Waits for a held child to exit by itself, and reaps it.
    pub fn wait(&self, pid: u32) -> Result<ExitStatus> {
        self.await_exit(pid)?;
        loop {
            {
                let mut s = self.lock();
                let Some(i) = s.children.iter().position(|(_, c)| c.id() == pid) else {
                    bail!("process {pid} is not running");
                };
                if let Some(status) = s.children[i].1.try_wait().context("waiting")? {
                    s.children.remove(i);
                    return Ok(status);
                }
            }
            // Not reached once the child has exited; kept so that a wrong wake-up cannot spin.
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Blocks until `pid`, a child of this process, has exited, without reaping it: its
    /// `/proc` files still hold its final figures (a zombie's) until [`Guard::wait`]. The lock
    /// is not held meanwhile, and nothing is polled: the baseline's next copy starts as soon as
    /// one ends, as xargs's does, and the wait costs no CPU beside the run it measures.
    pub fn await_exit(&self, pid: u32) -> Result<()> {
        use rustix::process::{Pid, WaitId, WaitIdOptions, waitid};
        let raw = i32::try_from(pid).ok().and_then(Pid::from_raw);
        let pid = raw.with_context(|| format!("{pid} is not a process id"))?;
        loop {
            match waitid(
                WaitId::Pid(pid),
                WaitIdOptions::EXITED | WaitIdOptions::NOWAIT,
            ) {
                Ok(_) => return Ok(()),
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(e).with_context(|| format!("waiting for process {pid:?}")),
            }
        }
    }

    /// Stops every child, then the registries, removes the directories and kills any other
    /// child process left. Runs once; later calls wait for the first to finish.
    pub fn cleanup(&self) {
        let mut s = self.lock();
        if s.done {
            return;
        }
        s.done = true;
        for (_, child) in s.children.iter_mut() {
            send_signal(child.id(), "TERM");
        }
        for (_, child) in s.children.iter_mut() {
            terminate(child, Duration::from_secs(10));
        }
        s.children.clear();
        // Dropping a registry kills and reaps its process and removes its directory.
        s.registries.clear();
        s.dirs.clear();
        let strays = stray_children();
        for pid in &strays {
            send_signal(*pid, "TERM");
        }
        if !strays.is_empty() {
            std::thread::sleep(Duration::from_millis(500));
            for pid in stray_children() {
                send_signal(pid, "KILL");
            }
        }
    }
}
