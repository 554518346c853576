//! podman, the way these tests run the image: the image's own user, the Deployment's
//! securityContext (manifests/deployment.yaml), loopback networking, and this machine's limits.

use std::path::Path;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

/// The image under test, as `make container-test` tags it unless this variable says otherwise.
pub const IMAGE_VARIABLE: &str = "IMAGE_CLONER_TEST_IMAGE";
const DEFAULT_IMAGE: &str = "localhost/image-cloner:test";

pub fn image() -> String {
    std::env::var(IMAGE_VARIABLE).unwrap_or_else(|_| DEFAULT_IMAGE.to_owned())
}

/// `podman` with runc and cgroupfs named: crun (podman's other runtime) is refused on the
/// machines this runs on, and a systemd cgroup manager needs a systemd that containers lack.
pub fn podman() -> Command {
    let mut command = Command::new("podman");
    command.args(["--runtime", "runc", "--cgroup-manager", "cgroupfs"]);
    command
}

/// Runs podman to completion; panics with its stderr when it cannot start or fails.
pub fn podman_ok(args: &[&str]) -> String {
    let out = podman().args(args).output().expect("start podman");
    assert!(
        out.status.success(),
        "podman {args:?}: {}\n{}",
        out.status,
        text(&out.stderr)
    );
    text(&out.stdout)
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The image's `podman image inspect` field chosen by a Go template.
pub fn inspect_image(template: &str) -> String {
    podman_ok(&["image", "inspect", "--format", template, &image()])
        .trim()
        .to_owned()
}

/// Panics with the command to run when the image is missing, rather than letting podman try
/// to pull it.
pub fn require_image() {
    let image = image();
    let exists = podman()
        .args(["image", "exists", &image])
        .status()
        .expect("start podman");
    assert!(
        exists.success(),
        "the image {image} is not in podman's store: run `make container-test` (or set {IMAGE_VARIABLE})"
    );
}

/// One `podman run` of the image, configured as the Deployment configures its pod.
pub struct Run {
    args: Vec<String>,
}

impl Run {
    /// The Deployment's securityContext: the image's own (non-root) user, read-only root
    /// filesystem with `/tmp` its only writable path (podman's extra tmpfs mounts turned off),
    /// every capability dropped, no privilege escalation, podman's default seccomp profile
    /// (RuntimeDefault). The host's network, so that loopback registries and API servers are
    /// reachable, and limits at or below this machine's (podman's defaults exceed them).
    /// Every container is killed after 5 minutes: a hung command fails its test rather than
    /// hanging it, and a daemon whose test was interrupted does not run on.
    pub fn new() -> Run {
        let args = [
            "run",
            "--pull=never",
            "--timeout=300",
            "--network=host",
            // The image's own /etc/passwd, as Kubernetes leaves it (podman would add 65532).
            "--passwd=false",
            "--read-only",
            "--read-only-tmpfs=false",
            "--tmpfs=/tmp:rw,nosuid,nodev,mode=1777",
            "--cap-drop=ALL",
            "--security-opt=no-new-privileges",
            "--ulimit=nofile=1024:4096",
            "--ulimit=nproc=1024:2048",
        ];
        Run {
            args: args.iter().map(|a| a.to_string()).collect(),
        }
    }

    pub fn env(mut self, name: &str, value: &str) -> Run {
        self.args.push(format!("--env={name}={value}"));
        self
    }

    /// The variables the Deployment sets besides the ConfigMap's.
    pub fn deployment_env(self) -> Run {
        self.env(
            "IMAGE_CLONER_DOCKER_CONFIG",
            "/etc/image-cloner/docker/config.json",
        )
        .env("IMAGE_CLONER_TMP_DIR", "/tmp")
        .env("IMAGE_CLONER_LOG_FORMAT", "json")
        .env("POD_NAMESPACE", "image-cloner")
        .env("POD_NAME", "image-cloner-0")
    }

    /// A host file or directory, read-only, as a Secret or ConfigMap volume is mounted.
    pub fn mount(mut self, host: &Path, container: &str) -> Run {
        self.args
            .push(format!("--volume={}:{container}:ro", host.display()));
        self
    }

    pub fn entrypoint(mut self, program: &str) -> Run {
        self.args.push(format!("--entrypoint={program}"));
        self
    }

    /// Runs the image with `args` until it exits, then removes the container.
    pub fn output(mut self, args: &[&str]) -> Output {
        self.args.push("--rm".into());
        self.args.push(image());
        self.args.extend(args.iter().map(|a| a.to_string()));
        podman().args(&self.args).output().expect("start podman")
    }

    /// Starts the image with `args` in the background; the container is removed when the
    /// returned guard is dropped, also when the test fails.
    pub fn start(mut self, args: &[&str]) -> Container {
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "image-cloner-test-{}-{}",
            std::process::id(),
            COUNT.fetch_add(1, Ordering::Relaxed)
        );
        self.args.push("--detach".into());
        self.args.push(format!("--name={name}"));
        self.args.push(image());
        self.args.extend(args.iter().map(|a| a.to_string()));
        // The guard first: a container podman created but could not start is removed too.
        let container = Container { name };
        let strings: Vec<&str> = self.args.iter().map(String::as_str).collect();
        podman_ok(&strings);
        container
    }
}

/// A container started in the background, removed (killed first if need be) on drop.
pub struct Container {
    name: String,
}

impl Container {
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The field of `podman container inspect` chosen by a Go template.
    pub fn inspect(&self, template: &str) -> String {
        podman_ok(&["container", "inspect", "--format", template, &self.name])
            .trim()
            .to_owned()
    }

    /// The host's pid of the container's first process.
    pub fn pid(&self) -> u32 {
        let pid = self.inspect("{{.State.Pid}}");
        pid.parse()
            .unwrap_or_else(|_| panic!("podman gave no pid: {pid:?}"))
    }

    /// Everything the container wrote to stdout and stderr so far.
    pub fn logs(&self) -> String {
        let out = podman()
            .args(["logs", &self.name])
            .output()
            .expect("start podman");
        format!("{}{}", text(&out.stdout), text(&out.stderr))
    }

    /// Sends SIGTERM, as the kubelet does, waits at most `grace_seconds` before SIGKILL, and
    /// returns the exit code.
    pub fn stop(&self, grace_seconds: u32) -> i32 {
        podman_ok(&["stop", "--time", &grace_seconds.to_string(), &self.name]);
        let code = self.inspect("{{.State.ExitCode}}");
        code.parse()
            .unwrap_or_else(|_| panic!("podman gave no exit code: {code:?}"))
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = podman()
            .args(["rm", "--force", "--time", "0", &self.name])
            .output();
    }
}
