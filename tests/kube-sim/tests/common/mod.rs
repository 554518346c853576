//! The two API servers the fidelity tests run against — the simulator (always) and the real
//! kube-apiserver of `../shared/envtest` (when `KUBEBUILDER_ASSETS` is set) — and the
//! helpers that let one scenario run on both and compare what a client sees.

#![allow(dead_code, clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use kube_sim::envtest::Envtest;
use kube_sim::{Options, Sim};
use serde_json::{Map, Value};

/// One API server under test.
pub struct Cluster {
    pub name: &'static str,
    pub kubeconfig: PathBuf,
    pub sim: Option<Sim>,
    _envtest: Option<Envtest>,
    _dir: tempfile::TempDir,
}

impl Cluster {
    pub fn sim() -> Cluster {
        let sim = Sim::start(Options::default()).expect("start the simulator");
        let dir = tempfile::tempdir().expect("temp dir");
        let kubeconfig = dir.path().join("kubeconfig");
        sim.write_kubeconfig(&kubeconfig).expect("kubeconfig");
        Cluster {
            name: "kube-sim",
            kubeconfig,
            sim: Some(sim),
            _envtest: None,
            _dir: dir,
        }
    }

    pub fn envtest() -> Option<Cluster> {
        let env = Envtest::start()?;
        Some(Cluster {
            name: "envtest (kube-apiserver 1.20)",
            kubeconfig: env.kubeconfig(),
            sim: None,
            _envtest: Some(env),
            _dir: tempfile::tempdir().expect("temp dir"),
        })
    }

    pub fn is_sim(&self) -> bool {
        self.sim.is_some()
    }

    pub async fn client(&self) -> kube::Client {
        let kc = kube::config::Kubeconfig::read_from(&self.kubeconfig).expect("read kubeconfig");
        let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
            .await
            .expect("kubeconfig");
        kube::Client::try_from(config).expect("client")
    }

    /// kubectl with this cluster's kubeconfig and nothing from the environment.
    pub fn kubectl(&self, args: &[&str]) -> Output {
        self.kubectl_cmd(args).output().expect("run kubectl")
    }

    pub fn kubectl_cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("kubectl");
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", self._dir.path())
            .env("KUBECONFIG", &self.kubeconfig)
            .args(args)
            .stdin(Stdio::null());
        cmd
    }
}

/// The simulator and, when available, the real API server.
pub fn clusters() -> Vec<Cluster> {
    let mut out = vec![Cluster::sim()];
    out.extend(Cluster::envtest());
    out
}

/// A raw request: status code and the JSON body.
pub async fn raw(
    client: &kube::Client,
    method: &str,
    path: &str,
    content_type: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let bytes = body
        .map(|b| serde_json::to_vec(&b).unwrap())
        .unwrap_or_default();
    let req = http::Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", content_type)
        .body(bytes)
        .unwrap();
    let resp = client
        .send(req.map(kube::client::Body::from))
        .await
        .expect("send");
    let code = resp.status().as_u16();
    let body = resp.into_body().collect_bytes().await.expect("read body");
    (code, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

/// A raw request with a body in any media type (protobuf), and what it `accept`s: status
/// code and the JSON body.
pub async fn raw_bytes(
    client: &kube::Client,
    method: &str,
    path: &str,
    content_type: &str,
    accept: &str,
    body: Vec<u8>,
) -> (u16, Value) {
    let req = http::Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", content_type)
        .header("accept", accept)
        .body(body)
        .unwrap();
    let resp = client
        .send(req.map(kube::client::Body::from))
        .await
        .expect("send");
    let code = resp.status().as_u16();
    let body = resp.into_body().collect_bytes().await.expect("read body");
    (code, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

/// What of a Status matters to a client: code, reason, the details' kind/group/name and the
/// fields and reasons of its causes (messages carry Go-formatted values and are not compared).
pub fn status_essence(v: &Value) -> Value {
    let causes: Vec<Value> = v["details"]["causes"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| serde_json::json!({"reason": c["reason"], "field": c["field"]}))
        .collect();
    serde_json::json!({
        "code": v["code"],
        "reason": v["reason"],
        "status": v["status"],
        "kind": v["details"]["kind"],
        "group": v["details"]["group"],
        "name": v["details"]["name"],
        "causes": causes,
    })
}

/// An object without what the server generates: uid, timestamps, resourceVersion,
/// managedFields.
pub fn without_noise(v: &Value) -> Value {
    let mut v = v.clone();
    if let Some(m) = v["metadata"].as_object_mut() {
        for k in [
            "uid",
            "creationTimestamp",
            "resourceVersion",
            "managedFields",
            "selfLink",
        ] {
            m.remove(k);
        }
    }
    v
}

/// `real` reduced to the keys `sim` has, recursively: the real server defaults many fields
/// the simulator leaves out; everything the simulator does store must be what the real
/// server stores.
pub fn project(real: &Value, sim: &Value) -> Value {
    match (real, sim) {
        (Value::Object(r), Value::Object(s)) => {
            let mut out = Map::new();
            for (k, sv) in s {
                if let Some(rv) = r.get(k) {
                    out.insert(k.clone(), project(rv, sv));
                }
            }
            Value::Object(out)
        }
        (Value::Array(r), Value::Array(s)) if r.len() == s.len() => {
            Value::Array(r.iter().zip(s).map(|(r, s)| project(r, s)).collect())
        }
        _ => real.clone(),
    }
}

pub fn wait_for(timeout: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}
