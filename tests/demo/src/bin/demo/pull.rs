//! The demo's section on a private backup registry, self-contained: its own backup registry
//! with a password (htpasswd), a docker config holding that registry's credentials and another
//! registry's, a fresh namespace with one Deployment, and `image-cloner run --once` with
//! `pull_secret`. It shows the provisioned Secret by name, type and host — never its content —
//! and checks what it shows: the Deployment patched together with its `imagePullSecrets`, the
//! Secret's only host the backup, its credentials pulling the copy (anonymously it cannot), and
//! no password in anything image-cloner printed.

use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{Context as _, Result, bail, ensure};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DynamicObject, GroupVersionKind, PostParams};
use kube::discovery::ApiResource;
use serde_json::{Value, json};
use testbed::{Credentials, Registry, RegistryOptions};

use demo::{cloner_command, guard, heading, kube_client, workload};

const NAMESPACE: &str = "payments";
const SECRET: &str = "image-cloner-pull";

/// What the section needs from the demo: the binary, a HOME, the cluster, the public
/// registry's host and one of its images, and a directory for its files.
pub struct Inputs<'a> {
    pub cloner: &'a Path,
    pub home: &'a Path,
    pub kubeconfig: &'a Path,
    pub source: &'a str,
    pub image: &'a str,
    pub work: &'a Path,
}

/// The private backup registry and the docker config holding its credentials.
struct Private {
    backup: String,
    password: String,
    docker_config: std::path::PathBuf,
}

pub fn section(i: &Inputs<'_>) -> Result<()> {
    heading("Pulling from a private backup: a pull secret in each namespace image-cloner patches");
    let private = start_private_backup(i.work)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("a tokio runtime")?;
    let client = rt.block_on(kube_client(i.kubeconfig))?;
    create(&rt, &client, namespace_object())?;
    let api = workload(
        "Deployment",
        NAMESPACE,
        "api",
        &[("api", i.image)],
        &[],
        &[],
    );
    create(&rt, &client, api)?;
    println!("  Deployment {NAMESPACE}/api runs {}", i.image);
    run_once(i, &private)?;
    let image = show_deployment(&rt, &client, &private.backup)?;
    let bytes = show_secret(&rt, &client, &private.backup)?;
    let authfile = i.work.join("private-backup/from-the-secret.json");
    std::fs::write(&authfile, &bytes).context("writing the Secret's docker config")?;
    let by_digest = by_digest(&image)?;
    ensure!(
        pulls(&by_digest, Some(&authfile))?,
        "the Secret's credentials do not pull {by_digest}"
    );
    ensure!(
        !pulls(&by_digest, None)?,
        "the backup answers anonymous pulls"
    );
    println!("  skopeo inspect {by_digest}: with the Secret's credentials OK, anonymously refused");
    Ok(())
}

fn start_private_backup(work: &Path) -> Result<Private> {
    let password = format!("demo-{}-password", std::process::id());
    let robot = Credentials::new("backup-robot", password.as_str());
    let backup = guard().keep_registry(
        Registry::start(RegistryOptions {
            auth: Some(robot.clone()),
            ..Default::default()
        })
        .context("starting the private backup registry")?,
    )?;
    let docker_config = work.join("private-backup/config.json");
    let elsewhere = Credentials::new("someone-else", format!("{password}-elsewhere"));
    testbed::write_docker_config(
        &docker_config,
        &[
            (&backup, &robot),
            ("registry.elsewhere.example", &elsewhere),
        ],
    )
    .context("writing the docker config")?;
    println!(
        "  private backup   http://{backup}  (htpasswd: anonymous pulls get 401)\n  docker config    credentials for {backup} and registry.elsewhere.example"
    );
    Ok(Private {
        backup,
        password,
        docker_config,
    })
}

/// `image-cloner run --once` with `pull_secret`; what it printed holds no password.
fn run_once(i: &Inputs<'_>, private: &Private) -> Result<()> {
    let backup = &private.backup;
    let env: Vec<(&str, String)> = vec![
        ("BACKUP_REGISTRY", format!("{backup}/mirror")),
        ("IMAGE_CLONER_NAMESPACES", NAMESPACE.into()),
        (
            "IMAGE_CLONER_KUBECONFIG",
            i.kubeconfig.display().to_string(),
        ),
        (
            "IMAGE_CLONER_DOCKER_CONFIG",
            private.docker_config.display().to_string(),
        ),
        (
            "IMAGE_CLONER_INSECURE_REGISTRIES",
            format!("{},{backup}", i.source),
        ),
        ("IMAGE_CLONER_PULL_SECRET", SECRET.into()),
        ("IMAGE_CLONER_LOG_LEVEL", "warn".into()),
    ];
    println!("  image-cloner run --once with IMAGE_CLONER_PULL_SECRET={SECRET}:");
    let out = cloner_command(i.cloner, i.home, &env)
        .args(["run", "--once"])
        .output()
        .context("running image-cloner run --once")?;
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    for line in printed.lines() {
        println!("    {line}");
    }
    ensure!(out.status.success(), "image-cloner run --once failed");
    ensure!(
        !printed.contains(&private.password),
        "image-cloner printed a password"
    );
    Ok(())
}

/// The patched Deployment's image and `imagePullSecrets`, shown and checked; its image.
fn show_deployment(
    rt: &tokio::runtime::Runtime,
    client: &kube::Client,
    backup: &str,
) -> Result<String> {
    let deployment = get_deployment(rt, client)?;
    let spec = &deployment["spec"]["template"]["spec"];
    let image = spec["containers"][0]["image"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let pull_secrets = spec["imagePullSecrets"].clone();
    println!("  Deployment {NAMESPACE}/api now runs {image}");
    println!("    imagePullSecrets: {pull_secrets}");
    ensure!(
        image.starts_with(&format!("{backup}/")),
        "not patched to the backup: {image}"
    );
    ensure!(
        pull_secrets == json!([{ "name": SECRET }]),
        "imagePullSecrets is {pull_secrets}"
    );
    Ok(image)
}

/// The pull secret by name, type, label and host — never its content — checked to hold the
/// backup's entry only; its `.dockerconfigjson`.
fn show_secret(
    rt: &tokio::runtime::Runtime,
    client: &kube::Client,
    backup: &str,
) -> Result<Vec<u8>> {
    let secret = rt
        .block_on(Api::<Secret>::namespaced(client.clone(), NAMESPACE).get_opt(SECRET))
        .context("reading the pull secret")?
        .with_context(|| format!("no Secret {NAMESPACE}/{SECRET}"))?;
    let bytes = secret
        .data
        .as_ref()
        .and_then(|d| d.get(".dockerconfigjson"))
        .map(|b| b.0.clone())
        .context("the Secret has no .dockerconfigjson")?;
    let config: Value = serde_json::from_slice(&bytes).context("the Secret's docker config")?;
    let hosts: Vec<String> = config["auths"]
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    let labels = secret.metadata.labels.clone().unwrap_or_default();
    println!(
        "  Secret {NAMESPACE}/{SECRET}: type {}, label app.kubernetes.io/managed-by={}, docker config for: {}  (content not shown)",
        secret.type_.as_deref().unwrap_or_default(),
        labels
            .get("app.kubernetes.io/managed-by")
            .map_or("", String::as_str),
        hosts.join(", ")
    );
    ensure!(hosts == [backup.to_owned()], "the Secret holds {hosts:?}");
    Ok(bytes)
}

fn namespace_object() -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
}

fn deployments(client: &kube::Client) -> Api<DynamicObject> {
    let r = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("apps", "v1", "Deployment"),
        "deployments",
    );
    Api::namespaced_with(client.clone(), NAMESPACE, &r)
}

fn create(rt: &tokio::runtime::Runtime, client: &kube::Client, obj: Value) -> Result<()> {
    let kind = obj["kind"].as_str().unwrap_or_default().to_owned();
    let dynamic: DynamicObject = serde_json::from_value(obj).context("an object")?;
    let result = if kind == "Namespace" {
        let r = ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("", "v1", "Namespace"),
            "namespaces",
        );
        rt.block_on(
            Api::<DynamicObject>::all_with(client.clone(), &r)
                .create(&PostParams::default(), &dynamic),
        )
    } else {
        rt.block_on(deployments(client).create(&PostParams::default(), &dynamic))
    };
    result.with_context(|| format!("creating a {kind}"))?;
    Ok(())
}

fn get_deployment(rt: &tokio::runtime::Runtime, client: &kube::Client) -> Result<Value> {
    let obj = rt
        .block_on(deployments(client).get("api"))
        .context("reading the Deployment")?;
    Ok(serde_json::to_value(obj)?)
}

/// `repo@digest` from `repo:tag@digest` (skopeo takes one or the other).
fn by_digest(image: &str) -> Result<String> {
    let Some((name_tag, digest)) = image.split_once('@') else {
        bail!("{image} is not pinned to a digest");
    };
    let name = name_tag.rsplit_once(':').map_or(name_tag, |(n, _)| n);
    Ok(format!("{name}@{digest}"))
}

/// Whether `skopeo inspect` reads `image` with the docker config at `authfile` (or none).
fn pulls(image: &str, authfile: Option<&Path>) -> Result<bool> {
    let mut cmd = Command::new("skopeo");
    cmd.args(["inspect", "--raw", "--tls-verify=false"]);
    match authfile {
        Some(path) => cmd.arg("--authfile").arg(path),
        None => cmd.arg("--no-creds"),
    };
    let out = cmd
        .arg(format!("docker://{image}"))
        .stdin(Stdio::null())
        .output()
        .context("running skopeo inspect")?;
    Ok(out.status.success())
}
