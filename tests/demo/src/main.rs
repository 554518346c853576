//! `make demo`: image-cloner end to end on this machine — the Kubernetes API simulator, a
//! "public" and a backup registry (real docker-registry processes), real multi-arch images,
//! workloads of every kind, `image-cloner plan`, then `image-cloner run` until converged, its
//! metrics, what changed, and proof with skopeo that every patched image resolves in the backup;
//! then the admission webhooks ([`webhooks`]).
//! Everything it starts is stopped and removed at the end, on failure and on Ctrl-C.

use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use demo::{
    Daemon, cloner_command, containers_of, guard, heading, interrupted, kube_client,
    require_programs, secs, sibling_binary, tail, workload,
};
use kube::api::GroupVersionKind;
use kube::api::{Api, DynamicObject, ListParams, PostParams};
use kube::discovery::ApiResource;
use serde_json::{Value, json};
use testbed::{Access, ImageSpec, Platform, PushOptions, Registry, RegistryOptions};

mod webhooks;

const ORIGINAL_IMAGES: &str = "image-cloner.io/original-images";
const CONVERGE_TIMEOUT: Duration = Duration::from_secs(120);

fn main() -> ExitCode {
    if let Err(e) = demo::clean_up_on_signals() {
        eprintln!("demo: {e:#}");
        return ExitCode::FAILURE;
    }
    let result = run();
    if interrupted() {
        // The signal thread is cleaning up and exits the process.
        loop {
            std::thread::sleep(Duration::from_secs(1));
        }
    }
    heading("Cleanup");
    guard().cleanup();
    println!("  daemon stopped, registries stopped, temporary directories removed");
    match result {
        Ok(()) => {
            println!("\nDemo OK.");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("\ndemo FAILED: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// What the daemon is expected to do with a workload.
#[derive(Clone, Copy, PartialEq)]
enum Expect {
    Patched,
    Left(&'static str),
}

struct Sample {
    kind: &'static str,
    ns: &'static str,
    name: &'static str,
    containers: Vec<(&'static str, String)>,
    init: Vec<(&'static str, String)>,
    annotations: Vec<(&'static str, &'static str)>,
    expect: Expect,
}

fn resource(kind: &str) -> Result<ApiResource> {
    let Some(r) = kube_sim::resources::of_kind(kind) else {
        bail!("no resource for kind {kind}");
    };
    Ok(ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(r.group, r.version, r.kind),
        r.plural,
    ))
}

struct Cluster {
    rt: tokio::runtime::Runtime,
    client: kube::Client,
}

impl Cluster {
    fn api(&self, kind: &str, ns: Option<&str>) -> Result<Api<DynamicObject>> {
        let r = resource(kind)?;
        Ok(match ns {
            Some(ns) => Api::namespaced_with(self.client.clone(), ns, &r),
            None => Api::all_with(self.client.clone(), &r),
        })
    }

    fn create(&self, obj: Value) -> Result<()> {
        let kind = obj["kind"].as_str().unwrap_or_default().to_owned();
        let ns = obj["metadata"]["namespace"].as_str().map(str::to_owned);
        let name = obj["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let api = self.api(&kind, ns.as_deref())?;
        let dynamic: DynamicObject = serde_json::from_value(obj).context("an object")?;
        self.rt
            .block_on(api.create(&PostParams::default(), &dynamic))
            .with_context(|| format!("creating {kind} {name}"))?;
        Ok(())
    }

    fn get(&self, kind: &str, ns: &str, name: &str) -> Result<Value> {
        let obj = self
            .rt
            .block_on(self.api(kind, Some(ns))?.get(name))
            .with_context(|| format!("reading {kind} {ns}/{name}"))?;
        Ok(serde_json::to_value(obj)?)
    }
}

fn run() -> Result<()> {
    println!(
        "image-cloner demo: copies the images Kubernetes workloads run into a backup registry,"
    );
    println!(
        "verifies them, then points the workloads at the copies. Everything below runs on this"
    );
    println!("machine: a Kubernetes API simulator, two real registries, real images, real skopeo.");

    require_programs(&["skopeo", "docker-registry"])?;
    let cloner = sibling_binary("image-cloner", "IMAGE_CLONER_BIN")?;
    let work = guard().temp_dir("image-cloner-demo-")?;
    let home = work.join("home");
    // Registry credentials as an operator would have them (none needed here).
    std::fs::create_dir_all(home.join(".docker"))?;
    std::fs::write(home.join(".docker/config.json"), "{\"auths\": {}}\n")?;

    heading("1. Cluster and registries");
    let sim = kube_sim::Sim::start(kube_sim::Options::default())
        .context("starting the Kubernetes API simulator")?;
    let kubeconfig = work.join("kubeconfig");
    sim.write_kubeconfig(&kubeconfig)?;
    let source = guard().keep_registry(
        Registry::start(RegistryOptions::default()).context("starting the source registry")?,
    )?;
    let backup = guard().keep_registry(
        Registry::start(RegistryOptions::default()).context("starting the backup registry")?,
    )?;
    println!(
        "  Kubernetes API   {}  (kube-sim, bearer token; kubeconfig in a temp dir)",
        sim.url()
    );
    println!("  public registry  http://{source}  (docker-registry, plays docker.io)");
    println!("  backup registry  http://{backup}  (docker-registry, copies go under /mirror)");

    heading("2. Public images (built here: OCI image indexes for linux/amd64 + linux/arm64)");
    let access = Access {
        tls_verify: false,
        ..Default::default()
    };
    let mut refs = Vec::new();
    for (i, (repo, tag)) in [
        ("library/nginx", "1.27"),
        ("library/redis", "7.4"),
        ("library/busybox", "1.36"),
    ]
    .into_iter()
    .enumerate()
    {
        let image = ImageSpec::new(repo, i as u64 + 1)
            .with_platforms(vec![Platform::linux_amd64(), Platform::linux_arm64()])
            .with_layers(2, 256 * 1024)
            .build()
            .with_context(|| format!("building {repo}:{tag}"))?;
        let digest = testbed::push_to(
            &image,
            &source,
            &access,
            repo,
            tag,
            PushOptions {
                all: true,
                ..Default::default()
            },
        )
        .with_context(|| format!("pushing {repo}:{tag}"))?;
        let reference = format!("{source}/{repo}:{tag}");
        println!("  {reference:<42} {digest}");
        refs.push(reference);
    }
    let (nginx, redis, busybox) = (refs[0].clone(), refs[1].clone(), refs[2].clone());

    heading("3. Workloads");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("a tokio runtime")?;
    let client = rt.block_on(kube_client(&kubeconfig))?;
    let cluster = Cluster { rt, client };
    for (ns, annotations) in [
        ("shop", json!({})),
        ("batch", json!({})),
        ("legacy", json!({})),
        ("frozen", json!({"image-cloner.io/skip": "true"})),
    ] {
        cluster.create(json!({
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": ns, "annotations": annotations},
        }))?;
    }
    let samples = vec![
        Sample {
            kind: "Deployment",
            ns: "shop",
            name: "web",
            containers: vec![("nginx", nginx.clone()), ("cache", redis.clone())],
            init: vec![("migrate", busybox.clone())],
            annotations: vec![],
            expect: Expect::Patched,
        },
        Sample {
            kind: "StatefulSet",
            ns: "shop",
            name: "sessions",
            containers: vec![("redis", redis.clone())],
            init: vec![],
            annotations: vec![],
            expect: Expect::Patched,
        },
        Sample {
            kind: "DaemonSet",
            ns: "shop",
            name: "log-agent",
            containers: vec![("agent", busybox.clone())],
            init: vec![],
            annotations: vec![],
            expect: Expect::Patched,
        },
        Sample {
            kind: "ReplicaSet",
            ns: "shop",
            name: "old-frontend",
            containers: vec![("nginx", nginx.clone())],
            init: vec![],
            annotations: vec![],
            expect: Expect::Patched,
        },
        Sample {
            kind: "Pod",
            ns: "shop",
            name: "debug",
            containers: vec![("shell", busybox.clone())],
            init: vec![],
            annotations: vec![],
            expect: Expect::Patched,
        },
        Sample {
            kind: "Deployment",
            ns: "shop",
            name: "canary",
            containers: vec![("nginx", nginx.clone())],
            init: vec![],
            annotations: vec![("image-cloner.io/skip", "true")],
            expect: Expect::Left("opt-out (workload annotation)"),
        },
        Sample {
            kind: "CronJob",
            ns: "batch",
            name: "nightly-report",
            containers: vec![("report", busybox.clone())],
            init: vec![],
            annotations: vec![],
            expect: Expect::Patched,
        },
        Sample {
            kind: "Job",
            ns: "batch",
            name: "one-off-export",
            containers: vec![("export", redis.clone())],
            init: vec![],
            annotations: vec![],
            expect: Expect::Left("immutable: copied, not patched"),
        },
        Sample {
            kind: "Deployment",
            ns: "legacy",
            name: "old-web",
            containers: vec![("nginx", nginx.clone())],
            init: vec![],
            annotations: vec![],
            expect: Expect::Left("ignored namespace"),
        },
        Sample {
            kind: "Deployment",
            ns: "frozen",
            name: "frozen-web",
            containers: vec![("nginx", nginx.clone())],
            init: vec![],
            annotations: vec![],
            expect: Expect::Left("opt-out (namespace annotation)"),
        },
    ];
    println!(
        "  namespaces: shop, batch, legacy (in NAMESPACES_TO_IGNORE), frozen (annotated image-cloner.io/skip=true)"
    );
    println!(
        "  {:<8} {:<12} {:<16} {:<10} expected",
        "NS", "KIND", "NAME", "CONTAINERS"
    );
    for s in &samples {
        let c: Vec<(&str, &str)> = s.containers.iter().map(|(n, i)| (*n, i.as_str())).collect();
        let i: Vec<(&str, &str)> = s.init.iter().map(|(n, i)| (*n, i.as_str())).collect();
        cluster.create(workload(s.kind, s.ns, s.name, &c, &i, &s.annotations))?;
        let expect = match s.expect {
            Expect::Patched => "patched",
            Expect::Left(why) => why,
        };
        println!(
            "  {:<8} {:<12} {:<16} {:<10} {expect}",
            s.ns,
            s.kind,
            s.name,
            s.containers.len() + s.init.len()
        );
    }

    let env: Vec<(&str, String)> = vec![
        ("BACKUP_REGISTRY", format!("{backup}/mirror")),
        ("NAMESPACES_TO_IGNORE", "legacy".into()),
        ("IMAGE_CLONER_KUBECONFIG", kubeconfig.display().to_string()),
        (
            "IMAGE_CLONER_INSECURE_REGISTRIES",
            format!("{source},{backup}"),
        ),
        ("IMAGE_CLONER_BARE_PODS", "true".into()),
        ("IMAGE_CLONER_METRICS_ADDRESS", "127.0.0.1:0".into()),
        ("IMAGE_CLONER_LOG_LEVEL", "info".into()),
        ("IMAGE_CLONER_SHUTDOWN_GRACE", "5s".into()),
    ];

    heading("4. image-cloner plan (what run would do; writes and copies nothing)");
    println!("  settings (environment):");
    for (k, v) in &env {
        println!("    {k}={v}");
    }
    println!();
    let out = cloner_command(&cloner, &home, &env)
        .arg("plan")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .context("running image-cloner plan")?;
    if !out.status.success() {
        bail!(
            "image-cloner plan failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    print!("{}", String::from_utf8_lossy(&out.stdout));

    heading("5. image-cloner run (the daemon) until every patchable workload is patched");
    let daemon = Daemon::start(
        cloner_command(&cloner, &home, &env),
        &work.join("daemon.log"),
    )?;
    let metrics = daemon.metrics_address()?;
    println!("  daemon pid {}, /metrics on http://{metrics}", daemon.pid);
    let patchable: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.expect == Expect::Patched)
        .collect();
    let deadline = Instant::now() + CONVERGE_TIMEOUT;
    loop {
        let mut waiting = Vec::new();
        for s in &patchable {
            let obj = cluster.get(s.kind, s.ns, s.name)?;
            if obj["metadata"]["annotations"][ORIGINAL_IMAGES].is_null() {
                waiting.push(format!("{} {}/{}", s.kind, s.ns, s.name));
            }
        }
        if waiting.is_empty() {
            break;
        }
        daemon.check_alive()?;
        if Instant::now() > deadline {
            bail!(
                "not converged after {}s: still unpatched: {}; end of the daemon's log:\n{}",
                CONVERGE_TIMEOUT.as_secs(),
                waiting.join(", "),
                tail(&daemon.log(), 30)
            );
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    println!(
        "  converged in {}: {} workloads patched",
        secs(daemon.started.elapsed()),
        patchable.len()
    );
    let log = daemon.log();
    let warnings: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(" WARN ") || l.contains(" ERROR "))
        .collect();
    println!(
        "  daemon log: {} lines, {} warning(s)/error(s){}",
        log.lines().count(),
        warnings.len(),
        if warnings.is_empty() { "" } else { ":" }
    );
    for w in warnings.iter().take(10) {
        println!("    {w}");
    }

    heading("6. Metrics (one scrape of /metrics; histogram buckets left out)");
    let (text, _) = demo::scrape(&metrics)?;
    for line in text
        .lines()
        .filter(|l| l.starts_with("image_cloner_") && !l.contains("_bucket"))
    {
        println!("  {line}");
    }

    heading("7. Events");
    let events = cluster
        .rt
        .block_on(
            Api::<k8s_openapi::api::events::v1::Event>::all(cluster.client.clone())
                .list(&ListParams::default()),
        )
        .context("listing events")?;
    for e in &events.items {
        let regarding = e.regarding.as_ref();
        println!(
            "  {:<7} {:<21} {}/{} {}",
            e.type_.as_deref().unwrap_or_default(),
            e.reason.as_deref().unwrap_or_default(),
            regarding
                .and_then(|r| r.kind.as_deref())
                .unwrap_or_default(),
            regarding
                .and_then(|r| r.name.as_deref())
                .unwrap_or_default(),
            shorten(e.note.as_deref().unwrap_or_default(), 90),
        );
    }

    heading("8. Before and after");
    println!("  digests shortened to 12 hex digits here; section 9 shows them in full");
    let rows = before_after(&cluster, &samples)?;
    let widths = [9, 11, 14, 9];
    let w_before = rows.iter().map(|r| r.4.len()).max().unwrap_or(6).max(6);
    println!(
        "  {:<w0$} {:<w1$} {:<w2$} {:<w3$} {:<wb$}  AFTER",
        "NAMESPACE",
        "KIND",
        "NAME",
        "CONTAINER",
        "BEFORE",
        w0 = widths[0],
        w1 = widths[1],
        w2 = widths[2],
        w3 = widths[3],
        wb = w_before
    );
    for (ns, kind, name, container, before, after) in &rows {
        println!(
            "  {ns:<w0$} {kind:<w1$} {name:<w2$} {container:<w3$} {before:<wb$}  {}",
            short_digest(after),
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2],
            w3 = widths[3],
            wb = w_before
        );
    }

    heading("9. Proof: every patched image resolves in the backup registry at its pinned digest");
    let mut pinned: Vec<String> = Vec::new();
    for s in &patchable {
        let obj = cluster.get(s.kind, s.ns, s.name)?;
        for (container, image) in containers_of(&obj) {
            if !image.starts_with(&format!("{backup}/")) {
                bail!(
                    "{} {}/{} container {container} runs {image}, not a backup image",
                    s.kind,
                    s.ns,
                    s.name
                );
            }
            if !pinned.contains(&image) {
                pinned.push(image);
            }
        }
    }
    for image in &pinned {
        let (name_tag, digest) = image
            .split_once('@')
            .with_context(|| format!("{image} is not pinned to a digest"))?;
        // skopeo takes a tag or a digest, not both: ask by digest.
        let name = match name_tag.rsplit_once(':') {
            Some((name, tag)) if !tag.contains('/') => name,
            _ => name_tag,
        };
        let out = Command::new("skopeo")
            .args(["inspect", "--raw", "--tls-verify=false"])
            .arg(format!("docker://{name}@{digest}"))
            .stdin(Stdio::null())
            .output()
            .context("running skopeo inspect")?;
        if !out.status.success() {
            bail!(
                "skopeo inspect --raw docker://{name}@{digest} failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        let found = testbed::manifest_digest(&out.stdout);
        if found != digest {
            bail!("{image}: the backup registry serves {found}, not the pinned {digest}");
        }
        let manifest: Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        let platforms = manifest["manifests"].as_array().map_or(1, Vec::len);
        println!("  {name_tag:<62} {digest}  OK ({platforms} platforms)");
    }
    println!(
        "  ({} images checked with `skopeo inspect --raw`: sha256 of the manifest = the pinned digest)",
        pinned.len()
    );

    heading("10. Stopping the daemon (SIGTERM)");
    let status = daemon.stop(Duration::from_secs(10));
    println!(
        "  image-cloner run exited: {}",
        status.map_or("killed".into(), |s| s.to_string())
    );
    webhooks::section(&webhooks::Setup {
        cloner: &cloner,
        home: &home,
        env: &env,
        work: &work,
        kubeconfig: &kubeconfig,
        source: &source,
        backup: &backup,
        copied: &nginx,
    })?;
    drop(sim);
    Ok(())
}

type Row = (String, String, String, String, String, String);

fn before_after(cluster: &Cluster, samples: &[Sample]) -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    for s in samples {
        let obj = cluster.get(s.kind, s.ns, s.name)?;
        let before: Vec<(&str, &str)> = s
            .init
            .iter()
            .chain(s.containers.iter())
            .map(|(n, i)| (*n, i.as_str()))
            .collect();
        let now = containers_of(&obj);
        for (container, image) in before {
            let current = now
                .iter()
                .find(|(n, _)| n == container)
                .map(|(_, i)| i.clone())
                .unwrap_or_default();
            let after = if current == image {
                match s.expect {
                    Expect::Left(why) => format!("unchanged: {why}"),
                    Expect::Patched => "unchanged (!)".into(),
                }
            } else {
                current
            };
            rows.push((
                s.ns.to_owned(),
                s.kind.to_owned(),
                s.name.to_owned(),
                container.to_owned(),
                image.to_owned(),
                after,
            ));
        }
    }
    Ok(rows)
}

fn short_digest(image: &str) -> String {
    match image.split_once("@sha256:") {
        Some((name, hex)) if hex.len() > 12 => format!("{name}@sha256:{}…", &hex[..12]),
        _ => image.to_owned(),
    }
}

fn shorten(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        format!("{}…", s.chars().take(max).collect::<String>())
    }
}
