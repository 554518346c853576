//! The real API server the simulator is checked against: `../shared/envtest`'s kube-apiserver
//! and etcd, started on loopback when `KUBEBUILDER_ASSETS` names their folder (the envtest
//! convention), stopped on drop. Shared by the simulator's fidelity tests and image-cloner's
//! end-to-end tests.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A real kube-apiserver + etcd started by envtest's `start` script.
pub struct Envtest {
    child: Child,
    dir: tempfile::TempDir,
}

impl Envtest {
    /// `None` (after saying so loudly) when `KUBEBUILDER_ASSETS` is not set.
    ///
    /// # Panics
    /// When the server does not come up within 90 s: a test that asked for it cannot run.
    pub fn start() -> Option<Envtest> {
        let Ok(assets) = std::env::var("KUBEBUILDER_ASSETS") else {
            eprintln!(
                "SKIPPED: real-API-server tests need KUBEBUILDER_ASSETS \
                 (export KUBEBUILDER_ASSETS=$(../shared/envtest/setup); see README)"
            );
            return None;
        };
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/envtest/start");
        let dir = tempfile::tempdir().expect("a temp dir for envtest");
        let child = Command::new(&script)
            .arg(dir.path())
            .env("KUBEBUILDER_ASSETS", assets)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", script.display()));
        let env = Envtest { child, dir };
        let deadline = Instant::now() + Duration::from_secs(90);
        while !env.kubeconfig().exists() {
            assert!(
                Instant::now() < deadline,
                "envtest did not write its kubeconfig within 90 s; apiserver log: {}",
                std::fs::read_to_string(env.dir.path().join("apiserver.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        Some(env)
    }

    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.path().join("kubeconfig")
    }
}

impl Drop for Envtest {
    fn drop(&mut self) {
        // The script traps TERM and stops the API server and etcd before exiting.
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}
