//! Server-side printing: what `kubectl get` asks for (`Accept: application/json;as=Table;
//! v=v1;g=meta.k8s.io`) — a `meta.k8s.io/v1` Table with the columns of the real server's
//! printers (pkg/printers/internalversion/printers.go). Controllers do not run here, so the
//! status columns show what a fresh object shows on a cluster without them.

use std::time::SystemTime;

use serde_json::{Value, json};

use crate::resources::ResourceType;

/// Whether the Accept header asks for a Table.
pub fn wanted(accept: &str) -> bool {
    accept.split(',').any(|part| {
        let part = part.replace(' ', "");
        part.contains("as=Table") && part.contains("g=meta.k8s.io")
    })
}

/// kubectl's short ages: 45s, 5m, 3h, 2d.
fn age(created: &Value) -> String {
    let Some(t) = created
        .as_str()
        .and_then(|s| humantime::parse_rfc3339(s).ok())
    else {
        return "<unknown>".to_owned();
    };
    let secs = SystemTime::now()
        .duration_since(t)
        .map_or(0, |d| d.as_secs());
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 3600 * 2 => format!("{}m", s / 60),
        s if s < 86400 * 2 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}

fn count(v: &Value) -> usize {
    v.as_object().map_or(0, |m| m.len())
}

fn num(v: &Value) -> i64 {
    v.as_i64().unwrap_or(0)
}

/// Column names (and their types) and the cells of one object.
fn columns(kind: &str) -> &'static [(&'static str, &'static str)] {
    match kind {
        "Namespace" => &[("Name", "string"), ("Status", "string"), ("Age", "string")],
        "Pod" => &[
            ("Name", "string"),
            ("Ready", "string"),
            ("Status", "string"),
            ("Restarts", "string"),
            ("Age", "string"),
        ],
        "Deployment" => &[
            ("Name", "string"),
            ("Ready", "string"),
            ("Up-to-date", "integer"),
            ("Available", "integer"),
            ("Age", "string"),
        ],
        "StatefulSet" => &[("Name", "string"), ("Ready", "string"), ("Age", "string")],
        "DaemonSet" => &[
            ("Name", "string"),
            ("Desired", "integer"),
            ("Current", "integer"),
            ("Ready", "integer"),
            ("Up-to-date", "integer"),
            ("Available", "integer"),
            ("Node Selector", "string"),
            ("Age", "string"),
        ],
        "ReplicaSet" => &[
            ("Name", "string"),
            ("Desired", "integer"),
            ("Current", "integer"),
            ("Ready", "integer"),
            ("Age", "string"),
        ],
        "Job" => &[
            ("Name", "string"),
            ("Status", "string"),
            ("Completions", "string"),
            ("Duration", "string"),
            ("Age", "string"),
        ],
        "CronJob" => &[
            ("Name", "string"),
            ("Schedule", "string"),
            ("Timezone", "string"),
            ("Suspend", "boolean"),
            ("Active", "integer"),
            ("Last Schedule", "string"),
            ("Age", "string"),
        ],
        "ConfigMap" => &[("Name", "string"), ("Data", "integer"), ("Age", "string")],
        "Secret" => &[
            ("Name", "string"),
            ("Type", "string"),
            ("Data", "integer"),
            ("Age", "string"),
        ],
        "ServiceAccount" => &[
            ("Name", "string"),
            ("Secrets", "integer"),
            ("Age", "string"),
        ],
        "Service" => &[
            ("Name", "string"),
            ("Type", "string"),
            ("Cluster-IP", "string"),
            ("External-IP", "string"),
            ("Port(s)", "string"),
            ("Age", "string"),
        ],
        "Event" => &[
            ("Last Seen", "string"),
            ("Type", "string"),
            ("Reason", "string"),
            ("Object", "string"),
            ("Message", "string"),
        ],
        "Lease" => &[("Name", "string"), ("Holder", "string"), ("Age", "string")],
        "RoleBinding" | "ClusterRoleBinding" => {
            &[("Name", "string"), ("Role", "string"), ("Age", "string")]
        }
        "MutatingWebhookConfiguration" | "ValidatingWebhookConfiguration" => &[
            ("Name", "string"),
            ("Webhooks", "integer"),
            ("Age", "string"),
        ],
        _ => &[("Name", "string"), ("Created At", "date")],
    }
}

fn cells(kind: &str, o: &Value) -> Vec<Value> {
    let name = json!(o["metadata"]["name"]);
    let created = &o["metadata"]["creationTimestamp"];
    let age_cell = json!(age(created));
    let spec = &o["spec"];
    let status = &o["status"];
    match kind {
        "Namespace" => vec![
            name,
            json!(status["phase"].as_str().unwrap_or("Active")),
            age_cell,
        ],
        "Pod" => {
            let n = spec["containers"].as_array().map_or(0, Vec::len);
            vec![
                name,
                json!(format!("0/{n}")),
                json!(status["phase"].as_str().unwrap_or("Pending")),
                json!("0"),
                age_cell,
            ]
        }
        "Deployment" => {
            let want = spec["replicas"].as_i64().unwrap_or(1);
            vec![
                name,
                json!(format!("{}/{want}", num(&status["readyReplicas"]))),
                json!(num(&status["updatedReplicas"])),
                json!(num(&status["availableReplicas"])),
                age_cell,
            ]
        }
        "StatefulSet" => {
            let want = spec["replicas"].as_i64().unwrap_or(1);
            vec![
                name,
                json!(format!("{}/{want}", num(&status["readyReplicas"]))),
                age_cell,
            ]
        }
        "DaemonSet" => {
            let selector = spec["template"]["spec"]["nodeSelector"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| "<none>".to_owned());
            vec![
                name,
                json!(num(&status["desiredNumberScheduled"])),
                json!(num(&status["currentNumberScheduled"])),
                json!(num(&status["numberReady"])),
                json!(num(&status["updatedNumberScheduled"])),
                json!(num(&status["numberAvailable"])),
                json!(selector),
                age_cell,
            ]
        }
        "ReplicaSet" => vec![
            name,
            json!(spec["replicas"].as_i64().unwrap_or(1)),
            json!(num(&status["replicas"])),
            json!(num(&status["readyReplicas"])),
            age_cell,
        ],
        "Job" => {
            let completions = spec["completions"].as_i64().unwrap_or(1);
            vec![
                name,
                json!("Running"),
                json!(format!("{}/{completions}", num(&status["succeeded"]))),
                json!(""),
                age_cell,
            ]
        }
        "CronJob" => vec![
            name,
            json!(spec["schedule"]),
            json!(spec["timeZone"].as_str().unwrap_or("<none>")),
            json!(spec["suspend"].as_bool().unwrap_or(false)),
            json!(status["active"].as_array().map_or(0, Vec::len)),
            json!("<none>"),
            age_cell,
        ],
        "ConfigMap" => vec![
            name,
            json!(count(&o["data"]) + count(&o["binaryData"])),
            age_cell,
        ],
        "Secret" => vec![
            name,
            json!(o["type"].as_str().unwrap_or("Opaque")),
            json!(count(&o["data"])),
            age_cell,
        ],
        "ServiceAccount" => vec![
            name,
            json!(o["secrets"].as_array().map_or(0, Vec::len)),
            age_cell,
        ],
        "Service" => {
            let ports = spec["ports"]
                .as_array()
                .map(|ps| {
                    ps.iter()
                        .map(|p| {
                            format!("{}/{}", p["port"], p["protocol"].as_str().unwrap_or("TCP"))
                        })
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| "<none>".to_owned());
            vec![
                name,
                json!(spec["type"].as_str().unwrap_or("ClusterIP")),
                json!(spec["clusterIP"].as_str().unwrap_or("<none>")),
                json!("<none>"),
                json!(ports),
                age_cell,
            ]
        }
        "Event" => {
            let object = format!(
                "{}/{}",
                o["involvedObject"]["kind"]
                    .as_str()
                    .unwrap_or_default()
                    .to_lowercase(),
                o["involvedObject"]["name"].as_str().unwrap_or_default()
            );
            let seen = [&o["lastTimestamp"], &o["eventTime"], created]
                .into_iter()
                .find(|v| v.is_string())
                .map_or_else(|| "<unknown>".to_owned(), age);
            vec![
                json!(seen),
                json!(o["type"]),
                json!(o["reason"]),
                json!(object),
                json!(o["message"]),
            ]
        }
        "Lease" => vec![
            name,
            json!(spec["holderIdentity"].as_str().unwrap_or("<none>")),
            age_cell,
        ],
        "RoleBinding" | "ClusterRoleBinding" => vec![
            name,
            json!(format!(
                "{}/{}",
                o["roleRef"]["kind"].as_str().unwrap_or_default(),
                o["roleRef"]["name"].as_str().unwrap_or_default()
            )),
            age_cell,
        ],
        "MutatingWebhookConfiguration" | "ValidatingWebhookConfiguration" => vec![
            name,
            json!(o["webhooks"].as_array().map_or(0, Vec::len)),
            age_cell,
        ],
        _ => vec![name, created.clone()],
    }
}

/// A Table of `objects` (each as the resource shows it), with the list's metadata.
pub fn table(r: &ResourceType, objects: &[&Value], metadata: Value, include: &str) -> Value {
    let kind = r.kind;
    let definitions: Vec<Value> = columns(kind)
        .iter()
        .enumerate()
        .map(|(i, (name, ty))| {
            json!({"name": name, "type": ty, "format": if i == 0 && *name == "Name" { "name" } else { "" },
                   "description": "", "priority": 0})
        })
        .collect();
    let rows: Vec<Value> = objects
        .iter()
        .map(|o| {
            let object = match include {
                "None" => Value::Null,
                "Object" => (*o).clone(),
                _ => json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                            "metadata": o["metadata"]}),
            };
            json!({"cells": cells(kind, o), "object": object})
        })
        .collect();
    json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": metadata,
           "columnDefinitions": definitions, "rows": rows})
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::by_path;

    #[test]
    fn kubectl_get_columns() {
        assert!(wanted(
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"
        ));
        assert!(!wanted("application/json"));
        let r = by_path("apps", "v1", "deployments").expect("deployments");
        let d = json!({"metadata": {"name": "web", "creationTimestamp": "2020-01-01T00:00:00Z"},
                       "spec": {"replicas": 2}, "status": {}});
        let t = table(r, &[&d], json!({"resourceVersion": "5"}), "Metadata");
        assert_eq!(t["columnDefinitions"][1]["name"], "Ready");
        assert_eq!(t["rows"][0]["cells"][0], "web");
        assert_eq!(t["rows"][0]["cells"][1], "0/2");
        assert_eq!(t["rows"][0]["object"]["kind"], "PartialObjectMetadata");
        assert!(
            t["rows"][0]["cells"][4]
                .as_str()
                .is_some_and(|a| a.ends_with('d'))
        );
    }
}
