//! What the container meets outside: a "public" registry and a backup registry on loopback
//! (testbed: real docker-registry, TLS, the backup with a password), the files the Deployment
//! mounts (docker config, CA certificates, kubeconfig), the simulator, and plain HTTP.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};
use testbed::{Credentials, ImageSpec, Platform, PushOptions, Registry, RegistryOptions};

/// Where the manifests mount the registry credentials, and where these tests mount the rest.
pub const DOCKER_DIR: &str = "/etc/image-cloner/docker";
pub const CERT_DIR: &str = "/etc/image-cloner/certs";
pub const KUBE_DIR: &str = "/etc/image-cloner/kube";

/// The two registries and the files a pod would get from its Secret: `docker/config.json`
/// with the backup's password, `certs/` with both registries' CAs (mode 0644 in 0755
/// directories, as a Secret volume gives them, so that uid 65532 reads them).
pub struct Registries {
    pub source: Registry,
    pub backup: Registry,
    pub files: tempfile::TempDir,
}

impl Registries {
    pub fn start() -> Registries {
        let source = Registry::start(RegistryOptions {
            tls: true,
            ..Default::default()
        })
        .expect("start the source registry");
        let backup = Registry::start(RegistryOptions {
            tls: true,
            auth: Some(Credentials::new("cloner", "s3cret-for-the-test")),
            ..Default::default()
        })
        .expect("start the backup registry");
        let files = tempfile::tempdir().expect("a temp dir");
        let creds = backup.credentials().expect("the backup has credentials");
        let docker = files.path().join("docker");
        testbed::write_docker_config(&docker.join("config.json"), &[(&backup.host(), creds)])
            .expect("write the docker config");
        let certs = files.path().join("certs");
        std::fs::create_dir(&certs).expect("create the certs dir");
        for (name, registry) in [("source", &source), ("backup", &backup)] {
            let pem = registry.ca_pem().expect("a TLS registry has a CA");
            std::fs::write(certs.join(format!("{name}.crt")), pem).expect("write a CA");
        }
        readable_by_all(files.path());
        Registries {
            source,
            backup,
            files,
        }
    }

    pub fn docker_dir(&self) -> PathBuf {
        self.files.path().join("docker")
    }

    pub fn cert_dir(&self) -> PathBuf {
        self.files.path().join("certs")
    }

    /// `<backup host>/mirror`, the backup_registry setting.
    pub fn backup_registry(&self) -> String {
        format!("{}/mirror", self.backup.host())
    }

    /// Where `<source>/<repo>:<tag>` lands in the backup registry (flat naming, README):
    /// `mirror/<host>--<port>_<repo with _>:<tag>`.
    pub fn backup_path(&self, repo: &str, tag: &str) -> String {
        let host = self.source.host().replace(':', "--");
        format!("mirror/{host}_{}:{tag}", repo.replace('/', "_"))
    }

    /// The reference a workload is patched to: [`Self::backup_path`] pinned to `digest`.
    pub fn backup_ref(&self, repo: &str, tag: &str, digest: &str) -> String {
        format!(
            "{}/{}@{digest}",
            self.backup.host(),
            self.backup_path(repo, tag)
        )
    }

    /// Pushes a two-platform image (two 64 KiB layers each) to the source; returns its
    /// reference there and its digest.
    pub fn push_multi_arch(&self, repo: &str, tag: &str, seed: u64) -> (String, String) {
        let image = ImageSpec::new(repo, seed)
            .with_layers(2, 64 * 1024)
            .with_platforms(vec![Platform::linux_amd64(), Platform::linux_arm64()])
            .build()
            .expect("build the test image");
        let options = PushOptions {
            all: true,
            ..Default::default()
        };
        let digest = testbed::push(&image, &self.source, repo, tag, options).expect("push");
        assert_eq!(digest, image.digest, "the source keeps the built digest");
        (format!("{}/{repo}:{tag}", self.source.host()), digest)
    }
}

/// Makes a tree created by this (root) test readable by the container's uid 65532.
pub fn readable_by_all(root: &Path) {
    let mode = |path: &Path| if path.is_dir() { 0o755 } else { 0o644 };
    std::fs::set_permissions(root, std::fs::Permissions::from_mode(mode(root)))
        .expect("chmod a test file");
    if root.is_dir() {
        for entry in std::fs::read_dir(root).expect("read a test dir") {
            readable_by_all(&entry.expect("a dir entry").path());
        }
    }
}

/// The simulator seeded with the namespace `shop` and `workloads`, and its kubeconfig in a
/// directory of its own (`config`, readable by uid 65532) to mount at [`KUBE_DIR`].
pub struct Cluster {
    pub sim: kube_sim::Sim,
    pub kube_dir: tempfile::TempDir,
    _seed: tempfile::TempDir,
}

impl Cluster {
    pub fn start(workloads: &[Value]) -> Cluster {
        let seed = tempfile::tempdir().expect("a temp dir");
        let mut items =
            vec![json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}})];
        items.extend(workloads.iter().cloned());
        let list = json!({"apiVersion": "v1", "kind": "List", "items": items});
        std::fs::write(seed.path().join("cluster.json"), list.to_string()).expect("write seed");
        let sim = kube_sim::Sim::start(kube_sim::Options {
            seed: Some(seed.path().to_owned()),
            ..Default::default()
        })
        .expect("start the simulator");
        let kube_dir = tempfile::tempdir().expect("a temp dir");
        sim.write_kubeconfig(&kube_dir.path().join("config"))
            .expect("write the kubeconfig");
        readable_by_all(kube_dir.path());
        Cluster {
            sim,
            kube_dir,
            _seed: seed,
        }
    }

    /// The stored object of `kind` named `name` in `shop`.
    pub fn get(&self, kind: &str, name: &str) -> Value {
        let resource = kube_sim::resources::of_kind(kind).expect("a known kind");
        let object = self
            .sim
            .store()
            .get(resource, "shop", name)
            .unwrap_or_else(|e| panic!("{kind} shop/{name}: {e:?}"));
        (*object).clone()
    }
}

/// The pod spec of a stored workload, wherever its kind keeps it.
pub fn pod_spec(object: &Value) -> &Value {
    match object["kind"].as_str() {
        Some("CronJob") => &object["spec"]["jobTemplate"]["spec"]["template"]["spec"],
        Some("Pod") => &object["spec"],
        _ => &object["spec"]["template"]["spec"],
    }
}

/// A free loopback port, one no outgoing connection takes before the container binds it.
pub fn free_port() -> u16 {
    testbed::free_port().expect("a free port")
}

/// `GET path` on `127.0.0.1:port` over plain HTTP/1.0 (so that the body is never chunked): the
/// status code and the body, or `None` while nothing answers.
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("set a read timeout");
    let request = format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
    stream.write_all(request.as_bytes()).ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    let status = head.split(' ').nth(1)?.parse().ok()?;
    Some((status, body.to_owned()))
}

/// The `data` of manifests/configmap.yaml: the settings a user's ConfigMap hands the pod.
pub fn configmap_data() -> Vec<(String, String)> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("manifests/configmap.yaml");
    let text = std::fs::read_to_string(&path).expect("read manifests/configmap.yaml");
    let data = text.split_once("\ndata:\n").expect("a data: section").1;
    let pairs: Vec<(String, String)> = data
        .lines()
        .take_while(|line| line.starts_with("  "))
        .filter(|line| !line.trim_start().starts_with('#'))
        .map(|line| {
            let (key, value) = line.trim().split_once(": ").expect("KEY: value");
            (key.to_owned(), value.trim_matches('"').to_owned())
        })
        .collect();
    assert_eq!(
        pairs.len(),
        4,
        "the ConfigMap's three original settings and leader election: {pairs:?}"
    );
    pairs
}

/// Fails when manifests/deployment.yaml no longer mounts the docker config and /tmp where
/// these tests do, or no longer runs as [`Run`](crate::podman::Run) runs the image.
pub fn assert_deployment_matches() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("manifests/deployment.yaml");
    let text = std::fs::read_to_string(&path).expect("read manifests/deployment.yaml");
    for line in [
        format!("mountPath: {DOCKER_DIR}"),
        format!("value: {DOCKER_DIR}/config.json"),
        "mountPath: /tmp".to_owned(),
        "runAsUser: 65532".to_owned(),
        "runAsGroup: 65532".to_owned(),
        "readOnlyRootFilesystem: true".to_owned(),
        "allowPrivilegeEscalation: false".to_owned(),
        r#"drop: ["ALL"]"#.to_owned(),
    ] {
        assert!(
            text.lines().any(|l| l.trim() == line),
            "manifests/deployment.yaml has no `{line}`: update tests/container/"
        );
    }
}
