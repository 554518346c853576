//! Shared by the integration tests: real registries (testbed) and the `image-cloner` binary run
//! with a controlled environment.

#![allow(dead_code)]

pub mod cluster;
pub mod daemon;
pub mod e2e;
pub mod hooks;
pub mod ratelimit;
pub mod throttle;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use testbed::{ImageSpec, Platform, PushOptions, Registry, RegistryOptions};

/// 2 layers of 64 KiB: fast, but real blobs.
pub fn small_image(name: &str, seed: u64) -> ImageSpec {
    ImageSpec::new(name, seed).with_layers(2, 64 * 1024)
}

pub fn multi_arch(name: &str, seed: u64) -> ImageSpec {
    small_image(name, seed).with_platforms(vec![Platform::linux_amd64(), Platform::linux_arm64()])
}

pub fn plain_registry() -> Registry {
    Registry::start(RegistryOptions::default()).expect("start a registry")
}

/// A plain registry that logs every request (for [`cloner_head_uris`] and
/// `testbed::logged_requests`).
pub fn logged_registry() -> Registry {
    Registry::start(RegistryOptions {
        request_log: true,
        ..Default::default()
    })
    .expect("start a registry")
}

/// The URIs of the HEADs image-cloner sent `registry` (started with its request log), answered
/// or refused.
pub fn cloner_head_uris(registry: &Registry) -> Vec<String> {
    let log = std::fs::read_to_string(registry.log_path()).unwrap_or_default();
    testbed::logged_requests(&log)
        .filter(|r| r.method == "HEAD" && r.user_agent == "image-cloner")
        .map(|r| r.uri.to_owned())
        .collect()
}

/// The flat backup repository of `repo` in `source` under `backup/mirror` (README, naming):
/// `mirror/<host>--<port>_<repo with _>`.
pub fn flat(source: &Registry, repo: &str) -> String {
    format!(
        "mirror/{}_{}",
        source.host().replace(':', "--"),
        repo.replace('/', "_")
    )
}

pub fn push_all(registry: &Registry, spec: &ImageSpec, repo: &str, tag: &str) -> String {
    let image = spec.build().expect("build the test image");
    testbed::push(
        &image,
        registry,
        repo,
        tag,
        PushOptions {
            all: true,
            ..Default::default()
        },
    )
    .expect("push the test image")
}

/// `image-cloner` with an environment holding only what the test gives it (plus PATH), and a
/// HOME with no docker config, so nothing of the machine's leaks in.
pub struct Cloner {
    pub home: tempfile::TempDir,
    pub env: Vec<(String, String)>,
}

impl Cloner {
    pub fn new(backup: &str) -> Self {
        Cloner {
            home: tempfile::tempdir().expect("a temp HOME"),
            env: vec![("BACKUP_REGISTRY".into(), backup.into())],
        }
    }

    pub fn set(mut self, name: &str, value: impl Into<String>) -> Self {
        self.env.push((name.into(), value.into()));
        self
    }

    pub fn insecure(self, registries: &[&Registry]) -> Self {
        let list: Vec<String> = registries.iter().map(|r| r.host()).collect();
        self.set("IMAGE_CLONER_INSECURE_REGISTRIES", list.join(","))
    }

    pub fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_image-cloner"))
            .args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", self.home.path())
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .output()
            .expect("run image-cloner")
    }

    pub fn home(&self) -> &Path {
        self.home.path()
    }
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A directory with the CA certificates of several registries, as `cert_dir` expects.
pub fn cert_dir(registries: &[&Registry]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("a temp cert dir");
    for (i, r) in registries.iter().enumerate() {
        let pem = r.ca_pem().expect("a TLS registry");
        std::fs::write(dir.path().join(format!("registry-{i}.crt")), pem).expect("write a CA file");
    }
    dir
}

pub fn path_of(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().to_owned()
}
