//! The demo's section on the admission webhooks, self-contained: a daemon of its own with the
//! mutating webhook on and the validating one on `deny`, registered by `url:` as from a bastion
//! host. `kubectl create` of a Deployment on an image already copied is stored on the copy at
//! generation 1 — created after the daemon started, it never ran its public image — and one on
//! an image not in the backup is refused until the copy the refusal queued is verified, after
//! which the same command succeeds, on the copy too.
//!
//! Every line it prints is an expectation checked first ([`Checks`]): a mismatch is named in
//! the demo's verdict.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use demo::check::{Checks, Expect};
use demo::{Daemon, cloner_command, free_port, heading, kube_client, require_programs, tail};
use serde_json::{Value, json};
use testbed::{Access, ImageSpec, PushOptions};

use crate::cluster::Cluster;
use crate::observe::{self, Backup};

const NAMESPACE: &str = "shop";
const ORIGINAL_IMAGES: &str = "image-cloner.io/original-images";
/// How long the copy a refusal queued may take to be verified.
const COPY_WITHIN: Duration = Duration::from_secs(60);

/// What the section needs from the demo.
pub struct Inputs<'a> {
    pub cloner: &'a Path,
    pub home: &'a Path,
    /// The daemon's settings of the sections before.
    pub env: &'a [(&'static str, String)],
    pub kubeconfig: &'a Path,
    pub source: &'a str,
    pub backup: &'a str,
    /// An image the daemon of section 5 copied.
    pub copied: &'a str,
    pub work: &'a Path,
}

pub fn section(checks: &mut Checks, i: &Inputs<'_>) -> Result<()> {
    heading("Admission webhooks: new workloads created on the copy, or refused until copied");
    require_programs(&["kubectl"])?;
    let certs = testbed::tls::generate().context("a webhook certificate")?;
    let (cert, key) = (i.work.join("webhook.crt"), i.work.join("webhook.key"));
    std::fs::write(&cert, &certs.server_cert_pem)?;
    std::fs::write(&key, &certs.server_key_pem)?;
    let address = format!("127.0.0.1:{}", free_port()?);
    let mut env = i.env.to_vec();
    env.extend([
        ("IMAGE_CLONER_MUTATING_WEBHOOK", "on".to_owned()),
        ("IMAGE_CLONER_VALIDATING_WEBHOOK", "deny".to_owned()),
        ("IMAGE_CLONER_WEBHOOK_ADDRESS", address.clone()),
        ("IMAGE_CLONER_WEBHOOK_CERT_FILE", cert.display().to_string()),
        ("IMAGE_CLONER_WEBHOOK_KEY_FILE", key.display().to_string()),
    ]);
    let daemon = Daemon::start(
        cloner_command(i.cloner, i.home, &env),
        &i.work.join("webhooks.log"),
    )?;
    let serving = daemon.wait_for_log("serving the admission webhooks", Duration::from_secs(30))?;
    let held = checks.expect_that(
        "the webhooks' daemon log",
        format!("serving the admission webhooks on {address}"),
        serving.as_str(),
        serving.contains(&address),
    );
    if held {
        println!(
            "  image-cloner run with IMAGE_CLONER_MUTATING_WEBHOOK=on, IMAGE_CLONER_VALIDATING_WEBHOOK=deny: HTTPS on {address}"
        );
    }
    register(i, &address, &certs.ca_cert_pem)?;
    println!("  registered by url: https://{address}/mutate and /validate (failurePolicy: Ignore)");
    let result = created_and_denied(checks, i, &daemon);
    let status = daemon.stop(Duration::from_secs(10));
    result?;
    let exited = status.map_or("killed".into(), |s| s.to_string());
    if checks.expect_that(
        "the webhooks' daemon, stopped with SIGTERM",
        "exits 0",
        exited.as_str(),
        status.is_some_and(|s| s.success()),
    ) {
        println!("  daemon stopped ({exited})");
    }
    Ok(())
}

fn created_and_denied(checks: &mut Checks, i: &Inputs<'_>, daemon: &Daemon) -> Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("a tokio runtime")?;
    let client = rt.block_on(kube_client(i.kubeconfig))?;
    let cluster = Cluster { rt, client };
    let mut backup = Backup::new(i.backup);

    let out = create(i, "storefront", i.copied)?;
    print_created(checks, "storefront", &out);
    on_the_copy(checks, &cluster, &mut backup, "storefront", i.copied)?;

    let image = push_new_image(i.source)?;
    let out = create(i, "blog", &image)?;
    print_refused(checks, &cluster, &image, &out, daemon)?;

    let file = i.work.join("blog.json").display().to_string();
    let started = Instant::now();
    let verified = daemon.wait_until(COPY_WITHIN, || {
        let dry_run = kubectl(i, &["create", "-f", &file, "--dry-run=server"])?;
        Ok(dry_run.status.success())
    })?;
    let took = started.elapsed().as_secs_f64();
    if checks.expect_that(
        "the copy the refusal queued",
        format!("verified within {}s", COPY_WITHIN.as_secs()),
        if verified {
            format!("after {took:.1} s")
        } else {
            format!(
                "not verified; end of the daemon's log:\n{}",
                tail(&daemon.log(), 10)
            )
        },
        verified,
    ) {
        println!(
            "  the copy the refusal queued is verified after {took:.1} s; the same command again:"
        );
    }
    let out = create(i, "blog", &image)?;
    print_created(checks, "blog", &out);
    on_the_copy(checks, &cluster, &mut backup, "blog", &image)
}

fn kubectl(i: &Inputs<'_>, args: &[&str]) -> Result<Output> {
    Command::new("kubectl")
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", i.home)
        .env("KUBECONFIG", i.kubeconfig)
        .stdin(Stdio::null())
        .output()
        .context("running kubectl")
}

fn write(i: &Inputs<'_>, name: &str, obj: &Value) -> Result<PathBuf> {
    let path = i.work.join(name);
    std::fs::write(&path, serde_json::to_vec_pretty(obj)?)?;
    Ok(path)
}

/// Registers both webhooks, calling the daemon at `address` with the CA in `ca_pem`.
fn register(i: &Inputs<'_>, address: &str, ca_pem: &str) -> Result<()> {
    use base64::Engine as _;
    let ca = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    for (kind, name, path) in [
        ("MutatingWebhookConfiguration", "mutate", "/mutate"),
        ("ValidatingWebhookConfiguration", "validate", "/validate"),
    ] {
        let obj = json!({
            "apiVersion": "admissionregistration.k8s.io/v1", "kind": kind,
            "metadata": {"name": "image-cloner"},
            "webhooks": [{
                "name": format!("{name}.image-cloner.io"),
                "clientConfig": {"url": format!("https://{address}{path}"), "caBundle": ca},
                "rules": [{"operations": ["CREATE", "UPDATE"], "apiGroups": ["apps"], "apiVersions": ["v1"],
                           "resources": ["deployments", "statefulsets", "daemonsets", "replicasets"]}],
                "namespaceSelector": {"matchExpressions": [{"key": "kubernetes.io/metadata.name",
                    "operator": "NotIn", "values": ["kube-system"]}]},
                "failurePolicy": "Ignore", "sideEffects": "None", "timeoutSeconds": 5,
                "admissionReviewVersions": ["v1"],
            }],
        });
        let file = write(i, &format!("{name}-webhook.json"), &obj)?;
        let out = kubectl(i, &["create", "-f", &file.display().to_string()])?;
        if !out.status.success() {
            bail!(
                "registering the {kind}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    Ok(())
}

/// `kubectl create -f` of a Deployment, printed as typed; kubectl's output.
fn create(i: &Inputs<'_>, name: &str, image: &str) -> Result<Output> {
    let obj = demo::workload("Deployment", NAMESPACE, name, &[("web", image)], &[], &[]);
    let file = write(i, &format!("{name}.json"), &obj)?;
    let command = format!("kubectl create -f {name}.json");
    println!("  $ {command:<34} # Deployment {NAMESPACE}/{name}, image {image}");
    kubectl(i, &["create", "-f", &file.display().to_string()])
}

/// kubectl's one line for a created Deployment, checked, then printed.
fn print_created(checks: &mut Checks, name: &str, out: &Output) {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let wanted = format!("deployment.apps/{name} created");
    let observed = format!(
        "{}: {:?} {:?}",
        out.status,
        stdout.trim_end(),
        String::from_utf8_lossy(&out.stderr).trim_end()
    );
    if checks.expect_that(
        format!("kubectl create of Deployment {NAMESPACE}/{name}"),
        format!("succeeds, printing {wanted:?}"),
        observed,
        out.status.success() && stdout.trim_end() == wanted,
    ) {
        println!("  {wanted}");
    }
}

/// The refusal of `image`, checked (it names the image and its backup copy, says the copy is
/// queued, and nothing was stored), then printed a sentence a line.
fn print_refused(
    checks: &mut Checks,
    cluster: &Cluster,
    image: &str,
    out: &Output,
    daemon: &Daemon,
) -> Result<()> {
    let stderr = String::from_utf8_lossy(&out.stderr);
    let refusal = stderr
        .lines()
        .find(|l| l.contains("denied the request"))
        .unwrap_or_default();
    let stored = cluster.get("Deployment", NAMESPACE, "blog").is_ok();
    let says = [image, "its backup copy will be", "copies are queued"];
    let held = checks.expect_that(
        format!("kubectl create of Deployment {NAMESPACE}/blog"),
        format!("refused by the validating webhook, naming {image} and its backup copy, saying the copy is queued; nothing stored"),
        format!("{}: {stderr:?}; stored: {stored}", out.status),
        !out.status.success() && !stored && says.iter().all(|s| refusal.contains(s)),
    );
    if !held {
        println!(
            "  NOT refused as expected; end of the daemon's log:\n{}",
            tail(&daemon.log(), 10)
        );
        return Ok(());
    }
    for sentence in refusal.split(". ") {
        println!("  | {sentence}");
    }
    Ok(())
}

/// The stored Deployment, checked and printed: its container runs the copy the backup serves
/// at the digest it pins, and it was created so (generation 1, the original recorded).
fn on_the_copy(
    checks: &mut Checks,
    cluster: &Cluster,
    backup: &mut Backup,
    name: &str,
    image: &str,
) -> Result<()> {
    let before = [("web", image.to_owned())];
    let rows = observe::workload(
        cluster,
        backup,
        ("Deployment", NAMESPACE, name),
        &before,
        Expect::Patched,
    )?;
    observe::record_and_print(checks, rows);
    let stored = cluster.get("Deployment", NAMESPACE, name)?;
    let generation = stored["metadata"]["generation"]
        .as_i64()
        .unwrap_or_default();
    let recorded = stored["metadata"]["annotations"][ORIGINAL_IMAGES]
        .as_str()
        .unwrap_or_default();
    if checks.expect_that(
        format!("Deployment {NAMESPACE}/{name}, as stored"),
        format!("generation 1, {image} recorded as its original"),
        format!("generation {generation}, {ORIGINAL_IMAGES}: {recorded:?}"),
        generation == 1 && recorded.contains(image),
    ) {
        println!(
            "  generation 1: created on the copy, it never ran {image}; the original is recorded for restore"
        );
    }
    Ok(())
}

/// An image nobody has run yet: in the source registry, not in the backup.
fn push_new_image(source: &str) -> Result<String> {
    let built = ImageSpec::new("library/httpd", 11)
        .with_layers(2, 64 * 1024)
        .build()
        .context("building library/httpd:2.4")?;
    let access = Access {
        tls_verify: false,
        ..Default::default()
    };
    testbed::push_to(
        &built,
        source,
        &access,
        "library/httpd",
        "2.4",
        PushOptions::default(),
    )
    .context("pushing library/httpd:2.4")?;
    let image = format!("{source}/library/httpd:2.4");
    println!("  {image} pushed to the public registry just now");
    Ok(image)
}
