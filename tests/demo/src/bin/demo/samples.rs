//! The demo's workloads and what it expects image-cloner to do with each: the "expected"
//! column, which the demo checks against what happened.

use anyhow::Result;
use demo::check::Expect;
use serde_json::json;

use crate::cluster::Cluster;

/// Set to `<namespace>/<name>` (e.g. `frozen/frozen-web`): the demo checks that workload
/// against the opposite of its expectation, so that the run must end in a named mismatch and
/// a non-zero exit. The proof that the demo's check can fail.
pub const FLIP_VAR: &str = "IMAGE_CLONER_DEMO_FLIP";

pub struct Sample {
    pub kind: &'static str,
    pub ns: &'static str,
    pub name: &'static str,
    pub containers: Vec<(&'static str, String)>,
    pub init: Vec<(&'static str, String)>,
    pub annotations: Vec<(&'static str, &'static str)>,
    /// What the demo is designed to show; the daemon is done when these are patched.
    pub expect: Expect,
    /// What it is checked against: `expect`, unless flipped by [`FLIP_VAR`].
    pub check_as: Expect,
}

impl Sample {
    fn new(kind: &'static str, ns: &'static str, name: &'static str, expect: Expect) -> Sample {
        Sample {
            kind,
            ns,
            name,
            containers: Vec::new(),
            init: Vec::new(),
            annotations: Vec::new(),
            expect,
            check_as: expect,
        }
    }

    fn run(mut self, container: &'static str, image: &str) -> Sample {
        self.containers.push((container, image.to_owned()));
        self
    }

    fn init(mut self, container: &'static str, image: &str) -> Sample {
        self.init.push((container, image.to_owned()));
        self
    }

    fn annotated(mut self, key: &'static str, value: &'static str) -> Sample {
        self.annotations.push((key, value));
        self
    }

    pub fn who(&self) -> String {
        format!("{} {}/{}", self.kind, self.ns, self.name)
    }

    /// `(container, image)` as created: init containers first.
    pub fn images(&self) -> Vec<(&'static str, String)> {
        self.init
            .iter()
            .chain(self.containers.iter())
            .cloned()
            .collect()
    }
}

/// The namespaces, and the workloads of every kind with their expectations.
pub fn samples(nginx: &str, redis: &str, busybox: &str) -> Vec<Sample> {
    use Expect::{Patched, Unchanged};
    let mut samples = vec![
        Sample::new("Deployment", "shop", "web", Patched)
            .run("nginx", nginx)
            .run("cache", redis)
            .init("migrate", busybox),
        Sample::new("StatefulSet", "shop", "sessions", Patched).run("redis", redis),
        Sample::new("DaemonSet", "shop", "log-agent", Patched).run("agent", busybox),
        Sample::new("ReplicaSet", "shop", "old-frontend", Patched).run("nginx", nginx),
        Sample::new("Pod", "shop", "debug", Patched).run("shell", busybox),
        Sample::new(
            "Deployment",
            "shop",
            "canary",
            Unchanged("opt-out (workload annotation)"),
        )
        .run("nginx", nginx)
        .annotated("image-cloner.io/skip", "true"),
        Sample::new("CronJob", "batch", "nightly-report", Patched).run("report", busybox),
        Sample::new(
            "Job",
            "batch",
            "one-off-export",
            Unchanged("immutable: copied, not patched"),
        )
        .run("export", redis),
        Sample::new(
            "Deployment",
            "legacy",
            "old-web",
            Unchanged("ignored namespace"),
        )
        .run("nginx", nginx),
        Sample::new(
            "Deployment",
            "frozen",
            "frozen-web",
            Unchanged("opt-out (namespace annotation)"),
        )
        .run("nginx", nginx),
    ];
    if let Some(flip) = std::env::var(FLIP_VAR).ok().filter(|v| !v.is_empty()) {
        for s in samples
            .iter_mut()
            .filter(|s| format!("{}/{}", s.ns, s.name) == flip)
        {
            s.check_as = s.expect.flipped();
        }
    }
    samples
}

/// Creates the namespaces and the workloads, and prints the "expected" column.
pub fn create(cluster: &Cluster, samples: &[Sample]) -> Result<()> {
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
    println!(
        "  namespaces: shop, batch, legacy (in NAMESPACES_TO_IGNORE), frozen (annotated image-cloner.io/skip=true)"
    );
    println!(
        "  {:<8} {:<12} {:<16} {:<10} expected",
        "NS", "KIND", "NAME", "CONTAINERS"
    );
    for s in samples {
        let c: Vec<(&str, &str)> = s.containers.iter().map(|(n, i)| (*n, i.as_str())).collect();
        let i: Vec<(&str, &str)> = s.init.iter().map(|(n, i)| (*n, i.as_str())).collect();
        cluster.create(demo::workload(s.kind, s.ns, s.name, &c, &i, &s.annotations))?;
        let flipped = if s.check_as == s.expect {
            String::new()
        } else {
            format!("  [checked as: {}, by {FLIP_VAR}]", s.check_as.label())
        };
        println!(
            "  {:<8} {:<12} {:<16} {:<10} {}{flipped}",
            s.ns,
            s.kind,
            s.name,
            s.containers.len() + s.init.len(),
            s.expect.label()
        );
    }
    Ok(())
}
