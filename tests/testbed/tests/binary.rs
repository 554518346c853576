//! The `testbed` binary: `registry` (ready file, clean exit on SIGTERM) and `seed`.

use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use testbed::{
    Access, Credentials, Creds, ImageSpec, Platform, Registry, RegistryOptions, digest_of,
    digest_of_at, inspect_raw,
};

const BIN: &str = env!("CARGO_BIN_EXE_testbed");

/// Kills the `testbed` process if the test fails half-way: SIGTERM first so it
/// stops its registry child, SIGKILL if it does not exit.
struct Guard(Child);

impl Guard {
    fn terminate(&mut self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM failed");
    }

    fn wait_timeout(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.0.try_wait().expect("try_wait") {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = Command::new("kill")
                .args(["-TERM", &self.0.id().to_string()])
                .status();
            if self.wait_timeout(Duration::from_secs(5)).is_none() {
                let _ = self.0.kill();
                let _ = self.0.wait();
            }
        }
    }
}

fn wait_for_file(path: &Path, child: &mut Guard) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Ok(bytes) = std::fs::read(path) {
            return serde_json::from_slice(&bytes).expect("ready file is JSON");
        }
        if let Some(status) = child.0.try_wait().expect("try_wait") {
            panic!("testbed registry exited early with {status}");
        }
        assert!(Instant::now() < deadline, "no ready file after 15 s");
        thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn registry_command_writes_ready_file_and_exits_0_on_sigterm() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("registry");
    let ready_file = tmp.path().join("ready.json");
    let child = Command::new(BIN)
        .arg("registry")
        .arg("--dir")
        .arg(&dir)
        .arg("--ready-file")
        .arg(&ready_file)
        .args(["--auth", "demo:pw", "--tls"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut child = Guard(child);

    let ready = wait_for_file(&ready_file, &mut child);
    let host = ready["host"].as_str().unwrap().to_string();
    assert!(host.starts_with("127.0.0.1:"), "{ready}");
    assert_eq!(ready["url"], format!("https://{host}"));
    assert_eq!(ready["username"], "demo");
    assert_eq!(ready["password"], "pw");
    let ca_dir = Path::new(ready["ca_dir"].as_str().unwrap()).to_path_buf();
    assert!(ca_dir.join("ca.crt").is_file());

    // Reachable over verified TLS with the credentials: an unknown tag is None.
    let access = Access {
        creds: Creds::Basic(Credentials::new("demo", "pw")),
        tls_verify: true,
        cert_dir: Some(ca_dir),
    };
    assert_eq!(digest_of_at(&host, &access, "nothing:here").unwrap(), None);

    child.terminate();
    let status = child
        .wait_timeout(Duration::from_secs(10))
        .expect("testbed exits within 10 s of SIGTERM");
    assert!(status.success(), "exit status {status}");
    assert!(!ready_file.exists(), "ready file removed on exit");
    assert!(
        TcpStream::connect(&host).is_err(),
        "the registry process is gone"
    );
    assert!(dir.join("storage").is_dir(), "--dir is kept");
}

#[test]
fn seed_command_pushes_distinct_multi_platform_images() {
    let registry = Registry::start(RegistryOptions::default()).unwrap();
    let output = Command::new(BIN)
        .args(["seed", "--registry", &registry.host()])
        .args(["--count", "3", "--platforms", "2", "--layer-kib", "16"])
        .args(["--prefix", "demo", "--tls-verify=false"])
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", output.status);
    let stdout = String::from_utf8(output.stdout).unwrap();
    let lines: Vec<(&str, &str)> = stdout
        .lines()
        .map(|l| l.split_once(' ').expect("`repo:tag digest`"))
        .collect();
    assert_eq!(lines.len(), 3, "{stdout}");

    let mut seen = std::collections::HashSet::new();
    for (i, (reference, digest)) in lines.iter().enumerate() {
        assert_eq!(*reference, format!("demo-{i}:1.0"));
        assert!(seen.insert(*digest), "digests are distinct");
        assert_eq!(
            digest_of(&registry, reference).unwrap().as_deref(),
            Some(*digest)
        );
        let index: serde_json::Value =
            serde_json::from_slice(&inspect_raw(&registry, reference).unwrap()).unwrap();
        assert_eq!(index["manifests"].as_array().unwrap().len(), 2);
    }

    // The same image built in-process has the same digest: seeding is deterministic.
    let same = ImageSpec::new("demo-1", 1)
        .with_layers(2, 16 * 1024)
        .with_platforms(Platform::first(2))
        .build()
        .unwrap();
    assert_eq!(lines[1].1, same.digest);
}

#[test]
fn seed_command_reports_an_unreachable_registry() {
    // A port nothing listens on: bind, read the port, release.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let output = Command::new(BIN)
        .args(["seed", "--registry", &format!("127.0.0.1:{port}")])
        .args(["--count", "2", "--layer-kib", "1", "--tls-verify=false"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("testbed: error: push failed"), "{stderr}");
    assert!(stderr.contains("connection refused"), "{stderr}");
}
