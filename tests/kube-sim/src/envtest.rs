//! The real API server the simulator is checked against: etcd and kube-apiserver from the
//! folder `KUBEBUILDER_ASSETS` names (controller-runtime's envtest convention), started here
//! the way controller-runtime's envtest starts them — its own CA and serving certificate, one
//! bearer token in `system:masters`, RBAC, every port a free one on 127.0.0.1, everything in a
//! temp dir — and stopped on drop (the API server first, then etcd), also when a test panics.
//! Nothing outside the repository is needed but those two binaries. Shared by the simulator's
//! fidelity tests and image-cloner's end-to-end tests.

mod daemon;
mod pki;
mod readyz;

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;

use daemon::Daemon;

/// How long the API server may take to answer `/readyz` with 200.
pub const READY_TIMEOUT: Duration = Duration::from_secs(90);

#[derive(Debug, thiserror::Error)]
pub enum EnvtestError {
    #[error(
        "KUBEBUILDER_ASSETS={folder:?} lacks {missing}: the folder must hold kube-apiserver and \
         etcd (etcd may also be on PATH), e.g. `export KUBEBUILDER_ASSETS=$(setup-envtest use -p path)`"
    )]
    MissingBinaries { folder: PathBuf, missing: String },
    #[error("creating envtest's temp dir: {0}")]
    CreateTempDir(std::io::Error),
    #[error("finding a free port on 127.0.0.1: {0}")]
    FindFreePort(testbed::TestbedError),
    #[error("generating envtest's certificates and keys: {reason}")]
    GenerateKeys { reason: String },
    #[error("configuring TLS to ask kube-apiserver's /readyz: {reason}")]
    ConfigureTls { reason: String },
    #[error("writing {path}: {source}")]
    WriteFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("starting {program}: {source}")]
    Spawn {
        program: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{name} exited ({status}) before the API server was ready; last lines of {log}:\n{tail}"
    )]
    ExitedEarly {
        name: &'static str,
        status: String,
        log: PathBuf,
        tail: String,
    },
    #[error(
        "kube-apiserver was not ready within {timeout:?} (last /readyz: {last}); \
         last lines of {log}:\n{tail}"
    )]
    NotReady {
        timeout: Duration,
        last: String,
        log: PathBuf,
        tail: String,
    },
}

/// A real kube-apiserver + etcd on loopback, stopped on drop.
pub struct Envtest {
    apiserver: Daemon,
    etcd: Daemon,
    port: u16,
    token: String,
    /// Removed after both processes are stopped (fields drop after `Drop::drop`).
    dir: tempfile::TempDir,
}

impl Envtest {
    /// `None` (after saying so loudly) when `KUBEBUILDER_ASSETS` is not set.
    ///
    /// # Panics
    /// When it is set but lacks the binaries, or the server does not come up within
    /// [`READY_TIMEOUT`]: a test that asked for a real API server cannot run.
    pub fn start() -> Option<Envtest> {
        let Some(assets) = std::env::var_os("KUBEBUILDER_ASSETS") else {
            eprintln!(
                "SKIPPED: real-API-server tests need KUBEBUILDER_ASSETS, a folder holding \
                 kube-apiserver and etcd (export KUBEBUILDER_ASSETS=$(../shared/envtest/setup) \
                 or $(setup-envtest use -p path); see README)"
            );
            return None;
        };
        match Envtest::start_from(Path::new(&assets)) {
            Ok(env) => Some(env),
            Err(e) => panic!("envtest: {e}"),
        }
    }

    /// Starts etcd and kube-apiserver from `assets` and waits until `/readyz` answers 200.
    pub fn start_from(assets: &Path) -> Result<Envtest, EnvtestError> {
        let (apiserver_bin, etcd_bin) = binaries(assets)?;
        let dir = tempfile::Builder::new()
            .prefix("envtest-")
            .tempdir()
            .map_err(EnvtestError::CreateTempDir)?;
        let files = pki::write(dir.path())?;
        let [etcd_port, peer_port, port] = free_ports()?;
        let etcd = Daemon::spawn(
            "etcd",
            &etcd_bin,
            &etcd_args(&dir.path().join("etcd"), etcd_port, peer_port),
            dir.path().join("etcd.log"),
        )?;
        let apiserver = Daemon::spawn(
            "kube-apiserver",
            &apiserver_bin,
            &apiserver_args(&files, etcd_port, port),
            dir.path().join("apiserver.log"),
        )?;
        let mut env = Envtest {
            apiserver,
            etcd,
            port,
            token: files.token,
            dir,
        };
        env.wait_ready(&files.ca_pem)?;
        env.write_kubeconfig(&files.ca_pem)?;
        Ok(env)
    }

    /// Polls `/readyz` until it answers 200; fails early when either process exits.
    fn wait_ready(&mut self, ca_pem: &str) -> Result<(), EnvtestError> {
        let probe = readyz::Probe::new(ca_pem, self.port, &self.token)?;
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let last = match probe.ready() {
                Ok(()) => return Ok(()),
                Err(last) => last,
            };
            for daemon in [&mut self.etcd, &mut self.apiserver] {
                if let Some(status) = daemon.exited() {
                    return Err(EnvtestError::ExitedEarly {
                        name: daemon.name(),
                        status: status.to_string(),
                        log: daemon.log().to_owned(),
                        tail: daemon.log_tail(),
                    });
                }
            }
            if Instant::now() >= deadline {
                return Err(EnvtestError::NotReady {
                    timeout: READY_TIMEOUT,
                    last,
                    log: self.apiserver.log().to_owned(),
                    tail: self.apiserver.log_tail(),
                });
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The kubeconfig the start script wrote: cluster `envtest`, user `admin` (the token),
    /// namespace `default`.
    fn write_kubeconfig(&self, ca_pem: &str) -> Result<(), EnvtestError> {
        let text = format!(
            "apiVersion: v1
kind: Config
clusters:
- name: envtest
  cluster: {{server: \"{server}\", certificate-authority-data: {ca}}}
users:
- name: admin
  user: {{token: {token}}}
contexts:
- name: envtest
  context: {{cluster: envtest, user: admin, namespace: default}}
current-context: envtest
",
            server = self.server_url(),
            ca = B64.encode(ca_pem),
            token = self.token,
        );
        let path = self.kubeconfig();
        std::fs::write(&path, text).map_err(|source| EnvtestError::WriteFile { path, source })
    }

    /// A kubeconfig for the API server, written once it was ready.
    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.path().join("kubeconfig")
    }

    /// `https://127.0.0.1:<port>`.
    pub fn server_url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    /// The CA (PEM) that signed the API server's serving certificate.
    pub fn ca_pem(&self) -> PathBuf {
        self.dir.path().join(pki::CA_CERT)
    }

    /// A bearer token of user `admin` in group `system:masters`.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// What kube-apiserver wrote so far, for a test's failure message.
    pub fn apiserver_log(&self) -> String {
        self.apiserver.log_text()
    }

    /// What etcd wrote so far (errors only).
    pub fn etcd_log(&self) -> String {
        self.etcd.log_text()
    }
}

impl Drop for Envtest {
    fn drop(&mut self) {
        // The API server first: stopped after etcd, it would spend its grace period retrying.
        self.apiserver.stop();
        self.etcd.stop();
    }
}

/// kube-apiserver from `assets`; etcd from `assets`, or else from PATH (Debian's
/// etcd-server installs /usr/bin/etcd).
fn binaries(assets: &Path) -> Result<(PathBuf, PathBuf), EnvtestError> {
    let apiserver = assets.join("kube-apiserver");
    let etcd = Some(assets.join("etcd"))
        .filter(|p| p.is_file())
        .or_else(|| on_path(OsStr::new("etcd")));
    let missing = match (apiserver.is_file(), &etcd) {
        (true, Some(etcd)) => return Ok((apiserver, etcd.clone())),
        (false, Some(_)) => "kube-apiserver",
        (true, None) => "etcd (nor is it on PATH)",
        (false, None) => "kube-apiserver and etcd (nor is etcd on PATH)",
    };
    Err(EnvtestError::MissingBinaries {
        folder: assets.to_owned(),
        missing: missing.to_string(),
    })
}

fn on_path(name: &OsStr) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// Three distinct free ports on 127.0.0.1, outside the range outgoing connections are given
/// (etcd and kube-apiserver bind them a second or more later, while other tests connect).
fn free_ports() -> Result<[u16; 3], EnvtestError> {
    let port = || testbed::free_port().map_err(EnvtestError::FindFreePort);
    Ok([port()?, port()?, port()?])
}

fn etcd_args(data: &Path, client_port: u16, peer_port: u16) -> Vec<OsString> {
    let client = format!("http://127.0.0.1:{client_port}");
    let peer = format!("http://127.0.0.1:{peer_port}");
    let mut args: Vec<OsString> = vec!["--data-dir".into(), data.into()];
    for arg in [
        "--listen-client-urls",
        &client,
        "--advertise-client-urls",
        &client,
        "--listen-peer-urls",
        &peer,
        "--initial-advertise-peer-urls",
        &peer,
        "--initial-cluster",
        &format!("default={peer}"),
        "--unsafe-no-fsync",
        "--log-level",
        "error",
    ] {
        args.push(arg.into());
    }
    args
}

/// The start script's flags; the admission plugins stay the defaults (webhooks included)
/// but ServiceAccount, which would wait for the token controller envtest does not run.
fn apiserver_args(files: &pki::Files, etcd_port: u16, port: u16) -> Vec<OsString> {
    let mut args: Vec<OsString> = Vec::new();
    let mut flag = |name: &str, value: &OsStr| {
        args.push(name.into());
        args.push(value.into());
    };
    flag(
        "--etcd-servers",
        format!("http://127.0.0.1:{etcd_port}").as_ref(),
    );
    flag("--bind-address", "127.0.0.1".as_ref());
    flag("--advertise-address", "127.0.0.1".as_ref());
    flag("--secure-port", port.to_string().as_ref());
    flag("--tls-cert-file", files.server_cert.as_os_str());
    flag("--tls-private-key-file", files.server_key.as_os_str());
    flag("--client-ca-file", files.ca_cert.as_os_str());
    flag("--token-auth-file", files.tokens.as_os_str());
    flag("--authorization-mode", "RBAC".as_ref());
    flag(
        "--service-account-issuer",
        "https://kubernetes.default.svc".as_ref(),
    );
    flag("--service-account-key-file", files.sa_public.as_os_str());
    flag(
        "--service-account-signing-key-file",
        files.sa_private.as_os_str(),
    );
    flag("--service-cluster-ip-range", "10.0.0.0/24".as_ref());
    flag("--disable-admission-plugins", "ServiceAccount".as_ref());
    args.push("--allow-privileged=true".into());
    args
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_folder_without_the_binaries_is_named_with_what_it_lacks() {
        let empty = tempfile::tempdir().expect("temp dir");
        let err = binaries(empty.path()).expect_err("an empty folder has no kube-apiserver");
        let message = err.to_string();
        assert!(
            message.contains(&format!("{:?}", empty.path())),
            "{message}"
        );
        assert!(message.contains("kube-apiserver"), "{message}");
    }
}
