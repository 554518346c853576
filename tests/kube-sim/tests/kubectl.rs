//! kubectl against the simulator through the kubeconfig it writes — and, when
//! `KUBEBUILDER_ASSETS` is set, the same commands against the real kube-apiserver, with the
//! resulting objects compared.

#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::Duration;

use common::{Cluster, clusters, project, without_noise};
use serde_json::Value;

const DEPLOYMENT: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: kc
  labels: {app: web}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      initContainers:
      - {name: init, image: 'busybox:1.36'}
      containers:
      - {name: app, image: 'nginx:1.25'}
      - {name: side, image: 'redis:7'}
";

fn ok(c: &Cluster, args: &[&str]) -> String {
    let out = c.kubectl(args);
    assert!(
        out.status.success(),
        "[{}] kubectl {}: {}{}",
        c.name,
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn images(c: &Cluster) -> String {
    ok(
        c,
        &[
            "get",
            "deployment",
            "web",
            "-n",
            "kc",
            "-o",
            "jsonpath={.spec.template.spec.containers[*].image}",
        ],
    )
}

/// Every everyday command; returns the Deployment as `get -o json` shows it at the end.
fn session(c: &Cluster, dir: &std::path::Path) -> Value {
    let file = dir.join("deployment.yaml");
    std::fs::write(&file, DEPLOYMENT).unwrap();
    let file = file.to_str().unwrap();
    assert_eq!(
        ok(c, &["create", "namespace", "kc"]).trim(),
        "namespace/kc created"
    );
    assert_eq!(
        ok(c, &["create", "-f", file]).trim(),
        "deployment.apps/web created"
    );
    let got: Value = serde_json::from_str(&ok(
        c,
        &["get", "deployment", "web", "-n", "kc", "-o", "json"],
    ))
    .unwrap();
    assert_eq!(
        got["spec"]["template"]["spec"]["containers"][0]["image"],
        "nginx:1.25"
    );
    assert_eq!(got["metadata"]["generation"], 1);

    ok(
        c,
        &[
            "patch",
            "deployment",
            "web",
            "-n",
            "kc",
            "--type=json",
            "-p",
            r#"[{"op":"test","path":"/spec/template/spec/containers/0/image","value":"nginx:1.25"},
            {"op":"replace","path":"/spec/template/spec/containers/0/image","value":"nginx:1.26"}]"#,
        ],
    );
    assert_eq!(images(c), "nginx:1.26 redis:7");
    let failed = c.kubectl(&[
        "patch",
        "deployment",
        "web",
        "-n",
        "kc",
        "--type=json",
        "-p",
        r#"[{"op":"test","path":"/spec/template/spec/containers/0/image","value":"nginx:1.25"}]"#,
    ]);
    assert!(
        !failed.status.success(),
        "[{}] a failing test op must fail",
        c.name
    );
    assert!(String::from_utf8_lossy(&failed.stderr).contains("the server rejected our request"));

    ok(
        c,
        &[
            "patch",
            "deployment",
            "web",
            "-n",
            "kc",
            "--type=merge",
            "-p",
            r#"{"metadata":{"labels":{"tier":"front"}}}"#,
        ],
    );
    ok(
        c,
        &[
            "patch",
            "deployment",
            "web",
            "-n",
            "kc",
            "-p",
            r#"{"spec":{"template":{"spec":{"containers":[{"name":"side","image":"redis:7.2"}]}}}}"#,
        ],
    );
    assert_eq!(images(c), "nginx:1.26 redis:7.2");
    ok(
        c,
        &[
            "set",
            "image",
            "deployment/web",
            "-n",
            "kc",
            "app=nginx:1.27",
        ],
    );
    assert_eq!(images(c), "nginx:1.27 redis:7.2");

    // get --watch sees a change made by someone else.
    let mut watch = c
        .kubectl_cmd(&[
            "get",
            "deployment",
            "web",
            "-n",
            "kc",
            "--watch",
            "-o",
            "jsonpath={.spec.template.spec.containers[0].image}{\"\\n\"}",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(watch.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "nginx:1.27");
    ok(
        c,
        &[
            "set",
            "image",
            "deployment/web",
            "-n",
            "kc",
            "app=nginx:1.28",
        ],
    );
    assert_eq!(
        lines.next().unwrap().unwrap(),
        "nginx:1.28",
        "[{}] the watch saw the change",
        c.name
    );
    let _ = watch.kill();
    let _ = watch.wait();

    // Declarative use: apply (client-side, three-way merge) and server-side apply.
    std::fs::write(
        dir.join("deployment.yaml"),
        DEPLOYMENT.replace("replicas: 1", "replicas: 2"),
    )
    .unwrap();
    let applied = ok(c, &["apply", "-f", file]);
    assert!(
        applied.contains("deployment.apps/web configured"),
        "{applied}"
    );
    ok(
        c,
        &["apply", "--server-side", "--force-conflicts", "-f", file],
    );
    let end: Value = serde_json::from_str(&ok(
        c,
        &["get", "deployment", "web", "-n", "kc", "-o", "json"],
    ))
    .unwrap();
    assert_eq!(end["spec"]["replicas"], 2);

    let listed = ok(c, &["get", "deployments", "-n", "kc", "-o", "name"]);
    assert_eq!(listed.trim(), "deployment.apps/web");
    ok(c, &["get", "all", "-n", "kc"]);
    ok(c, &["delete", "deployment", "web", "-n", "kc"]);
    let gone = c.kubectl(&["get", "deployment", "web", "-n", "kc"]);
    assert!(!gone.status.success());
    assert!(
        String::from_utf8_lossy(&gone.stderr).contains("NotFound"),
        "[{}] {}",
        c.name,
        String::from_utf8_lossy(&gone.stderr)
    );
    end
}

#[test]
fn kubectl_works_against_the_simulator_as_against_the_real_server() {
    let dir = tempfile::tempdir().unwrap();
    let mut ends = Vec::new();
    for c in clusters() {
        eprintln!("--- kubectl against {}", c.name);
        ends.push(without_noise(&session(&c, dir.path())));
        // The watch's kubectl must be gone before the server stops.
        std::thread::sleep(Duration::from_millis(50));
    }
    if let [sim, real] = &ends[..] {
        let (mut sim, mut real) = (sim.clone(), real.clone());
        // kubectl writes `"annotations":{}` into its last-applied record on one path and not
        // on the other; the record is compared as JSON without empty maps.
        for v in [&mut sim, &mut real] {
            let key = "kubectl.kubernetes.io/last-applied-configuration";
            let ann = &mut v["metadata"]["annotations"][key];
            let mut record: Value = serde_json::from_str(ann.as_str().unwrap()).unwrap();
            if record["metadata"]["annotations"] == serde_json::json!({}) {
                record["metadata"]
                    .as_object_mut()
                    .unwrap()
                    .remove("annotations");
            }
            *ann = record;
        }
        // Field ownership is not simulated (README).
        sim["metadata"]
            .as_object_mut()
            .unwrap()
            .remove("managedFields");
        assert_eq!(
            project(&real, &sim),
            sim,
            "kubectl's view differs between the simulator and kube-apiserver"
        );
    }
}

/// The commands whose typed clients send protobuf bodies; returns the objects they made, as
/// `get -o json` shows them.
fn typed_session(c: &Cluster, dir: &std::path::Path) -> Vec<Value> {
    let created = |args: &[&str], what: &str| {
        assert_eq!(
            ok(c, args).trim(),
            format!("{what} created"),
            "[{}]",
            c.name
        );
    };
    created(&["create", "namespace", "typed"], "namespace/typed");
    created(
        &[
            "create",
            "secret",
            "generic",
            "plain",
            "-n",
            "typed",
            "--from-literal=user=admin",
            "--from-literal=token=s3cr3t",
        ],
        "secret/plain",
    );
    created(
        &[
            "create",
            "secret",
            "docker-registry",
            "regcred",
            "-n",
            "typed",
            "--docker-server=registry.example:5000",
            "--docker-username=puller",
            "--docker-password=pull-pass",
        ],
        "secret/regcred",
    );
    let config = dir.join("config.json");
    std::fs::write(
        &config,
        r#"{"auths":{"registry.example:5000":{"auth":"cHVsbGVyOnB1bGwtcGFzcw=="}}}"#,
    )
    .unwrap();
    let from_file = format!(".dockerconfigjson={}", config.to_str().unwrap());
    created(
        &[
            "create",
            "secret",
            "generic",
            "fromfile",
            "-n",
            "typed",
            "--type=kubernetes.io/dockerconfigjson",
            "--from-file",
            &from_file,
        ],
        "secret/fromfile",
    );
    created(
        &[
            "create",
            "configmap",
            "settings",
            "-n",
            "typed",
            "--from-literal=mode=fast",
        ],
        "configmap/settings",
    );
    let get = |what: &str| ok(c, &["get", what, "-n", "typed", "-o", "jsonpath={.type}"]);
    assert_eq!(get("secret/plain"), "Opaque", "[{}]", c.name);
    assert_eq!(get("secret/regcred"), "kubernetes.io/dockerconfigjson");

    // Both allow their admin token; the simulator allows everyone (README), envtest's RBAC
    // does not know bob.
    let can_i = |args: &[&str]| {
        let out = c.kubectl(&[&["auth", "can-i"], args].concat());
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    assert_eq!(
        can_i(&["create", "pods", "-n", "typed"]),
        "yes",
        "[{}]",
        c.name
    );
    assert_eq!(can_i(&["get", "/healthz"]), "yes", "[{}]", c.name);
    let bob = can_i(&["delete", "secrets", "-n", "typed", "--as=bob"]);
    assert_eq!(bob, if c.is_sim() { "yes" } else { "no" }, "[{}]", c.name);

    [
        "namespace/typed",
        "secret/plain",
        "secret/regcred",
        "secret/fromfile",
        "configmap/settings",
    ]
    .iter()
    .map(|what| {
        let json = ok(c, &["get", what, "-n", "typed", "-o", "json"]);
        without_noise(&serde_json::from_str(&json).unwrap())
    })
    .collect()
}

#[test]
fn kubectl_create_and_auth_can_i_send_protobuf_and_work_as_on_the_real_server() {
    let dir = tempfile::tempdir().unwrap();
    let made: Vec<Vec<Value>> = clusters()
        .iter()
        .map(|c| {
            eprintln!("--- typed kubectl commands against {}", c.name);
            typed_session(c, dir.path())
        })
        .collect();
    if let [sim, real] = &made[..] {
        for (sim, real) in sim.iter().zip(real) {
            let mut sim = sim.clone();
            // The namespace name label is 1.21's; envtest is 1.20 (README).
            let meta = sim["metadata"].as_object_mut().unwrap();
            if let Some(labels) = meta.get_mut("labels").and_then(Value::as_object_mut) {
                labels.remove("kubernetes.io/metadata.name");
                if labels.is_empty() {
                    meta.remove("labels");
                }
            }
            assert_eq!(
                project(real, &sim),
                sim,
                "the simulator stored another object"
            );
        }
    }
}
