//! Shared by `demo` and `bench`: cleanup on exit and on signals, the `image-cloner` daemon as a
//! child process, its metrics, workload objects, and a kube client for the simulator; and the
//! demo's self-check ([`check`]).

pub mod check;
pub mod cost;
mod guard;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use serde_json::{Value, json};

pub use guard::{Guard, clean_up_on_signals, guard, interrupted};
pub mod status;

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

    /// Whether the daemon logged a line about one workload (its `reconcile` span) containing
    /// `needle`. Needs `image_cloner::reconcile=debug` in the log level for the decisions
    /// (`decision="opt-out"`): how the demo knows the daemon has seen a change it leaves alone.
    pub fn logged_about(&self, kind: &str, ns: &str, name: &str, needle: &str) -> bool {
        let span = format!("reconcile{{namespace=\"{ns}\" kind={kind} name=\"{name}\"}}");
        self.log()
            .lines()
            .any(|l| l.contains(&span) && l.contains(needle))
    }

    /// Waits until `check` holds: `Ok(false)` after `timeout`, an error if the daemon exited.
    pub fn wait_until(
        &self,
        timeout: Duration,
        mut check: impl FnMut() -> Result<bool>,
    ) -> Result<bool> {
        let deadline = Instant::now() + timeout;
        loop {
            if check()? {
                return Ok(true);
            }
            self.check_alive()?;
            if Instant::now() > deadline {
                return Ok(false);
            }
            std::thread::sleep(Duration::from_millis(250));
        }
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

    /// SIGKILL and reap.
    pub fn kill(&self) -> Option<ExitStatus> {
        guard().kill(self.pid)
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
    let (status, _, body) = testbed::http::request(addr, "GET", path, &[])
        .with_context(|| format!("GET {path} from {addr}"))?;
    Ok((status, body))
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

/// A free loopback port, one no outgoing connection takes before the daemon binds it.
pub fn free_port() -> Result<u16> {
    testbed::free_port().context("finding a free port")
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
