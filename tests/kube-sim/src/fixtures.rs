//! Workload objects for tests, benchmarks and the demo: one builder for every kind
//! image-cloner reads, so that all of them create the same shapes.

use serde_json::{Value, json};

/// A pod spec with these `(name, image)` containers and init containers.
pub fn pod_spec(containers: &[(&str, &str)], init: &[(&str, &str)]) -> Value {
    let list = |cs: &[(&str, &str)]| -> Vec<Value> {
        cs.iter()
            .map(|(n, i)| json!({"name": n, "image": i}))
            .collect()
    };
    let mut spec = json!({"containers": list(containers), "restartPolicy": "Always"});
    if !init.is_empty() {
        spec["initContainers"] = json!(list(init));
    }
    spec
}

/// A workload of `kind` named `name` in `ns` running these containers; the keys of `meta`
/// (labels, annotations, ...) are added to its metadata. Its pods are labelled `app: name`.
///
/// # Panics
/// On a kind that is not a workload kind: a mistake in the calling test.
pub fn workload(
    kind: &str,
    ns: &str,
    name: &str,
    containers: &[(&str, &str)],
    init: &[(&str, &str)],
    meta: Value,
) -> Value {
    let labels = json!({"app": name});
    let template = json!({"metadata": {"labels": labels}, "spec": pod_spec(containers, init)});
    // Jobs (and a CronJob's jobs) may not restart Always.
    let mut never = template.clone();
    never["spec"]["restartPolicy"] = json!("Never");
    let (api_version, spec) = match kind {
        "Deployment" | "ReplicaSet" | "DaemonSet" => (
            "apps/v1",
            json!({"selector": {"matchLabels": labels}, "template": template}),
        ),
        "StatefulSet" => (
            "apps/v1",
            json!({"selector": {"matchLabels": labels}, "serviceName": name, "template": template}),
        ),
        "Job" => ("batch/v1", json!({"template": never})),
        "CronJob" => (
            "batch/v1",
            json!({"schedule": "0 3 * * *", "jobTemplate": {"spec": {"template": never}}}),
        ),
        "Pod" => ("v1", pod_spec(containers, init)),
        other => panic!("unknown workload kind {other}"),
    };
    let mut metadata = json!({"name": name, "namespace": ns});
    if let Value::Object(extra) = meta {
        for (k, v) in extra {
            metadata[k] = v;
        }
    }
    json!({"apiVersion": api_version, "kind": kind, "metadata": metadata, "spec": spec})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_keeps_its_pod_spec_where_the_kind_does() {
        let c = [("app", "nginx:1.27")];
        let job = workload("Job", "n", "j", &c, &[], json!({}));
        assert_eq!(job["spec"]["template"]["spec"]["restartPolicy"], "Never");
        let cron = workload("CronJob", "n", "c", &c, &[("init", "busybox")], json!({}));
        let spec = &cron["spec"]["jobTemplate"]["spec"]["template"]["spec"];
        assert_eq!(spec["initContainers"][0]["image"], "busybox");
        let d = workload(
            "Deployment",
            "n",
            "d",
            &c,
            &[],
            json!({"labels": {"x": "y"}}),
        );
        assert_eq!(d["metadata"]["labels"]["x"], "y");
        assert_eq!(d["spec"]["selector"]["matchLabels"]["app"], "d");
        assert_eq!(
            workload("Pod", "n", "p", &c, &[], json!({}))["spec"]["containers"][0]["name"],
            "app"
        );
    }
}
