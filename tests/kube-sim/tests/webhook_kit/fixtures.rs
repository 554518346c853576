//! The configurations that register the test webhook, and the objects the scenario writes.

use serde_json::{Value, json};

use super::WebhookServer;

/// Writes of the workload kinds (CronJobs in 1.20 are batch/v1beta1).
pub fn rules() -> Value {
    json!([{"apiGroups": ["", "apps", "batch"], "apiVersions": ["v1", "v1beta1"], "operations": ["CREATE", "UPDATE"],
        "resources": ["pods", "deployments", "statefulsets", "daemonsets", "replicasets", "jobs", "cronjobs"],
        "scope": "Namespaced"}])
}

pub fn hook(name: &str, url: String, ca: &str, object_selector: Value, extra: Value) -> Value {
    let mut h = json!({"name": name, "clientConfig": {"url": url, "caBundle": ca}, "rules": rules(),
        "namespaceSelector": {"matchLabels": {"webhooks": "on"}},
        "objectSelector": object_selector, "sideEffects": "None", "admissionReviewVersions": ["v1"]});
    for (k, v) in extra.as_object().into_iter().flatten() {
        h[k] = v.clone();
    }
    h
}

pub fn unlabelled() -> Value {
    json!({"matchExpressions": [{"key": "hook", "operator": "DoesNotExist"}]})
}

pub fn labelled(v: &str) -> Value {
    json!({"matchLabels": {"hook": v}})
}

pub const MUTATING: &str = "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations";
pub const VALIDATING: &str =
    "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations";

/// Webhooks by configuration: (configuration, webhook, on the live server?, path, the
/// `hook` label it is limited to, extra fields). "b-chain" comes before "a-images" here, but
/// the real server calls configurations in name order.
type HookRow = (
    &'static str,
    &'static str,
    bool,
    &'static str,
    Option<&'static str>,
    &'static str,
);
const MUTATING_HOOKS: &[HookRow] = &[
    (
        "b-chain",
        "chain-1.kube-sim.test",
        true,
        "/mutate/chain/b1",
        None,
        "{}",
    ),
    (
        "b-chain",
        "chain-2.kube-sim.test",
        true,
        "/mutate/chain/b2",
        None,
        "{}",
    ),
    (
        "a-images",
        "images.kube-sim.test",
        true,
        "/mutate/images",
        None,
        "{}",
    ),
    (
        "c-failures",
        "ignored.kube-sim.test",
        false,
        "/mutate/images",
        Some("dead-ignore"),
        r#"{"failurePolicy": "Ignore"}"#,
    ),
    (
        "c-failures",
        "stopped.kube-sim.test",
        false,
        "/mutate/images",
        Some("dead-fail"),
        "{}",
    ),
    (
        "c-failures",
        "garbage.kube-sim.test",
        true,
        "/garbage",
        Some("garbage"),
        r#"{"failurePolicy": "Fail"}"#,
    ),
    (
        "c-failures",
        "slow.kube-sim.test",
        true,
        "/slow",
        Some("slow"),
        r#"{"timeoutSeconds": 1}"#,
    ),
    (
        "c-failures",
        "untrusted.kube-sim.test",
        true,
        "/mutate/images",
        Some("untrusted"),
        UNTRUSTED,
    ),
];

/// Marks a webhook whose `caBundle` is another CA's (the stopped server's): TLS fails.
const UNTRUSTED: &str = r#"{"untrusted": true}"#;

/// The configurations to create, in this order: the mutating ones, then "deny-label" with
/// the validating webhook. `dead` is a stopped server.
pub fn configurations(live: &WebhookServer, dead: &WebhookServer) -> Vec<(&'static str, Value)> {
    let ca = live.ca_bundle();
    let mut out: Vec<(&str, Value)> = Vec::new();
    for (config, name, on_live, path, label, extra) in MUTATING_HOOKS {
        let url = if *on_live {
            live.url(path)
        } else {
            dead.url(path)
        };
        let selector = label.map_or_else(unlabelled, labelled);
        let mut h = hook(name, url, &ca, selector, json!({}));
        if *extra == UNTRUSTED {
            h["clientConfig"]["caBundle"] = json!(dead.ca_bundle());
        } else {
            for (k, v) in serde_json::from_str::<Value>(extra)
                .unwrap()
                .as_object()
                .unwrap()
            {
                h[k] = v.clone();
            }
        }
        match out.iter_mut().find(|(_, c)| c["metadata"]["name"] == *config) {
            Some((_, c)) => c["webhooks"].as_array_mut().unwrap().push(h),
            None => out.push((MUTATING, json!({"apiVersion": "admissionregistration.k8s.io/v1",
                "kind": "MutatingWebhookConfiguration", "metadata": {"name": config}, "webhooks": [h]}))),
        }
    }
    let deny = hook(
        "deny.kube-sim.test",
        live.url("/validate"),
        &ca,
        unlabelled(),
        json!({}),
    );
    out.push((VALIDATING, json!({"apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration", "metadata": {"name": "deny-label"}, "webhooks": [deny]})));
    out
}

pub fn deployment(name: &str, labels: Value, annotations: Value) -> Value {
    let mut d = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": "nginx:1.25"}, {"name": "side", "image": "redis:7"}]}}}});
    // Only maps with content: the real server drops empty ones (Go's omitempty).
    for (key, map) in [("labels", labels), ("annotations", annotations)] {
        if map.as_object().is_some_and(|m| !m.is_empty()) {
            d["metadata"][key] = map;
        }
    }
    d
}

/// One object of each workload kind; `cronjobs` is batch/v1 or, on Kubernetes 1.20,
/// batch/v1beta1.
pub fn workloads(cronjobs: &str) -> Vec<(&'static str, String, Value)> {
    let template = json!({"metadata": {"labels": {"app": "w"}},
        "spec": {"restartPolicy": "OnFailure", "containers": [{"name": "app", "image": "nginx:1.25"}]}});
    let always = {
        let mut t = template.clone();
        t["spec"]["restartPolicy"] = json!("Always");
        t
    };
    let selector = json!({"matchLabels": {"app": "w"}});
    let meta = |name: &str| json!({"name": name});
    vec![
        (
            "Pod",
            "/api/v1/namespaces/hooks/pods".into(),
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": meta("pod"), "spec": template["spec"]}),
        ),
        (
            "StatefulSet",
            "/apis/apps/v1/namespaces/hooks/statefulsets".into(),
            json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": meta("sts"),
            "spec": {"serviceName": "w", "selector": selector, "template": always}}),
        ),
        (
            "DaemonSet",
            "/apis/apps/v1/namespaces/hooks/daemonsets".into(),
            json!({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": meta("ds"),
            "spec": {"selector": selector, "template": always}}),
        ),
        (
            "ReplicaSet",
            "/apis/apps/v1/namespaces/hooks/replicasets".into(),
            json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": meta("rs"),
            "spec": {"selector": selector, "template": always}}),
        ),
        (
            "Job",
            "/apis/batch/v1/namespaces/hooks/jobs".into(),
            json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": meta("job"),
            "spec": {"template": template}}),
        ),
        (
            "CronJob",
            format!("/apis/{cronjobs}/namespaces/hooks/cronjobs"),
            json!({"apiVersion": cronjobs, "kind": "CronJob", "metadata": meta("cj"),
            "spec": {"schedule": "*/5 * * * *", "jobTemplate": {"spec": {"template": template}}}}),
        ),
    ]
}

/// Configurations the real server refuses, each for one reason.
pub fn invalid_configurations(live: &WebhookServer) -> Vec<(&'static str, Value)> {
    let ca = live.ca_bundle();
    let with = |name: &str, change: &dyn Fn(&mut Value)| {
        let mut h = hook(
            "x.kube-sim.test",
            live.url("/mutate/images"),
            &ca,
            unlabelled(),
            json!({}),
        );
        change(&mut h);
        json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration",
            "metadata": {"name": name}, "webhooks": [h]})
    };
    vec![
        (
            "invalid: no sideEffects",
            with("bad-side-effects", &|h| {
                h.as_object_mut().unwrap().remove("sideEffects");
            }),
        ),
        (
            "invalid: sideEffects Some",
            with("bad-side-effects-some", &|h| {
                h["sideEffects"] = json!("Some")
            }),
        ),
        (
            "invalid: no admissionReviewVersions",
            with("bad-versions", &|h| {
                h.as_object_mut().unwrap().remove("admissionReviewVersions");
            }),
        ),
        (
            "invalid: a webhook name that is no qualified name",
            with("bad-name", &|h| h["name"] = json!("images")),
        ),
        (
            "invalid: an http URL",
            with("bad-url", &|h| {
                h["clientConfig"]["url"] = json!("http://127.0.0.1:1/x")
            }),
        ),
        (
            "invalid: url and service",
            with("bad-both", &|h| {
                h["clientConfig"]["service"] = json!({"namespace": "a", "name": "b"})
            }),
        ),
        (
            "invalid: timeoutSeconds 31",
            with("bad-timeout", &|h| h["timeoutSeconds"] = json!(31)),
        ),
        (
            "invalid: failurePolicy Maybe",
            with("bad-policy", &|h| h["failurePolicy"] = json!("Maybe")),
        ),
        (
            "invalid: an operation CONNECTED",
            with("bad-op", &|h| {
                h["rules"][0]["operations"] = json!(["CONNECTED"])
            }),
        ),
        (
            "invalid: a selector operator Near",
            with(
                "bad-selector",
                &|h| {
                    h["objectSelector"] =
                        json!({"matchExpressions": [{"key": "a", "operator": "Near"}]})
                },
            ),
        ),
    ]
}
