//! For the webhook tests: the daemon's webhook settings (a certificate from `testbed::tls`, a
//! fixed loopback port so that a restarted daemon is found at the same URL), the two webhook
//! configurations registered by `url:` as an operator on a bastion host would, and kubectl
//! with the test cluster's kubeconfig.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::e2e::Env;

/// The label of the namespaces the test's webhook configurations select.
pub const SELECTOR_LABEL: &str = "image-cloner-test/webhooks";

/// A free loopback port, one no outgoing connection takes before the daemon binds it.
pub fn free_port() -> u16 {
    testbed::free_port().expect("a free port")
}

/// Where the daemon serves its webhooks in a test, and with which certificate.
pub struct Hooks {
    pub port: u16,
    pub ca_pem: String,
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    _dir: tempfile::TempDir,
}

impl Hooks {
    pub fn new() -> Hooks {
        let certs = testbed::tls::generate().expect("certificates");
        let dir = tempfile::tempdir().expect("a temp dir");
        let cert_file = dir.path().join("tls.crt");
        let key_file = dir.path().join("tls.key");
        std::fs::write(&cert_file, &certs.server_cert_pem).expect("write the certificate");
        std::fs::write(&key_file, &certs.server_key_pem).expect("write the key");
        Hooks {
            port: free_port(),
            ca_pem: certs.ca_cert_pem,
            cert_file,
            key_file,
            _dir: dir,
        }
    }

    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The daemon's settings: both webhooks on, `validating` as given, the certificate files.
    pub fn settings(&self, validating: &str) -> Vec<(&'static str, String)> {
        vec![
            ("IMAGE_CLONER_MUTATING_WEBHOOK", "on".into()),
            ("IMAGE_CLONER_VALIDATING_WEBHOOK", validating.into()),
            ("IMAGE_CLONER_WEBHOOK_ADDRESS", self.address()),
            (
                "IMAGE_CLONER_WEBHOOK_CERT_FILE",
                self.cert_file.display().to_string(),
            ),
            (
                "IMAGE_CLONER_WEBHOOK_KEY_FILE",
                self.key_file.display().to_string(),
            ),
        ]
    }

    pub fn ca_bundle(&self) -> String {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(&self.ca_pem)
    }
}

/// The rules of both webhooks: the workload kinds on create and update, Pods on create. Jobs
/// and CronJobs in both batch versions (a 1.20 server serves CronJob as batch/v1beta1).
fn rules() -> Value {
    let ops = json!(["CREATE", "UPDATE"]);
    json!([
        {"operations": ops, "apiGroups": ["apps"], "apiVersions": ["v1"],
         "resources": ["deployments", "statefulsets", "daemonsets", "replicasets"]},
        {"operations": ops, "apiGroups": ["batch"], "apiVersions": ["v1", "v1beta1"],
         "resources": ["jobs", "cronjobs"]},
        {"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"]}
    ])
}

/// The MutatingWebhookConfiguration and ValidatingWebhookConfiguration named `image-cloner`,
/// calling `https://ADDRESS/mutate` and `/validate`; `ca_bundle` None leaves it to the daemon.
pub fn configurations(address: &str, ca_bundle: Option<&str>) -> Vec<Value> {
    let webhook = |name: &str, path: &str| {
        let mut client = json!({"url": format!("https://{address}{path}")});
        if let Some(ca) = ca_bundle {
            client["caBundle"] = json!(ca);
        }
        json!({
            "name": name,
            "clientConfig": client,
            "rules": rules(),
            "failurePolicy": "Ignore",
            "sideEffects": "None",
            "timeoutSeconds": 5,
            "admissionReviewVersions": ["v1"],
            "namespaceSelector": {"matchLabels": {SELECTOR_LABEL: "on"}},
        })
    };
    vec![
        json!({
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "MutatingWebhookConfiguration",
            "metadata": {"name": "image-cloner"},
            "webhooks": [webhook("mutate.image-cloner.io", "/mutate")],
        }),
        json!({
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingWebhookConfiguration",
            "metadata": {"name": "image-cloner"},
            "webhooks": [webhook("validate.image-cloner.io", "/validate")],
        }),
    ]
}

/// kubectl with the test cluster's kubeconfig and nothing else from the environment.
pub struct Kubectl {
    kubeconfig: PathBuf,
    pub dir: tempfile::TempDir,
}

impl Kubectl {
    pub fn new(env: &Env) -> Kubectl {
        Kubectl {
            kubeconfig: env.kubeconfig.clone(),
            dir: tempfile::tempdir().expect("a temp dir"),
        }
    }

    pub fn run(&self, args: &[&str]) -> Output {
        Command::new("kubectl")
            .args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", self.dir.path())
            .env("KUBECONFIG", &self.kubeconfig)
            .stdin(Stdio::null())
            .output()
            .expect("run kubectl (Debian's kubernetes-client)")
    }

    /// Writes `obj` to a file named after it and runs `kubectl create -f FILE -o json`, plus
    /// `extra` arguments.
    pub fn create(&self, obj: &Value, extra: &[&str]) -> Output {
        let name = obj["metadata"]["name"].as_str().unwrap_or("object");
        let kind = obj["kind"].as_str().unwrap_or("object").to_lowercase();
        let file = self.dir.path().join(format!("{kind}-{name}.json"));
        std::fs::write(&file, serde_json::to_vec(obj).expect("json")).expect("write");
        let mut args = vec!["create", "-f", file.to_str().expect("utf-8"), "-o", "json"];
        args.extend_from_slice(extra);
        self.run(&args)
    }

    /// Applies JSON objects (cluster-scoped or with their namespace).
    pub fn apply(&self, objects: &[Value]) {
        for obj in objects {
            let out = self.create(obj, &[]);
            assert!(
                out.status.success(),
                "kubectl create: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

/// Waits until `check` holds, up to `limit`.
pub fn wait(limit: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !check() {
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?}: {what}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}
