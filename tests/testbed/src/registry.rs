//! A real CNCF distribution registry (`docker-registry`) on a loopback port.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use sha2::Digest as _;
use tempfile::TempDir;

use crate::error::{Result, TestbedError};
use crate::port::free_port;
use crate::process::{display_command, file_tail, program};

/// How long [`Registry::start`] and [`Registry::restart`] wait for `GET /v2/` to answer.
pub const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// How many fresh ports [`Registry::start`] tries when another process takes
/// the reserved port before the registry binds it.
const PORT_ATTEMPTS: usize = 5;

/// Response header carrying a per-instance token, so the readiness probe knows
/// it is talking to *this* registry and not to one that grabbed the port.
const INSTANCE_HEADER: &str = "X-Testbed-Instance";

/// A user name and password for registry basic auth.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl Credentials {
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> Self {
        Self {
            username: username.into(),
            password: password.into(),
        }
    }

    /// Parses `USER:PASS` (the password may contain `:`).
    pub fn parse(s: &str) -> Option<Self> {
        let (user, pass) = s.split_once(':')?;
        (!user.is_empty()).then(|| Self::new(user, pass))
    }

    /// `user:password`, the form skopeo's `--creds` flags take.
    pub fn to_creds_arg(&self) -> String {
        format!("{}:{}", self.username, self.password)
    }
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"***")
            .finish()
    }
}

/// What kind of registry [`Registry::start`] runs.
#[derive(Clone, Debug, Default)]
pub struct RegistryOptions {
    /// Require these credentials (htpasswd, bcrypt); anonymous requests get 401.
    pub auth: Option<Credentials>,
    /// Serve HTTPS with a certificate for `127.0.0.1` and `localhost` signed by
    /// a fresh CA (see [`Registry::ca_dir`]).
    pub tls: bool,
    /// Accept and serve schema 1 (signed) manifests
    /// (`compatibility.schema1.enabled`), so `skopeo copy --format v2s1` works.
    pub schema1: bool,
    /// Keep config, storage, certificates and log in this directory (created if
    /// missing, never removed). `None`: a temporary directory removed on drop.
    pub dir: Option<PathBuf>,
    /// Log every request (level info: one `response completed` line each, with the client's
    /// address and port, method, URI and user agent) — what `make bench` counts connections
    /// and requests from. Off: level warn.
    pub request_log: bool,
}

/// A running `docker-registry serve` on `127.0.0.1:<port>`.
///
/// Dropping it kills and reaps the process, then removes its temporary
/// directory (storage included) unless [`RegistryOptions::dir`] was given.
///
/// The directory holds `config.yml`, `storage/`, `registry.log` (the
/// registry's stdout and stderr, level warn unless
/// [`RegistryOptions::request_log`]), and when enabled `htpasswd`,
/// `tls/server.{crt,key}` and `ca/ca.crt`.
pub struct Registry {
    options: RegistryOptions,
    root: PathBuf,
    port: u16,
    instance: String,
    child: Option<Child>,
    ca_dir: Option<PathBuf>,
    ca_pem: Option<String>,
    // Declared last: removed after `Drop::drop` has killed the process.
    _tempdir: Option<TempDir>,
}

impl Registry {
    /// Generates the configuration (and htpasswd, certificates), starts the
    /// registry on a free loopback port and waits until `GET /v2/` answers
    /// (200, or 401 with auth) — at most [`READY_TIMEOUT`].
    pub fn start(options: RegistryOptions) -> Result<Self> {
        let (root, tempdir) = match &options.dir {
            Some(dir) => {
                fs::create_dir_all(dir).map_err(TestbedError::file("creating directory", dir))?;
                (dir.clone(), None)
            }
            None => {
                let t = tempfile::Builder::new()
                    .prefix("testbed-registry-")
                    .tempdir()
                    .map_err(TestbedError::file(
                        "creating directory",
                        std::env::temp_dir(),
                    ))?;
                (t.path().to_path_buf(), Some(t))
            }
        };
        let mut registry = Self {
            options,
            root,
            port: 0,
            instance: unique_token(),
            child: None,
            ca_dir: None,
            ca_pem: None,
            _tempdir: tempdir,
        };
        registry.prepare_files()?;

        let mut last_error = None;
        for _ in 0..PORT_ATTEMPTS {
            registry.port = free_port()?;
            registry.write_config()?;
            match registry.launch(Instant::now() + READY_TIMEOUT) {
                Ok(()) => return Ok(registry),
                Err(Launch::PortTaken(e)) => last_error = Some(e),
                Err(Launch::Failed(e)) => return Err(e),
            }
        }
        Err(last_error.unwrap_or_else(|| registry.start_error("no port attempt was made")))
    }

    /// `127.0.0.1:PORT`, the registry part of image references.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `http://127.0.0.1:PORT` or `https://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        let scheme = if self.options.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.host())
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn options(&self) -> &RegistryOptions {
        &self.options
    }

    /// The directory holding config, storage and log.
    pub fn dir(&self) -> &Path {
        &self.root
    }

    pub fn tls(&self) -> bool {
        self.options.tls
    }

    /// With TLS: a directory containing only `ca.crt` (the CA that signed the
    /// server certificate), as skopeo's `--cert-dir`, `--src-cert-dir` and
    /// `--dest-cert-dir` expect (CA files there must end in `.crt`).
    pub fn ca_dir(&self) -> Option<&Path> {
        self.ca_dir.as_deref()
    }

    /// With TLS: the CA certificate in PEM.
    pub fn ca_pem(&self) -> Option<&str> {
        self.ca_pem.as_deref()
    }

    /// The credentials the registry requires, if any.
    pub fn credentials(&self) -> Option<&Credentials> {
        self.options.auth.as_ref()
    }

    /// The registry's log file (its stdout and stderr).
    pub fn log_path(&self) -> PathBuf {
        self.root.join("registry.log")
    }

    /// The last lines of the registry's log.
    pub fn log_tail(&self) -> String {
        file_tail(&self.log_path(), 40, 8000)
    }

    /// The registry process's id while it runs (for its CPU time in `/proc`).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the registry process is running (it may have died on its own).
    pub fn is_running(&mut self) -> bool {
        match &mut self.child {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Kills and reaps the registry process; the port is then refused and the
    /// storage kept. Stopping a stopped registry does nothing.
    pub fn stop(&mut self) -> Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let command = self.command_line();
        if matches!(child.try_wait(), Ok(None)) {
            child.kill().map_err(|source| TestbedError::StopRegistry {
                command: command.clone(),
                source,
            })?;
        }
        child
            .wait()
            .map_err(|source| TestbedError::StopRegistry { command, source })?;
        Ok(())
    }

    /// Stops the registry if it runs, then starts it again on the same port
    /// with the same storage, and waits until it answers. Retries binding
    /// until [`READY_TIMEOUT`] if the port is momentarily taken.
    pub fn restart(&mut self) -> Result<()> {
        self.stop()?;
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            match self.launch(deadline) {
                Ok(()) => return Ok(()),
                Err(Launch::PortTaken(e)) if Instant::now() >= deadline => return Err(e),
                Err(Launch::PortTaken(_)) => thread::sleep(Duration::from_millis(100)),
                Err(Launch::Failed(e)) => return Err(e),
            }
        }
    }

    /// With auth: also accepts `creds` from now on (a second user in the htpasswd file, as
    /// when credentials are rotated), and restarts the registry so that it reads the file
    /// again. The first credentials keep working.
    pub fn also_accept(&mut self, creds: &Credentials) -> Result<()> {
        if self.options.auth.is_none() {
            return Err(self.start_error("also_accept needs a registry started with auth"));
        }
        let hash = bcrypt::hash(&creds.password, 4).map_err(|e| TestbedError::HashPassword {
            reason: e.to_string(),
        })?;
        let path = self.root.join("htpasswd");
        let mut file = OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(TestbedError::file("opening", &path))?;
        file.write_all(format!("{}:{hash}\n", creds.username).as_bytes())
            .map_err(TestbedError::file("writing", &path))?;
        self.restart()
    }

    fn program(&self) -> OsString {
        program("TESTBED_REGISTRY", "docker-registry")
    }

    fn args(&self) -> Vec<OsString> {
        vec!["serve".into(), self.root.join("config.yml").into()]
    }

    fn command_line(&self) -> String {
        display_command(&self.program(), &self.args())
    }

    fn start_error(&self, reason: impl Into<String>) -> TestbedError {
        TestbedError::StartRegistry {
            command: self.command_line(),
            addr: self.host(),
            reason: reason.into(),
            log: self.log_path(),
            log_tail: self.log_tail(),
        }
    }

    /// Writes storage dir, htpasswd and certificates (everything but the config,
    /// which depends on the port).
    fn prepare_files(&mut self) -> Result<()> {
        let storage = self.root.join("storage");
        fs::create_dir_all(&storage).map_err(TestbedError::file("creating directory", &storage))?;
        if let Some(creds) = &self.options.auth {
            let hash =
                bcrypt::hash(&creds.password, 4).map_err(|e| TestbedError::HashPassword {
                    reason: e.to_string(),
                })?;
            write(
                &self.root.join("htpasswd"),
                format!("{}:{hash}\n", creds.username),
            )?;
        }
        if self.options.tls {
            let certs = crate::tls::generate()?;
            let tls_dir = self.root.join("tls");
            let ca_dir = self.root.join("ca");
            for d in [&tls_dir, &ca_dir] {
                fs::create_dir_all(d).map_err(TestbedError::file("creating directory", d))?;
            }
            write(&tls_dir.join("server.crt"), &certs.server_cert_pem)?;
            write(&tls_dir.join("server.key"), &certs.server_key_pem)?;
            write(&ca_dir.join("ca.crt"), &certs.ca_cert_pem)?;
            self.ca_pem = Some(certs.ca_cert_pem);
            self.ca_dir = Some(ca_dir);
        }
        Ok(())
    }

    fn write_config(&self) -> Result<()> {
        let q = |p: PathBuf| yaml_string(&p.to_string_lossy());
        let mut c = String::new();
        c.push_str("version: 0.1\n");
        let level = if self.options.request_log {
            "info"
        } else {
            "warn"
        };
        c.push_str(&format!(
            "log:\n  level: {level}\n  accesslog:\n    disabled: true\n"
        ));
        c.push_str("  fields:\n    service: testbed-registry\n");
        c.push_str("storage:\n  filesystem:\n");
        c.push_str(&format!(
            "    rootdirectory: {}\n",
            q(self.root.join("storage"))
        ));
        c.push_str("  delete:\n    enabled: true\n");
        c.push_str("  maintenance:\n    uploadpurging:\n      enabled: false\n");
        c.push_str("http:\n");
        c.push_str(&format!("  addr: {}\n", yaml_string(&self.host())));
        c.push_str(&format!("  secret: {}\n", yaml_string(&self.instance)));
        c.push_str("  headers:\n");
        c.push_str(&format!(
            "    {INSTANCE_HEADER}: [{}]\n",
            yaml_string(&self.instance)
        ));
        if self.options.tls {
            c.push_str("  tls:\n");
            c.push_str(&format!(
                "    certificate: {}\n",
                q(self.root.join("tls/server.crt"))
            ));
            c.push_str(&format!(
                "    key: {}\n",
                q(self.root.join("tls/server.key"))
            ));
        }
        if self.options.auth.is_some() {
            c.push_str("auth:\n  htpasswd:\n    realm: testbed\n");
            c.push_str(&format!("    path: {}\n", q(self.root.join("htpasswd"))));
        }
        if self.options.schema1 {
            c.push_str("compatibility:\n  schema1:\n    enabled: true\n");
        }
        write(&self.root.join("config.yml"), c)
    }

    /// Spawns the registry and waits for readiness.
    fn launch(&mut self, deadline: Instant) -> Result<(), Launch> {
        let log_path = self.log_path();
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| Launch::Failed(TestbedError::file("opening", &log_path)(e)))?;
        let log_start = log.metadata().map(|m| m.len()).unwrap_or(0);
        let _ = writeln!(log, "--- testbed: starting registry on {} ---", self.host());
        let log_err = log
            .try_clone()
            .map_err(|e| Launch::Failed(TestbedError::file("opening", &log_path)(e)))?;
        let child = Command::new(self.program())
            .args(self.args())
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .map_err(|source| {
                Launch::Failed(TestbedError::Spawn {
                    command: self.command_line(),
                    source,
                })
            })?;
        self.child = Some(child);

        loop {
            let exited = match &mut self.child {
                Some(child) => child.try_wait().ok().flatten(),
                None => None,
            };
            if let Some(status) = exited {
                self.child = None;
                let new_log = read_from(&log_path, log_start);
                return Err(if new_log.contains("address already in use") {
                    Launch::PortTaken(self.start_error(format!(
                        "{} is already in use (the registry exited with {status})",
                        self.host()
                    )))
                } else {
                    Launch::Failed(self.start_error(format!("the registry exited with {status}")))
                });
            }
            let last_probe = match self.probe() {
                Ok(()) => {
                    // An answer from a process that is not ours (see probe) is
                    // caught by the instance header; for TLS, make sure ours
                    // is still alive after answering.
                    if let Some(child) = &mut self.child
                        && matches!(child.try_wait(), Ok(None))
                    {
                        return Ok(());
                    }
                    continue;
                }
                Err(reason) => reason,
            };
            // A child that died meanwhile is reported (as such) at the top.
            if Instant::now() >= deadline && self.is_running() {
                let _ = self.stop();
                return Err(Launch::Failed(self.start_error(format!(
                    "GET /v2/ did not answer within {READY_TIMEOUT:?}; last attempt: {last_probe}"
                ))));
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// One `GET /v2/` over plain TCP. Plain HTTP: expects 200 (401 with auth)
    /// and our instance header. TLS (no TLS client here): expects Go's
    /// `400 Bad Request` "Client sent an HTTP request to an HTTPS server",
    /// which only comes once the registry's HTTPS server is serving.
    fn probe(&self) -> std::result::Result<(), String> {
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(500))
            .map_err(|e| format!("connect: {e}"))?;
        let timeout = Some(Duration::from_secs(1));
        let _ = stream.set_read_timeout(timeout);
        let _ = stream.set_write_timeout(timeout);
        let request = format!(
            "GET /v2/ HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.host()
        );
        stream
            .write_all(request.as_bytes())
            .map_err(|e| format!("send: {e}"))?;
        let mut response = Vec::new();
        let read = stream.take(64 * 1024).read_to_end(&mut response);
        if response.is_empty() {
            return Err(match read {
                Ok(_) => "connection closed without an HTTP answer".to_string(),
                Err(e) => format!("no HTTP answer: {e}"),
            });
        }
        let response = String::from_utf8_lossy(&response);
        let status_line = response.lines().next().unwrap_or_default().to_string();
        let status = status_line.split_whitespace().nth(1).unwrap_or_default();
        if self.options.tls {
            return if status == "400" && response.contains("HTTPS server") {
                Ok(())
            } else {
                Err(format!(
                    "unexpected answer to plain HTTP on the TLS port: {status_line:?}"
                ))
            };
        }
        let expected = if self.options.auth.is_some() {
            "401"
        } else {
            "200"
        };
        if status != expected {
            return Err(format!("status line {status_line:?}, expected {expected}"));
        }
        let header = format!(
            "{}: {}",
            INSTANCE_HEADER.to_ascii_lowercase(),
            self.instance
        );
        if !response.to_ascii_lowercase().contains(&header) {
            return Err(format!(
                "{status_line:?} without our {INSTANCE_HEADER} header: another process holds the port"
            ));
        }
        Ok(())
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("host", &self.host())
            .field("dir", &self.root)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

enum Launch {
    /// The registry could not bind its port: try another port (or later).
    PortTaken(TestbedError),
    Failed(TestbedError),
}

fn read_from(path: &Path, offset: u64) -> String {
    let mut buf = Vec::new();
    if let Ok(mut f) = File::open(path) {
        use std::io::{Seek, SeekFrom};
        if f.seek(SeekFrom::Start(offset)).is_ok() {
            let _ = f.read_to_end(&mut buf);
        }
    }
    String::from_utf8_lossy(&buf).into_owned()
}

fn write(path: &Path, contents: impl AsRef<[u8]>) -> Result<()> {
    fs::write(path, contents).map_err(TestbedError::file("writing", path))
}

/// A YAML double-quoted scalar (JSON string syntax is valid YAML).
fn yaml_string(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

/// A token unique to this process and call, for the instance header and HTTP secret.
fn unique_token() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let seed = format!(
        "{}-{}-{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    crate::hex(&sha2::Sha256::digest(seed.as_bytes()))[..32].to_string()
}

/// Writes a docker `config.json` (as read by skopeo's `--authfile`) with an
/// `auths` entry — `{"auth": base64("user:pass")}` — per `(host, credentials)`.
/// Creates missing parent directories.
pub fn write_docker_config(path: &Path, entries: &[(&str, &Credentials)]) -> Result<()> {
    let mut auths = BTreeMap::new();
    for (host, creds) in entries {
        let auth = base64::engine::general_purpose::STANDARD.encode(creds.to_creds_arg());
        auths.insert(host.to_string(), serde_json::json!({ "auth": auth }));
    }
    let doc = serde_json::json!({ "auths": auths });
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent).map_err(TestbedError::file("creating directory", parent))?;
    }
    let text = serde_json::to_string_pretty(&doc).unwrap_or_default();
    write(path, text + "\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_parse_and_hide_password() {
        let c = Credentials::parse("alice:pa:ss").unwrap();
        assert_eq!(c, Credentials::new("alice", "pa:ss"));
        assert!(!format!("{c:?}").contains("pa:ss"));
        assert!(Credentials::parse("nocolon").is_none());
        assert!(Credentials::parse(":pw").is_none());
    }

    #[test]
    fn docker_config_has_base64_auth() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/config.json");
        let c = Credentials::new("u", "p");
        write_docker_config(&path, &[("127.0.0.1:5000", &c)]).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
        assert_eq!(v["auths"]["127.0.0.1:5000"]["auth"], "dTpw");
    }
}
