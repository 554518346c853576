//! `make demo`, the admission webhooks: a daemon of its own with the mutating webhook on and the
//! validating one on `deny`, registered by `url:` as from a bastion host; `kubectl create` of a
//! Deployment on an image already copied comes out on the copy (generation 1: it never ran the
//! public image), and one on an image not in the backup is refused until its queued copy is
//! verified, after which the same command succeeds. Every line printed is checked first: a
//! mismatch ends the demo with its subject, what was expected and what was observed.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use demo::{Daemon, cloner_command, free_port, heading, require_programs, tail};
use serde_json::{Value, json};
use testbed::{Access, ImageSpec, PushOptions};

/// What the section needs from the rest of the demo.
pub struct Setup<'a> {
    pub cloner: &'a Path,
    pub home: &'a Path,
    /// The daemon's environment in the sections before.
    pub env: &'a [(&'a str, String)],
    pub work: &'a Path,
    pub kubeconfig: &'a Path,
    pub source: &'a str,
    pub backup: &'a str,
    /// An image the daemon of section 5 copied.
    pub copied: &'a str,
}

/// A mismatch, named: `subject: expected …, observed …`.
fn expect(subject: &str, expected: &str, observed: &str, held: bool) -> Result<()> {
    if !held {
        bail!("{subject}: expected {expected}, observed {observed}");
    }
    Ok(())
}

/// kubectl's one line of output for a created Deployment, checked before it is printed.
fn print_created(name: &str, out: &Output) -> Result<()> {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let wanted = format!("deployment.apps/{name} created");
    expect(
        &format!("kubectl create of Deployment shop/{name}"),
        &format!("succeeds, printing {wanted:?}"),
        &format!(
            "{} {:?} {:?}",
            out.status,
            stdout.trim_end(),
            String::from_utf8_lossy(&out.stderr).trim_end()
        ),
        out.status.success() && stdout.trim_end() == wanted,
    )?;
    println!("  {wanted}");
    Ok(())
}

fn kubectl(s: &Setup, args: &[&str]) -> Result<Output> {
    Command::new("kubectl")
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", s.home)
        .env("KUBECONFIG", s.kubeconfig)
        .stdin(Stdio::null())
        .output()
        .context("running kubectl")
}

fn write(s: &Setup, name: &str, obj: &Value) -> Result<PathBuf> {
    let path = s.work.join(name);
    std::fs::write(&path, serde_json::to_vec_pretty(obj)?)?;
    Ok(path)
}

/// Registers both webhooks, calling the daemon at `address` with the CA in `ca_pem`.
fn register(s: &Setup, address: &str, ca_pem: &str) -> Result<()> {
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
        let file = write(s, &format!("{name}-webhook.json"), &obj)?;
        let out = kubectl(s, &["create", "-f", &file.display().to_string()])?;
        if !out.status.success() {
            bail!(
                "registering the {kind}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    Ok(())
}

fn deployment(name: &str, image: &str) -> Value {
    demo::workload("Deployment", "shop", name, &[("web", image)], &[], &[])
}

/// `kubectl create -f` of a Deployment, printed as typed; its output and the stored object.
fn create(s: &Setup, name: &str, image: &str) -> Result<(Output, Option<Value>)> {
    let file = write(s, &format!("{name}.json"), &deployment(name, image))?;
    let command = format!("kubectl create -f {name}.json");
    println!("  $ {command:<34} # Deployment shop/{name}, image {image}");
    let out = kubectl(s, &["create", "-f", &file.display().to_string()])?;
    let stored = kubectl(s, &["-n", "shop", "get", "deployment", name, "-o", "json"])?;
    let stored = stored
        .status
        .success()
        .then(|| serde_json::from_slice(&stored.stdout).ok())
        .flatten();
    Ok((out, stored))
}

/// Prints and checks that `stored` runs a verified copy of `image` and has run nothing else.
fn show_on_copy(s: &Setup, stored: &Value, image: &str) -> Result<()> {
    let now = stored["spec"]["template"]["spec"]["containers"][0]["image"]
        .as_str()
        .unwrap_or_default();
    let generation = stored["metadata"]["generation"]
        .as_i64()
        .unwrap_or_default();
    let recorded = stored["metadata"]["annotations"]["image-cloner.io/original-images"]
        .as_str()
        .unwrap_or_default();
    let name = stored["metadata"]["name"].as_str().unwrap_or_default();
    let subject = format!("the stored Deployment shop/{name}");
    expect(
        &subject,
        &format!("a copy in {} pinned to a digest", s.backup),
        now,
        now.starts_with(&format!("{}/", s.backup)) && now.contains("@sha256:"),
    )?;
    expect(
        &subject,
        &format!("generation 1, {image} recorded as its original"),
        &format!("generation {generation}, original images {recorded:?}"),
        generation == 1 && recorded.contains(image),
    )?;
    println!("  stored image: {now}");
    println!(
        "  generation 1: created on the copy, it never ran {image}; the original is recorded for restore"
    );
    Ok(())
}

/// Section 11, self-contained: its own daemon, webhook configurations and workloads.
pub fn section(s: &Setup) -> Result<()> {
    heading("11. Admission webhooks: new workloads created on the copy, or refused until copied");
    require_programs(&["kubectl"])?;
    let certs = testbed::tls::generate().context("a webhook certificate")?;
    let (cert, key) = (s.work.join("webhook.crt"), s.work.join("webhook.key"));
    std::fs::write(&cert, &certs.server_cert_pem)?;
    std::fs::write(&key, &certs.server_key_pem)?;
    let address = format!("127.0.0.1:{}", free_port()?);
    let mut env = s.env.to_vec();
    env.extend([
        ("IMAGE_CLONER_MUTATING_WEBHOOK", "on".to_owned()),
        ("IMAGE_CLONER_VALIDATING_WEBHOOK", "deny".to_owned()),
        ("IMAGE_CLONER_WEBHOOK_ADDRESS", address.clone()),
        ("IMAGE_CLONER_WEBHOOK_CERT_FILE", cert.display().to_string()),
        ("IMAGE_CLONER_WEBHOOK_KEY_FILE", key.display().to_string()),
    ]);
    let daemon = Daemon::start(
        cloner_command(s.cloner, s.home, &env),
        &s.work.join("webhooks.log"),
    )?;
    let serving = daemon.wait_for_log("serving the admission webhooks", Duration::from_secs(30))?;
    expect(
        "the daemon's log",
        &format!("serving the admission webhooks on {address}"),
        &serving,
        serving.contains(&address),
    )?;
    println!(
        "  image-cloner run with IMAGE_CLONER_MUTATING_WEBHOOK=on, IMAGE_CLONER_VALIDATING_WEBHOOK=deny: HTTPS on {address}"
    );
    register(s, &address, &certs.ca_cert_pem)?;
    println!("  registered by url: https://{address}/mutate and /validate (failurePolicy: Ignore)");
    let result = created_and_denied(s, &daemon);
    let status = daemon.stop(Duration::from_secs(10));
    result?;
    let exited = status.map_or("killed".into(), |s| s.to_string());
    expect(
        "the webhooks' daemon, stopped with SIGTERM",
        "exits 0",
        &exited,
        status.is_some_and(|s| s.success()),
    )?;
    println!("  daemon stopped ({exited})");
    Ok(())
}

fn created_and_denied(s: &Setup, daemon: &Daemon) -> Result<()> {
    let (out, stored) = create(s, "storefront", s.copied)?;
    print_created("storefront", &out)?;
    show_on_copy(s, &stored.context("the Deployment is stored")?, s.copied)?;

    let image = push_new_image(s)?;
    let (out, stored) = create(s, "blog", &image)?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    let refused = stderr
        .lines()
        .find(|l| l.contains("denied the request"))
        .unwrap_or_default();
    let names = [
        image.as_str(),
        "its backup copy will be",
        "copies are queued",
    ];
    expect(
        "kubectl create of Deployment shop/blog",
        &format!(
            "refused by the validating webhook, naming {image} and its backup copy; nothing stored"
        ),
        &format!("{} {stderr:?}, stored: {}", out.status, stored.is_some()),
        !out.status.success() && stored.is_none() && names.iter().all(|n| refused.contains(n)),
    )
    .with_context(|| format!("end of the daemon's log:\n{}", tail(&daemon.log(), 10)))?;
    for line in refused.split(". ") {
        println!("  | {line}");
    }
    let file = s.work.join("blog.json").display().to_string();
    let started = Instant::now();
    while !kubectl(s, &["create", "-f", &file, "--dry-run=server"])?
        .status
        .success()
    {
        if started.elapsed() > Duration::from_secs(60) {
            bail!(
                "the queued copy was not verified within 60 s:\n{}",
                tail(&daemon.log(), 10)
            );
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    println!(
        "  the copy the refusal queued is verified after {:.1} s; the same command again:",
        started.elapsed().as_secs_f64()
    );
    let (out, stored) = create(s, "blog", &image)?;
    print_created("blog", &out)?;
    show_on_copy(s, &stored.context("the Deployment is stored")?, &image)
}

/// An image nobody has run yet: in the source registry, not in the backup.
fn push_new_image(s: &Setup) -> Result<String> {
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
        s.source,
        &access,
        "library/httpd",
        "2.4",
        PushOptions::default(),
    )
    .context("pushing library/httpd:2.4")?;
    let image = format!("{}/library/httpd:2.4", s.source);
    println!("  {image} pushed to the public registry: not in the backup yet");
    Ok(image)
}
