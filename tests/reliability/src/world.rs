//! A fresh world: a Kubernetes API simulator, an empty backup registry behind a counting
//! proxy, a `tmp_dir`, a home, and `image-cloner` commands wired to them through a recording
//! skopeo.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use anyhow::{Context as _, Result, anyhow};
use serde_json::{Value, json};
use testbed::{Registry, RegistryOptions};

use crate::proxy::Proxy;

/// The programs the suite runs.
#[derive(Debug, Clone)]
pub struct Bins {
    pub cloner: PathBuf,
    pub recorder: PathBuf,
    pub skopeo: PathBuf,
}

impl Bins {
    /// `image-cloner` (`IMAGE_CLONER_BIN`, else the release build), `recorder` (the
    /// recording skopeo built with this crate) and the real skopeo on `PATH`.
    pub fn find(recorder: &Path) -> Result<Bins> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let cloner = std::env::var_os("IMAGE_CLONER_BIN")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join("target/release/image-cloner"));
        let recorder = recorder.to_owned();
        for p in [&cloner, &recorder] {
            if !p.is_file() {
                return Err(anyhow!(
                    "{} not found: build it first (make reliability does), or set IMAGE_CLONER_BIN",
                    p.display()
                ));
            }
        }
        let path = std::env::var_os("PATH").unwrap_or_default();
        let skopeo = std::env::split_paths(&path)
            .map(|d| d.join("skopeo"))
            .find(|p| p.is_file())
            .context("skopeo is not installed (make test-deps installs it)")?;
        Ok(Bins {
            cloner,
            recorder,
            skopeo,
        })
    }
}

pub struct World {
    pub sim: Arc<kube_sim::Sim>,
    pub dir: tempfile::TempDir,
    pub kubeconfig: PathBuf,
    pub tmp_dir: PathBuf,
    pub skopeo_log: PathBuf,
    pub backup: Registry,
    pub backup_proxy: Proxy,
    /// Registries reached over plain HTTP (the source's hosts are added by the caller).
    pub insecure: Vec<String>,
    bins: Bins,
}

impl World {
    pub fn new(bins: &Bins) -> Result<World> {
        World::with_backup(bins, RegistryOptions::default())
    }

    /// A world whose backup registry runs with `options` (credentials, TLS).
    pub fn with_backup(bins: &Bins, options: RegistryOptions) -> Result<World> {
        let sim = kube_sim::Sim::start(kube_sim::Options::default())
            .map_err(|e| anyhow!("starting the simulator: {e}"))?;
        // RELIABILITY_KEEP=1 keeps each world's directory (logs, configs, skopeo's argument
        // lists) for a look after a failure.
        let dir = tempfile::Builder::new()
            .prefix("reliability-")
            .disable_cleanup(std::env::var_os("RELIABILITY_KEEP").is_some())
            .tempdir()
            .context("a temp dir")?;
        let kubeconfig = dir.path().join("kubeconfig");
        sim.write_kubeconfig(&kubeconfig)
            .map_err(|e| anyhow!("writing the kubeconfig: {e}"))?;
        let tmp_dir = dir.path().join("tmp");
        std::fs::create_dir(&tmp_dir).context("tmp_dir")?;
        std::fs::create_dir(dir.path().join("home")).context("home")?;
        let backup = Registry::start(options).context("the backup registry")?;
        let backup_proxy = Proxy::start(&backup.host()).context("the backup proxy")?;
        Ok(World {
            sim: Arc::new(sim),
            kubeconfig,
            tmp_dir,
            skopeo_log: dir.path().join("skopeo-argv.log"),
            insecure: vec![backup_proxy.host().to_owned()],
            backup,
            backup_proxy,
            dir,
            bins: bins.clone(),
        })
    }

    /// `BACKUP_REGISTRY`: the backup, through its counting proxy.
    pub fn backup_registry(&self) -> String {
        format!("{}/mirror", self.backup_proxy.host())
    }

    /// A file or directory in the world's temp dir.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `image-cloner` with nothing but `PATH` and a `HOME` holding no configuration.
    pub fn bare_command(&self) -> Command {
        let mut cmd = Command::new(&self.bins.cloner);
        cmd.env_clear()
            .current_dir(self.dir.path())
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.path("home"));
        cmd
    }

    /// `image-cloner` with only the world's environment and `extra` (which wins).
    pub fn command(&self, extra: &[(&str, &str)]) -> Command {
        let mut cmd = Command::new(&self.bins.cloner);
        cmd.env_clear()
            .current_dir(self.dir.path())
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.path("home"))
            .env("BACKUP_REGISTRY", self.backup_registry())
            .env("IMAGE_CLONER_KUBECONFIG", &self.kubeconfig)
            .env("IMAGE_CLONER_INSECURE_REGISTRIES", self.insecure.join(","))
            .env("IMAGE_CLONER_TMP_DIR", &self.tmp_dir)
            .env("IMAGE_CLONER_SKOPEO", &self.bins.recorder)
            .env("IMAGE_CLONER_METRICS_ADDRESS", "127.0.0.1:0")
            .env("IMAGE_CLONER_LOG_LEVEL", "info")
            .env("RELIABILITY_SKOPEO_LOG", &self.skopeo_log)
            .env("RELIABILITY_REAL_SKOPEO", &self.bins.skopeo);
        for (k, v) in extra {
            cmd.env(k, v);
        }
        cmd
    }

    pub fn store(&self) -> &kube_sim::Store {
        self.sim.store()
    }

    pub fn namespace(&self, name: &str, annotations: Value) -> Result<()> {
        let body = json!({"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": name, "annotations": annotations}});
        self.store()
            .create(kube_sim::store::resource("namespaces"), "", body, false)
            .map(|_| ())
            .map_err(|e| anyhow!("creating namespace {name}: {e:?}"))
    }

    /// Creates an object straight in the simulator's store (no request the daemon's counts
    /// would see).
    pub fn create(&self, obj: Value) -> Result<()> {
        let r = resource_of(&obj)?;
        let ns = obj["metadata"]["namespace"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        self.store()
            .create(r, &ns, obj, false)
            .map(|_| ())
            .map_err(|e| anyhow!("creating an object in {ns}: {e:?}"))
    }

    pub fn get(&self, plural: &str, ns: &str, name: &str) -> Option<Value> {
        self.store()
            .get(kube_sim::store::resource(plural), ns, name)
            .ok()
            .map(|o| (*o).clone())
    }

    /// Every object of a resource in `ns`.
    pub fn list(&self, plural: &str, ns: Option<&str>) -> Vec<Value> {
        self.store()
            .list(
                kube_sim::store::resource(plural),
                ns,
                &kube_sim::store::ListOptions::default(),
            )
            .map(|page| page.items.iter().map(|o| (**o).clone()).collect())
            .unwrap_or_default()
    }

    /// What image-cloner left in `tmp_dir`.
    pub fn tmp_entries(&self) -> Vec<String> {
        entries(&self.tmp_dir)
    }
}

pub fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

fn resource_of(obj: &Value) -> Result<&'static kube_sim::resources::ResourceType> {
    let kind = obj["kind"].as_str().unwrap_or_default();
    kube_sim::resources::of_kind(kind).ok_or_else(|| anyhow!("no resource for kind {kind:?}"))
}

/// The workload kinds the suite creates, with their plural and where their pod spec is.
pub const KINDS: &[(&str, &str)] = &[
    ("Deployment", "deployments"),
    ("StatefulSet", "statefulsets"),
    ("DaemonSet", "daemonsets"),
    ("CronJob", "cronjobs"),
    ("ReplicaSet", "replicasets"),
];

/// The pod spec of a stored workload of resource `plural`.
pub fn pod_spec<'a>(plural: &str, obj: &'a Value) -> &'a Value {
    match plural {
        "pods" => &obj["spec"],
        "cronjobs" => &obj["spec"]["jobTemplate"]["spec"]["template"]["spec"],
        _ => &obj["spec"]["template"]["spec"],
    }
}

/// `(container, image)` of a workload: containers then init containers.
pub fn containers(plural: &str, obj: &Value) -> Vec<(String, String)> {
    let spec = pod_spec(plural, obj);
    ["containers", "initContainers"]
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
