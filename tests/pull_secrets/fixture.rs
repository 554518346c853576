//! The environment of the pull secret scenarios: a Kubernetes API server, a public source
//! registry, a private backup registry (htpasswd, with a unique marker password), a docker
//! config mounted the way a kubelet mounts a Secret (a `..data` symlink swapped atomically on
//! change), and a transcript of everything image-cloner printed, logged or published — which
//! must never hold a credential.

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine as _;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, DynamicObject, GroupVersionKind, ListParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::discovery::ApiResource;
use kube::{Client, Config};
use serde_json::{Value, json};
use testbed::{Access, Credentials, Creds, Registry, RegistryOptions};

use crate::common::e2e::{ClonerSetup, cloner_command};
use crate::common::{push_all, small_image};

/// The backup registry's password: it must appear in no output of the suite.
pub const MARKER: &str = "pw-Pu11-c9d2e7-never-shown";
/// The password after the rotation.
pub const ROTATED: &str = "pw-R0tated-41b8aa-never-shown";
/// Another registry's password in the same docker config: never copied into a pull secret.
pub const OTHER: &str = "pw-0ther-77e1f0-never-shown";
pub const OTHER_REGISTRY: &str = "registry.other.example:5000";
/// The pull secret name the in-cluster manifests use.
pub const SECRET: &str = "image-cloner-pull";

pub struct PullEnv {
    pub name: &'static str,
    kubeconfig: PathBuf,
    pub client: Client,
    pub rt: tokio::runtime::Runtime,
    pub source: Registry,
    pub backup: Registry,
    pub backup_host: String,
    pub user: Credentials,
    pub rotated: Credentials,
    home: tempfile::TempDir,
    /// Holds `config.json → ..data/config.json` and the `..data` symlink.
    docker: tempfile::TempDir,
    /// Everything image-cloner wrote or published, for the final scan.
    transcript: Mutex<Vec<String>>,
    /// Encodings of pull secret contents seen, which the transcript must not hold.
    secrets: Mutex<Vec<String>>,
    pub sim: Option<kube_sim::Sim>,
}

impl PullEnv {
    pub fn new(name: &'static str, kubeconfig: &Path) -> PullEnv {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a tokio runtime");
        let client = rt.block_on(async {
            let kc = Kubeconfig::read_from(kubeconfig).expect("read the kubeconfig");
            let config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
                .await
                .expect("a client config");
            Client::try_from(config).expect("a client")
        });
        let user = Credentials::new("cloner", MARKER);
        let backup = Registry::start(RegistryOptions {
            auth: Some(user.clone()),
            request_log: true,
            ..Default::default()
        })
        .expect("start the private backup registry");
        let env = PullEnv {
            name,
            kubeconfig: kubeconfig.to_owned(),
            client,
            rt,
            source: crate::common::plain_registry(),
            backup_host: backup.host(),
            backup,
            rotated: Credentials::new("cloner-rotated", ROTATED),
            user,
            home: tempfile::tempdir().expect("a temp HOME"),
            docker: tempfile::tempdir().expect("a docker config dir"),
            transcript: Mutex::default(),
            secrets: Mutex::default(),
            sim: None,
        };
        env.write_docker_config(&env.user.clone(), "..2025_01");
        symlink("..data/config.json", env.docker_config()).expect("link config.json");
        env
    }

    pub fn on_simulator(dir: &Path) -> PullEnv {
        let sim = kube_sim::Sim::start(kube_sim::Options::default()).expect("start kube-sim");
        let kubeconfig = dir.join("kubeconfig");
        sim.write_kubeconfig(&kubeconfig)
            .expect("write the kubeconfig");
        let mut env = PullEnv::new("kube-sim", &kubeconfig);
        env.sim = Some(sim);
        env
    }

    /// image-cloner's manifest HEADs the backup refused for want of credentials, but for the
    /// start-up pull check's, which asks without them on purpose (the registry's own log).
    pub fn refused_heads(&self) -> usize {
        let log = std::fs::read_to_string(self.backup.log_path()).unwrap_or_default();
        testbed::logged_requests(&log)
            .filter(|r| r.refused && r.method == "HEAD" && r.user_agent == "image-cloner")
            .filter(|r| !r.uri.contains("image-cloner-pull-check"))
            .count()
    }

    pub fn backup_log_tail(&self) -> String {
        self.backup.log_tail()
    }

    pub fn docker_config(&self) -> PathBuf {
        self.docker.path().join("config.json")
    }

    /// Writes a docker config holding `creds` for the backup and another registry's entry
    /// into a new timestamped directory, and points `..data` at it with one rename — as the
    /// kubelet updates a mounted Secret.
    fn write_docker_config(&self, creds: &Credentials, version: &str) {
        let dir = self.docker.path().join(version);
        let other = Credentials::new("someone-else", OTHER);
        testbed::write_docker_config(
            &dir.join("config.json"),
            &[(&self.backup_host, creds), (OTHER_REGISTRY, &other)],
        )
        .expect("write the docker config");
        let tmp = self.docker.path().join("..data_tmp");
        let _ = std::fs::remove_file(&tmp);
        symlink(version, &tmp).expect("link ..data_tmp");
        std::fs::rename(&tmp, self.docker.path().join("..data")).expect("swap ..data");
    }

    /// The backup registry's credentials rotated: it accepts the new ones too, and the
    /// mounted docker config now holds them.
    pub fn rotate(&mut self) {
        let rotated = self.rotated.clone();
        self.backup
            .also_accept(&rotated)
            .expect("the backup registry accepts the rotated credentials");
        self.write_docker_config(&rotated, "..2025_02");
    }

    pub fn backup_registry(&self) -> String {
        format!("{}/mirror", self.backup_host)
    }

    /// `image-cloner` confined to `namespaces`, with the mounted docker config.
    pub fn cloner(&self, namespaces: &[&str], extra: &[(&str, &str)]) -> Command {
        let mut cmd = cloner_command(ClonerSetup {
            home: self.home.path(),
            kubeconfig: &self.kubeconfig,
            backup_registry: &self.backup_registry(),
            registries: &[&self.source.host(), &self.backup_host],
            namespaces,
        });
        cmd.env("IMAGE_CLONER_DOCKER_CONFIG", self.docker_config());
        for (k, v) in extra {
            cmd.env(k, v);
        }
        cmd
    }

    /// Runs `image-cloner args`; its output goes into the transcript.
    pub fn run(&self, namespaces: &[&str], extra: &[(&str, &str)], args: &[&str]) -> Output {
        let out = self
            .cloner(namespaces, extra)
            .args(args)
            .output()
            .expect("run image-cloner");
        self.record(&crate::common::e2e::text(&out));
        out
    }

    pub fn record(&self, text: &str) {
        self.transcript
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(text.to_owned());
    }

    pub fn remember_secret(&self, text: &str) {
        self.secrets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(text.to_owned());
    }

    pub fn remembered_secrets(&self) -> Vec<String> {
        self.secrets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    pub fn transcript(&self) -> String {
        self.transcript
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .join("\n")
    }

    /// Pushes a fresh single-platform image to the source registry; its reference.
    pub fn push(&self, repo: &str, seed: u64) -> String {
        push_all(&self.source, &small_image(repo, seed), repo, "1");
        format!("{}/{repo}:1", self.source.host())
    }

    pub fn namespace(&self, name: &str) {
        let ns: Namespace =
            serde_json::from_value(json!({"metadata": {"name": name}})).expect("a namespace");
        let api = Api::<Namespace>::all(self.client.clone());
        match self.rt.block_on(api.create(&PostParams::default(), &ns)) {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 409 => {}
            Err(e) => panic!("creating namespace {name}: {e}"),
        }
    }

    fn deployments(&self, ns: &str) -> Api<DynamicObject> {
        let r = ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("apps", "v1", "Deployment"),
            "deployments",
        );
        Api::namespaced_with(self.client.clone(), ns, &r)
    }

    /// Creates a Deployment running `image`, with these `imagePullSecrets` (if any).
    pub fn deployment(&self, ns: &str, name: &str, image: &str, pull_secrets: &[&str]) {
        let mut obj =
            kube_sim::fixtures::workload("Deployment", ns, name, &[("app", image)], &[], json!({}));
        if !pull_secrets.is_empty() {
            obj["spec"]["template"]["spec"]["imagePullSecrets"] =
                pull_secrets.iter().map(|n| json!({ "name": n })).collect();
        }
        let dynamic: DynamicObject = serde_json::from_value(obj).expect("an object");
        self.rt
            .block_on(
                self.deployments(ns)
                    .create(&PostParams::default(), &dynamic),
            )
            .unwrap_or_else(|e| panic!("creating Deployment {ns}/{name}: {e}"));
    }

    pub fn get(&self, ns: &str, name: &str) -> Value {
        let obj = self
            .rt
            .block_on(self.deployments(ns).get(name))
            .unwrap_or_else(|e| panic!("getting Deployment {ns}/{name}: {e}"));
        serde_json::to_value(obj).expect("json")
    }

    pub fn image(&self, ns: &str, name: &str) -> String {
        self.get(ns, name)["spec"]["template"]["spec"]["containers"][0]["image"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// The names in the pod template's `imagePullSecrets`; `None` when there is no list.
    pub fn pull_secrets(&self, ns: &str, name: &str) -> Option<Vec<String>> {
        let obj = self.get(ns, name);
        let list = obj["spec"]["template"]["spec"]["imagePullSecrets"].as_array()?;
        Some(
            list.iter()
                .map(|r| r["name"].as_str().unwrap_or_default().to_owned())
                .collect(),
        )
    }

    pub fn secret(&self, ns: &str, name: &str) -> Option<Secret> {
        let api = Api::<Secret>::namespaced(self.client.clone(), ns);
        self.rt.block_on(api.get_opt(name)).expect("read a Secret")
    }

    /// The docker config a Secret holds, written to a file skopeo can use.
    pub fn authfile_of(&self, secret: &Secret, dir: &Path) -> (PathBuf, Value) {
        let bytes = secret
            .data
            .as_ref()
            .and_then(|d| d.get(".dockerconfigjson"))
            .map(|b| b.0.clone())
            .expect("a .dockerconfigjson key");
        let path = dir.join(format!(
            "{}.json",
            secret.metadata.resource_version.as_deref().unwrap_or("x")
        ));
        std::fs::write(&path, &bytes).expect("write the authfile");
        (path, serde_json::from_slice(&bytes).expect("JSON"))
    }

    /// Whether `image` (as written into a workload) can be pulled from the backup with the
    /// docker config at `authfile` (`None`: anonymously), by `skopeo inspect`.
    pub fn pullable(&self, image: &str, authfile: Option<&Path>) -> bool {
        let rest = image
            .strip_prefix(&format!("{}/", self.backup_host))
            .expect("a backup reference");
        // skopeo refuses tag and digest together: by digest.
        let by_digest = match rest.split_once('@') {
            Some((name_tag, digest)) => {
                let name = name_tag.rsplit_once(':').map_or(name_tag, |(n, _)| n);
                format!("{name}@{digest}")
            }
            None => rest.to_owned(),
        };
        let access = Access {
            creds: authfile.map_or(Creds::Anonymous, |p| Creds::AuthFile(p.to_owned())),
            tls_verify: false,
            cert_dir: None,
        };
        matches!(
            testbed::digest_of_at(&self.backup_host, &access, &by_digest),
            Ok(Some(_))
        )
    }

    /// `(type, reason, note)` of the Events about one object; recorded in the transcript.
    pub fn events(&self, ns: &str, name: &str) -> Vec<(String, String, String)> {
        let api = Api::<Event>::namespaced(self.client.clone(), ns);
        let list = self
            .rt
            .block_on(api.list(&ListParams::default()))
            .expect("list events");
        let events: Vec<_> = list
            .items
            .into_iter()
            .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
            .map(|e| {
                (
                    e.type_.unwrap_or_default(),
                    e.reason.unwrap_or_default(),
                    e.note.unwrap_or_default(),
                )
            })
            .collect();
        for (t, r, n) in &events {
            self.record(&format!("event {ns}/{name}: {t} {r}: {n}"));
        }
        events
    }

    /// Waits until `check` holds, up to `timeout`.
    pub fn eventually(&self, timeout: Duration, what: &str, mut check: impl FnMut() -> bool) {
        let deadline = Instant::now() + timeout;
        while !check() {
            assert!(
                Instant::now() < deadline,
                "[{}] timed out after {timeout:?}: {what}",
                self.name
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

/// base64 of `user:password`, as a docker config's `auth` holds it.
pub fn auth_of(c: &Credentials) -> String {
    base64::engine::general_purpose::STANDARD.encode(c.to_creds_arg())
}
