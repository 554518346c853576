//! The end-to-end environment: a Kubernetes API server (whichever kind), a source and a backup
//! registry, test images, and `image-cloner` run against them as an operator would.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::events::v1::Event;
use kube::api::GroupVersionKind;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::discovery::ApiResource;
use kube::{Client, Config};
use serde_json::{Value, json};
use testbed::Registry;

use super::cluster::Envtest;
use super::throttle::Throttle;
use super::{cloner_head_uris, flat, logged_registry, multi_arch, push_all, small_image};

/// How many namespaces the daemon scenarios add to the cluster (on the simulator and envtest),
/// so that the daemon's namespace list is slower than its workload lists.
pub const FILLER_NAMESPACES: usize = 300;

/// Source images every scenario can use, with their digests.
pub struct Images {
    /// A two-platform image.
    pub multi: (String, String),
    /// Single-platform images.
    pub app: (String, String),
    pub sidecar: (String, String),
    pub init: (String, String),
}

/// An image whose copy is slow enough to be caught in the middle (see [`Env::slow_image`]).
pub struct SlowImage {
    /// Serves the source registry slowly; the image is named through it.
    pub proxy: Throttle,
    /// `<proxy>/<repo>:1.0`, as a workload names it.
    pub image: String,
    /// `IMAGE_CLONER_INSECURE_REGISTRIES` reaching the source, the proxy and the backup.
    pub insecure: String,
}

pub struct Env {
    pub name: &'static str,
    pub kubeconfig: PathBuf,
    pub source: Registry,
    backup: std::sync::Mutex<Registry>,
    pub backup_host: String,
    pub images: Images,
    pub client: Client,
    pub rt: tokio::runtime::Runtime,
    /// Whether the server serves batch/v1 CronJob (Kubernetes ≥ 1.21).
    pub cronjobs: bool,
    home: tempfile::TempDir,
    /// The simulator, when the suite runs on it: faults and request counters.
    pub sim: Option<kube_sim::Sim>,
    /// A real cluster the operator pointed the suite at: nothing is added to it but `e2e-*`
    /// namespaces the scenarios need.
    pub real: bool,
    /// The shared envtest this Env runs on, held until the Env is dropped (declared last, so
    /// dropped last).
    envtest: Option<Arc<Envtest>>,
}

/// What a scenario's `image-cloner` command is given.
pub struct ClonerSetup<'a> {
    pub home: &'a Path,
    pub kubeconfig: &'a Path,
    pub backup_registry: &'a str,
    /// The loopback registries, plain HTTP.
    pub registries: &'a [&'a str],
    pub namespaces: &'a [&'a str],
}

/// `image-cloner` in a clean environment holding only what `setup` names (no retries, metrics
/// on a free port, stdin closed): the caller adds its own settings.
pub fn cloner_command(setup: ClonerSetup<'_>) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_image-cloner"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", setup.home)
        .env("BACKUP_REGISTRY", setup.backup_registry)
        .env("IMAGE_CLONER_KUBECONFIG", setup.kubeconfig)
        .env("IMAGE_CLONER_NAMESPACES", setup.namespaces.join(","))
        .env(
            "IMAGE_CLONER_INSECURE_REGISTRIES",
            setup.registries.join(","),
        )
        .env("IMAGE_CLONER_RETRY_TIMES", "0")
        .env("IMAGE_CLONER_METRICS_ADDRESS", "127.0.0.1:0")
        .env("IMAGE_CLONER_LOG_LEVEL", "info")
        .stdin(Stdio::null());
    cmd
}

impl Env {
    pub fn new(name: &'static str, kubeconfig: &Path) -> Env {
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
        let cronjobs = rt
            .block_on(client.list_api_group_resources("batch/v1"))
            .map(|l| l.resources.iter().any(|r| r.name == "cronjobs"))
            .unwrap_or(false);
        // Both log their requests: a scenario counts image-cloner's questions to each.
        let source = logged_registry();
        let backup = logged_registry();
        let push = |spec: &testbed::ImageSpec, repo: &str, tag: &str| {
            let digest = push_all(&source, spec, repo, tag);
            (format!("{}/{repo}:{tag}", source.host()), digest)
        };
        let images = Images {
            multi: push(&multi_arch("multi", 1), "team/web", "1.27"),
            app: push(&small_image("app", 2), "team/app", "2.0"),
            sidecar: push(&small_image("sidecar", 3), "proxy", "v1"),
            init: push(&small_image("init", 4), "tools/migrate", "0.3"),
        };
        Env {
            name,
            kubeconfig: kubeconfig.to_owned(),
            source,
            backup_host: backup.host(),
            backup: std::sync::Mutex::new(backup),
            images,
            client,
            rt,
            cronjobs,
            home: tempfile::tempdir().expect("a temp HOME"),
            sim: None,
            real: false,
            envtest: None,
        }
    }

    /// The suite on the shared envtest (kept running while this Env lives).
    pub fn on_envtest(envtest: Arc<Envtest>) -> Env {
        let mut env = Env::new("envtest", &envtest.kubeconfig());
        env.envtest = Some(envtest);
        env
    }

    /// The suite on a real cluster.
    pub fn on_real_cluster(kubeconfig: &Path) -> Env {
        let mut env = Env::new("real cluster", kubeconfig);
        env.real = true;
        env
    }

    /// The suite on a fresh simulator.
    pub fn on_simulator(dir: &Path) -> Env {
        let sim = kube_sim::Sim::start(kube_sim::Options::default()).expect("start kube-sim");
        let kubeconfig = dir.join("kubeconfig");
        sim.write_kubeconfig(&kubeconfig)
            .expect("write the kubeconfig");
        let mut env = Env::new("kube-sim", &kubeconfig);
        env.sim = Some(sim);
        env
    }

    /// Pushes a new single-platform image to the source registry; returns its reference.
    pub fn push_fresh(&self, repo: &str, seed: u64) -> String {
        push_all(&self.source, &small_image(repo, seed), repo, "1");
        format!("{}/{repo}:1", self.source.host())
    }

    /// The references image-cloner sent manifest HEADs for in `repo`, in the source
    /// registry's request log.
    pub fn cloner_heads_in_source(&self, repo: &str) -> Vec<String> {
        cloner_heads(&self.source, &format!("/v2/{repo}/manifests/"))
    }

    /// The references image-cloner sent manifest HEADs for in `repo`'s copy (flat naming), in
    /// the backup registry's request log.
    pub fn cloner_heads_in_backup(&self, repo: &str) -> Vec<String> {
        let copy = format!("/v2/{}/manifests/", flat(&self.source, repo));
        let mut heads = Vec::new();
        self.backup_control(|backup| heads = cloner_heads(backup, &copy));
        heads
    }

    pub fn backup_registry(&self) -> String {
        format!("{}/mirror", self.backup_host)
    }

    /// Stops, restarts... the backup registry (same port, same content).
    pub fn backup_control(&self, f: impl FnOnce(&mut Registry)) {
        let mut guard = self
            .backup
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut guard);
    }

    /// `<repo>:1.0`, two layers of `layer_bytes`, pushed to the source and named through a
    /// proxy that sends it at `bytes_per_second` per connection.
    pub fn slow_image(
        &self,
        repo: &str,
        seed: u64,
        layer_bytes: usize,
        bytes_per_second: usize,
    ) -> SlowImage {
        let proxy = Throttle::start(&self.source.host(), bytes_per_second);
        let spec = testbed::ImageSpec::new(repo, seed).with_layers(2, layer_bytes);
        push_all(&self.source, &spec, repo, "1.0");
        let image = format!("{}/{repo}:1.0", proxy.host());
        let insecure = format!(
            "{},{},{}",
            self.source.host(),
            proxy.host(),
            self.backup_host
        );
        SlowImage {
            proxy,
            image,
            insecure,
        }
    }

    /// `image-cloner` with the cluster, the registries and `extra` settings, confined to
    /// `namespaces` (so that scenarios, and a real cluster's own workloads, are left alone).
    pub fn cloner(&self, namespaces: &[&str], extra: &[(&str, &str)]) -> Command {
        let mut cmd = cloner_command(ClonerSetup {
            home: self.home.path(),
            kubeconfig: &self.kubeconfig,
            backup_registry: &self.backup_registry(),
            registries: &[&self.source.host(), &self.backup_host],
            namespaces,
        });
        for (k, v) in extra {
            cmd.env(k, v);
        }
        cmd
    }

    pub fn run(&self, namespaces: &[&str], extra: &[(&str, &str)], args: &[&str]) -> Output {
        self.cloner(namespaces, extra)
            .args(args)
            .output()
            .expect("run image-cloner")
    }

    /// Creates a namespace (one that exists already is left as it is).
    pub fn namespace(&self, name: &str, annotations: &[(&str, &str)]) {
        let annotations: BTreeMap<&str, &str> = annotations.iter().copied().collect();
        self.rt.block_on(self.create_namespace(name, &annotations));
    }

    async fn create_namespace(&self, name: &str, annotations: &BTreeMap<&str, &str>) {
        let ns: Namespace = serde_json::from_value(json!({
            "metadata": {"name": name, "annotations": annotations}
        }))
        .expect("a namespace");
        let api = Api::<Namespace>::all(self.client.clone());
        match api.create(&PostParams::default(), &ns).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 409 => {}
            Err(e) => panic!("creating namespace {name}: {e}"),
        }
    }

    /// At least [`FILLER_NAMESPACES`] namespaces besides the scenarios' own (not on a real
    /// cluster, which has its own): the daemon's namespace list then takes longer than its
    /// workload lists, so a reconcile that did not wait for it would plan without the opt-outs.
    pub fn fill_namespaces(&self) {
        if self.real {
            return;
        }
        let api = Api::<Namespace>::all(self.client.clone());
        let present: std::collections::BTreeSet<String> = self
            .rt
            .block_on(api.list(&ListParams::default()))
            .expect("list namespaces")
            .items
            .into_iter()
            .filter_map(|n| n.metadata.name)
            .collect();
        let missing: Vec<String> = (0..FILLER_NAMESPACES)
            .map(|i| format!("e2e-filler-{i:03}"))
            .filter(|n| !present.contains(n))
            .collect();
        let none = BTreeMap::new();
        self.rt.block_on(
            futures::stream::iter(missing).for_each_concurrent(32, |name| {
                let none = &none;
                async move { self.create_namespace(&name, none).await }
            }),
        );
    }

    /// Sets (`Some`) or removes (`None`) an annotation of a namespace, as
    /// `kubectl annotate namespace` does.
    pub fn annotate_namespace(&self, name: &str, key: &str, value: Option<&str>) {
        let api = Api::<Namespace>::all(self.client.clone());
        let patch = json!({"metadata": {"annotations": {key: value}}});
        self.rt
            .block_on(api.patch(name, &PatchParams::default(), &Patch::Merge(&patch)))
            .unwrap_or_else(|e| panic!("annotating namespace {name}: {e}"));
    }

    /// Sets or removes an annotation of a workload, as `kubectl annotate` does.
    pub fn annotate(&self, kind: &str, ns: &str, name: &str, key: &str, value: Option<&str>) {
        let patch = json!({"metadata": {"annotations": {key: value}}});
        self.rt
            .block_on(self.api(kind, ns).patch(
                name,
                &PatchParams::default(),
                &Patch::Merge(&patch),
            ))
            .unwrap_or_else(|e| panic!("annotating {kind} {ns}/{name}: {e}"));
    }

    /// On the simulator: the writes made to one object, as its request log recorded them
    /// (`resource` is the plural, `deployments`). Empty elsewhere.
    pub fn writes_to(&self, resource: &str, ns: &str, name: &str) -> Vec<kube_sim::RequestRecord> {
        let Some(sim) = &self.sim else {
            return Vec::new();
        };
        sim.faults()
            .requests()
            .into_iter()
            .filter(|r| {
                r.is_write() && r.resource == resource && r.namespace == ns && r.name == name
            })
            .collect()
    }

    fn resource(kind: &str) -> ApiResource {
        let r = kube_sim::resources::of_kind(kind)
            .unwrap_or_else(|| panic!("no resource for kind {kind}"));
        ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk(r.group, r.version, r.kind),
            r.plural,
        )
    }

    fn api(&self, kind: &str, ns: &str) -> Api<DynamicObject> {
        Api::namespaced_with(self.client.clone(), ns, &Self::resource(kind))
    }

    /// Creates a workload from JSON (its `kind` and `metadata.namespace` say where).
    pub fn create(&self, obj: Value) -> Value {
        let kind = obj["kind"].as_str().expect("kind").to_owned();
        let ns = obj["metadata"]["namespace"]
            .as_str()
            .expect("namespace")
            .to_owned();
        let dynamic: DynamicObject = serde_json::from_value(obj).expect("an object");
        let created = self
            .rt
            .block_on(
                self.api(&kind, &ns)
                    .create(&PostParams::default(), &dynamic),
            )
            .unwrap_or_else(|e| panic!("creating {kind} {ns}: {e}"));
        serde_json::to_value(created).expect("json")
    }

    /// Creates many workloads, 32 requests at a time.
    pub fn create_many(&self, objects: Vec<Value>) {
        self.rt.block_on(async {
            futures::stream::iter(objects)
                .map(|obj| async move {
                    let kind = obj["kind"].as_str().expect("kind").to_owned();
                    let ns = obj["metadata"]["namespace"]
                        .as_str()
                        .expect("ns")
                        .to_owned();
                    let dynamic: DynamicObject = serde_json::from_value(obj).expect("an object");
                    self.api(&kind, &ns)
                        .create(&PostParams::default(), &dynamic)
                        .await
                        .unwrap_or_else(|e| panic!("creating {kind} in {ns}: {e}"));
                })
                .buffer_unordered(32)
                .collect::<Vec<()>>()
                .await;
        });
    }

    /// `(name, generation, first container image)` of every workload of a kind in `ns`.
    pub fn generations(&self, kind: &str, ns: &str) -> Vec<(String, i64, String)> {
        let list = self
            .rt
            .block_on(self.api(kind, ns).list(&ListParams::default()))
            .expect("list");
        list.items
            .into_iter()
            .map(|o| {
                let v = serde_json::to_value(&o).expect("json");
                (
                    o.metadata.name.clone().unwrap_or_default(),
                    o.metadata.generation.unwrap_or_default(),
                    v["spec"]["template"]["spec"]["containers"][0]["image"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                )
            })
            .collect()
    }

    /// How many workloads of a kind in `ns` run their copy in the backup registry (their first
    /// container).
    pub fn on_copies(&self, kind: &str, ns: &str) -> usize {
        let backup = self.backup_registry();
        self.generations(kind, ns)
            .iter()
            .filter(|(_, _, image)| image.starts_with(&backup))
            .count()
    }

    pub fn get(&self, kind: &str, ns: &str, name: &str) -> Value {
        let obj = self
            .rt
            .block_on(self.api(kind, ns).get(name))
            .unwrap_or_else(|e| panic!("getting {kind} {ns}/{name}: {e}"));
        serde_json::to_value(obj).expect("json")
    }

    /// The images of a workload's pod spec: containers then init containers.
    pub fn images(&self, kind: &str, ns: &str, name: &str) -> Vec<String> {
        let obj = self.get(kind, ns, name);
        let spec = match kind {
            "Pod" => &obj["spec"],
            "CronJob" => &obj["spec"]["jobTemplate"]["spec"]["template"]["spec"],
            _ => &obj["spec"]["template"]["spec"],
        };
        ["containers", "initContainers"]
            .iter()
            .flat_map(|list| spec[list].as_array().cloned().unwrap_or_default())
            .map(|c| c["image"].as_str().unwrap_or_default().to_owned())
            .collect()
    }

    pub fn resource_version(&self, kind: &str, ns: &str, name: &str) -> String {
        self.get(kind, ns, name)["metadata"]["resourceVersion"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// `(type, reason, note)` of the Events about one object.
    pub fn events(&self, ns: &str, name: &str) -> Vec<(String, String, String)> {
        let api = Api::<Event>::namespaced(self.client.clone(), ns);
        let list = self
            .rt
            .block_on(api.list(&ListParams::default()))
            .expect("list events");
        list.items
            .into_iter()
            .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
            .map(|e| {
                (
                    e.type_.unwrap_or_default(),
                    e.reason.unwrap_or_default(),
                    e.note.unwrap_or_default(),
                )
            })
            .collect()
    }

    /// Deletes every workload of these kinds in `ns` (namespaces themselves never finish
    /// deleting on a server without controllers).
    pub fn clear(&self, ns: &str) {
        for kind in [
            "Deployment",
            "StatefulSet",
            "DaemonSet",
            "ReplicaSet",
            "Job",
            "CronJob",
            "Pod",
        ] {
            if kind == "CronJob" && !self.cronjobs {
                continue;
            }
            let api = self.api(kind, ns);
            let _ = self.rt.block_on(
                api.delete_collection(&DeleteParams::background(), &ListParams::default()),
            );
        }
    }

    /// Whether `image` (exactly as written into a workload) is in the backup registry at the
    /// digest it pins: the proof a patched workload can run.
    pub fn resolves_in_backup(&self, image: &str) -> bool {
        let Some(rest) = image.strip_prefix(&format!("{}/", self.backup_host)) else {
            return false;
        };
        let (name_tag, digest) = match rest.split_once('@') {
            Some((n, d)) => (n, Some(d)),
            None => (rest, None),
        };
        let found = {
            let backup = self
                .backup
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            testbed::digest_of(&backup, name_tag)
        };
        let Ok(Some(found)) = found else {
            return false;
        };
        digest.is_none_or(|d| d == found)
    }

    /// Waits until `check` holds, up to `timeout`.
    pub fn eventually(&self, timeout: Duration, what: &str, mut check: impl FnMut() -> bool) {
        let deadline = Instant::now() + timeout;
        while !check() {
            assert!(
                Instant::now() < deadline,
                "timed out after {timeout:?}: {what}"
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// What follows `prefix` (a manifests URI) in each HEAD image-cloner sent there: the tag or
/// digest asked for, from `registry`'s request log.
fn cloner_heads(registry: &Registry, prefix: &str) -> Vec<String> {
    cloner_head_uris(registry)
        .iter()
        .filter_map(|uri| uri.strip_prefix(prefix).map(str::to_owned))
        .collect()
}
