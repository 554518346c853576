//! Shared by `demo` and `bench`: cleanup on exit and on signals, the `image-cloner` daemon as a
//! child process, its metrics, workload objects, and a kube client for the simulator.

use std::collections::BTreeMap;
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use serde_json::{Value, json};

pub mod cost;

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

    /// The log file of a registry held by [`Guard::keep_registry`].
    pub fn registry_log(&self, host: &str) -> Option<PathBuf> {
        let s = self.lock();
        s.registries
            .iter()
            .find(|r| r.host() == host)
            .map(testbed::Registry::log_path)
    }

    /// Stops a registry held by [`Guard::keep_registry`] and removes its directory now.
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

    /// Waits for a held child to exit by itself.
    pub fn wait(&self, pid: u32) -> Result<ExitStatus> {
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
            std::thread::sleep(Duration::from_millis(20));
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

/// A program built next to this one (`target/release/`), or named by `env_var`.
pub fn sibling_binary(name: &str, env_var: &str) -> Result<PathBuf> {
    if let Some(p) = std::env::var_os(env_var).filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe().context("locating this program")?;
    let path = exe.parent().context("this program's directory")?.join(name);
    if !path.exists() {
        bail!(
            "{} not found: build it first (cargo build --release --locked -p image-cloner -p testbed -p demo), or set {env_var}",
            path.display()
        );
    }
    Ok(path)
}

/// Checks that the external programs are installed.
pub fn require_programs(names: &[&str]) -> Result<()> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let missing: Vec<&str> = names
        .iter()
        .copied()
        .filter(|n| !std::env::split_paths(&path).any(|d| d.join(n).is_file()))
        .collect();
    if !missing.is_empty() {
        bail!(
            "not installed: {} (run `make test-deps` as root, or: sudo apt-get install skopeo docker-registry)",
            missing.join(", ")
        );
    }
    Ok(())
}

/// The last `n` lines of `text`.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// A running `image-cloner run`, its output in a log file.
pub struct Daemon {
    pub pid: u32,
    pub log: PathBuf,
    pub started: Instant,
}

impl Daemon {
    pub fn start(mut cmd: Command, log: &Path) -> Result<Daemon> {
        let file = std::fs::File::create(log)
            .with_context(|| format!("creating the daemon log {}", log.display()))?;
        cmd.arg("run")
            .stdin(Stdio::null())
            .stdout(file.try_clone().context("the daemon log")?)
            .stderr(file);
        let started = Instant::now();
        let pid = guard().spawn("image-cloner run", &mut cmd)?;
        Ok(Daemon {
            pid,
            log: log.to_owned(),
            started,
        })
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// An error if the daemon exited, with the end of its log.
    pub fn check_alive(&self) -> Result<()> {
        if let Some(status) = guard().exited(self.pid) {
            bail!(
                "image-cloner run exited unexpectedly ({status}); end of its log:\n{}",
                tail(&self.log(), 30)
            );
        }
        Ok(())
    }

    /// Waits for a log line containing `needle`; returns it.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> Result<String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(line) = self.log().lines().find(|l| l.contains(needle)) {
                return Ok(line.to_owned());
            }
            self.check_alive()?;
            if Instant::now() > deadline {
                bail!(
                    "image-cloner run did not log {needle:?} within {timeout:?}; end of its log:\n{}",
                    tail(&self.log(), 30)
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The address of `/metrics`, from the log line that announces it.
    pub fn metrics_address(&self) -> Result<String> {
        let line = self.wait_for_log("serving /healthz", Duration::from_secs(30))?;
        let addr = line
            .split("address=")
            .nth(1)
            .and_then(|a| a.split_whitespace().next())
            .map(|a| a.trim_matches('"').to_owned());
        addr.with_context(|| format!("no address in the log line {line:?}"))
    }

    /// Peak resident set size (VmHWM), KiB.
    pub fn peak_rss_kib(&self) -> Result<u64> {
        peak_rss_kib(self.pid)
    }

    /// SIGTERM and wait (SIGKILL after `grace`).
    pub fn stop(&self, grace: Duration) -> Option<ExitStatus> {
        guard().stop(self.pid, grace)
    }
}

/// Peak resident set size (VmHWM) of a running process, KiB.
pub fn peak_rss_kib(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .with_context(|| format!("no VmHWM in /proc/{pid}/status (exited?)"))
}

/// `GET path` over plain HTTP/1.1: (status, body).
pub fn http_get(addr: &str, path: &str) -> Result<(u16, String)> {
    let mut stream =
        std::net::TcpStream::connect(addr).with_context(|| format!("connecting to {addr}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let response = String::from_utf8_lossy(&response);
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_owned()
    };
    Ok((status, body))
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// Prometheus text: series (name with labels) → value.
pub fn parse_metrics(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            Some((series.to_owned(), value.parse().ok()?))
        })
        .collect()
}

/// The daemon's metrics now.
pub fn scrape(addr: &str) -> Result<(String, BTreeMap<String, f64>)> {
    let (status, body) = http_get(addr, "/metrics")?;
    if status != 200 {
        bail!("GET http://{addr}/metrics answered {status}");
    }
    let parsed = parse_metrics(&body);
    Ok((body, parsed))
}

/// `image-cloner` with only the environment given (plus PATH and a fresh HOME).
pub fn cloner_command(binary: &Path, home: &Path, env: &[(&str, String)]) -> Command {
    let mut cmd = Command::new(binary);
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", home)
        .stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// A workload object (the simulator's fixture for `kind`), labelled `app: <name>` and
/// carrying `annotations`.
pub fn workload(
    kind: &str,
    ns: &str,
    name: &str,
    containers: &[(&str, &str)],
    init: &[(&str, &str)],
    annotations: &[(&str, &str)],
) -> Value {
    let annotations: BTreeMap<&str, &str> = annotations.iter().copied().collect();
    kube_sim::fixtures::workload(
        kind,
        ns,
        name,
        containers,
        init,
        json!({"labels": {"app": name}, "annotations": annotations}),
    )
}

/// The pod spec inside a workload object.
pub fn pod_spec_of(obj: &Value) -> &Value {
    match obj["kind"].as_str().unwrap_or_default() {
        "Pod" => &obj["spec"],
        "CronJob" => &obj["spec"]["jobTemplate"]["spec"]["template"]["spec"],
        _ => &obj["spec"]["template"]["spec"],
    }
}

/// `(container, image)` of a workload: init containers first, then containers.
pub fn containers_of(obj: &Value) -> Vec<(String, String)> {
    let spec = pod_spec_of(obj);
    ["initContainers", "containers"]
        .iter()
        .flat_map(|list| spec[list].as_array().cloned().unwrap_or_default())
        .map(|c| {
            (
                c["name"].as_str().unwrap_or_default().to_owned(),
                c["image"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// A kube client for a kubeconfig file.
pub async fn kube_client(kubeconfig: &Path) -> Result<kube::Client> {
    use kube::config::{KubeConfigOptions, Kubeconfig};
    let kc = Kubeconfig::read_from(kubeconfig).context("reading the kubeconfig")?;
    let config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .context("a client configuration from the kubeconfig")?;
    kube::Client::try_from(config).context("a kube client")
}

/// A free loopback port (bound, then released).
pub fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(l.local_addr()?.port())
}

/// A section heading.
pub fn heading(title: &str) {
    println!("\n== {title} ==");
}

/// Seconds with one decimal... or milliseconds under a second.
pub fn secs(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{} ms", d.as_millis())
    } else {
        format!("{:.2} s", d.as_secs_f64())
    }
}
