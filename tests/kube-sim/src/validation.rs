//! The validation the real server applies on create and update that a client of this
//! simulator can run into: required names and images, selectors, and immutable fields
//! (k8s.io/kubernetes/pkg/apis/{core,apps,batch}/validation/validation.go).

use serde_json::Value;

use crate::resources::ResourceType;
use crate::status::Cause;

/// Where the pod spec sits in an object of this kind.
pub fn pod_spec_path(kind: &str) -> Option<&'static [&'static str]> {
    match kind {
        "Pod" => Some(&["spec"]),
        "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet" | "Job" => {
            Some(&["spec", "template", "spec"])
        }
        "CronJob" => Some(&["spec", "jobTemplate", "spec", "template", "spec"]),
        _ => None,
    }
}

fn at<'a>(v: &'a Value, path: &[&str]) -> &'a Value {
    path.iter().fold(v, |v, k| &v[*k])
}

/// DNS-1123 subdomain, the rule for most object names.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric())
}

/// Checks a new or updated object; returns the field errors (empty when valid).
pub fn validate(r: &ResourceType, obj: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    let name = obj["metadata"]["name"].as_str().unwrap_or_default();
    if name.is_empty() {
        causes.push(Cause::required(
            "metadata.name",
            "name or generateName is required",
        ));
    } else if !valid_name(name) && r.plural != "events" {
        causes.push(Cause::invalid(
            "metadata.name",
            &format!("{name:?}: a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"),
        ));
    }
    if let Some(path) = pod_spec_path(r.kind) {
        let spec = at(obj, path);
        let field = path.join(".");
        match spec["containers"].as_array() {
            Some(c) if !c.is_empty() => {}
            _ => causes.push(Cause::required(&format!("{field}.containers"), "")),
        }
        for list in ["initContainers", "containers"] {
            for (i, c) in spec[list].as_array().into_iter().flatten().enumerate() {
                for key in ["name", "image"] {
                    if c[key].as_str().is_none_or(str::is_empty) {
                        causes.push(Cause::required(&format!("{field}.{list}[{i}].{key}"), ""));
                    }
                }
            }
        }
    }
    if let Some(path) = pod_spec_path(r.kind).filter(|_| matches!(r.kind, "Job" | "CronJob")) {
        let field = format!("{}.restartPolicy", path.join("."));
        match at(obj, path)["restartPolicy"].as_str() {
            None => causes.push(Cause::required(
                &field,
                "valid values: \"OnFailure\", \"Never\"",
            )),
            Some("OnFailure" | "Never") => {}
            Some(policy) => causes.push(Cause {
                reason: "FieldValueNotSupported",
                field,
                message: format!(
                    "Unsupported value: {policy:?}: supported values: \"OnFailure\", \"Never\""
                ),
            }),
        }
    }
    if matches!(
        r.kind,
        "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet"
    ) {
        let selector = &obj["spec"]["selector"];
        if selector.is_null() {
            causes.push(Cause::required("spec.selector", ""));
        } else {
            let labels = &obj["spec"]["template"]["metadata"]["labels"];
            let matches = selector["matchLabels"]
                .as_object()
                .into_iter()
                .flatten()
                .all(|(k, v)| labels.get(k) == Some(v));
            if !matches {
                causes.push(Cause::invalid(
                    "spec.template.metadata.labels",
                    &format!("{labels}: `selector` does not match template `labels`"),
                ));
            }
        }
    }
    causes.extend(crate::admission::validate_configuration(r, obj));
    causes
}

/// Fields the update may not change.
pub fn immutable(r: &ResourceType, old: &Value, new: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    let changed = |path: &[&str]| at(old, path) != at(new, path);
    match r.kind {
        "Job" => {
            for (path, field) in [
                (&["spec", "selector"][..], "spec.selector"),
                (&["spec", "template"][..], "spec.template"),
                (&["spec", "completions"][..], "spec.completions"),
            ] {
                if changed(path) {
                    causes.push(Cause::immutable(field));
                }
            }
        }
        "Deployment" | "DaemonSet" | "ReplicaSet" if changed(&["spec", "selector"]) => {
            causes.push(Cause::immutable("spec.selector"));
        }
        "StatefulSet" => {
            let mutable = [
                "replicas",
                "template",
                "updateStrategy",
                "persistentVolumeClaimRetentionPolicy",
                "minReadySeconds",
                "ordinals",
            ];
            let strip = |v: &Value| {
                let mut s = v["spec"].clone();
                if let Some(m) = s.as_object_mut() {
                    for k in mutable {
                        m.remove(k);
                    }
                }
                s
            };
            if strip(old) != strip(new) {
                causes.push(Cause::forbidden(
                    "spec",
                    "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden",
                ));
            }
        }
        "Pod" if !pod_update_allowed(&old["spec"], &new["spec"]) => {
            causes.push(Cause::forbidden(
                "spec",
                "pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)",
            ));
        }
        _ => {}
    }
    causes
}

/// ValidatePodUpdate: the new spec, with the mutable fields copied over from the old one,
/// must equal the old spec.
fn pod_update_allowed(old: &Value, new: &Value) -> bool {
    let mut patched = new.clone();
    for list in ["containers", "initContainers"] {
        let (Some(o), Some(n)) = (
            old.get(list).and_then(Value::as_array),
            patched.get_mut(list).and_then(Value::as_array_mut),
        ) else {
            continue;
        };
        if o.len() != n.len() {
            return false;
        }
        for (oc, nc) in o.iter().zip(n.iter_mut()) {
            nc["image"] = oc["image"].clone();
        }
    }
    if let Some(m) = patched.as_object_mut() {
        for key in ["activeDeadlineSeconds", "terminationGracePeriodSeconds"] {
            match old.get(key) {
                Some(v) => m.insert(key.into(), v.clone()),
                None => m.remove(key),
            };
        }
        // Additions to the tolerations are allowed: the old ones must remain.
        let old_tol = old["tolerations"].as_array().cloned().unwrap_or_default();
        let new_tol = m
            .get("tolerations")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if !old_tol.iter().all(|t| new_tol.contains(t)) {
            return false;
        }
        match old.get("tolerations") {
            Some(v) => m.insert("tolerations".into(), v.clone()),
            None => m.remove("tolerations"),
        };
    }
    patched == *old
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::by_path;
    use serde_json::json;

    fn pod(image: &str, extra: Value) -> Value {
        json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a", "image": image}], "nodeName": extra}})
    }

    #[test]
    fn pods_may_change_only_images() {
        let r = by_path("", "v1", "pods").expect("pods");
        assert!(immutable(r, &pod("a:1", json!(null)), &pod("a:2", json!(null))).is_empty());
        let c = immutable(r, &pod("a:1", json!(null)), &pod("a:1", json!("node")));
        assert_eq!(c[0].field, "spec");
        assert_eq!(c[0].reason, "FieldValueForbidden");
    }

    #[test]
    fn job_template_is_immutable() {
        let r = by_path("batch", "v1", "jobs").expect("jobs");
        let job = |image: &str| json!({"spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "a", "image": image}]}}}});
        let c = immutable(r, &job("a:1"), &job("a:2"));
        assert_eq!(c[0].field, "spec.template");
        assert!(immutable(r, &job("a:1"), &job("a:1")).is_empty());
    }

    #[test]
    fn workloads_need_images_and_matching_selectors() {
        let r = by_path("apps", "v1", "deployments").expect("deployments");
        let d = json!({"metadata": {"name": "d"}, "spec": {"selector": {"matchLabels": {"app": "x"}},
            "template": {"metadata": {"labels": {"app": "y"}}, "spec": {"containers": [{"name": "a"}]}}}});
        let fields: Vec<String> = validate(r, &d).into_iter().map(|c| c.field).collect();
        assert_eq!(
            fields,
            [
                "spec.template.spec.containers[0].image",
                "spec.template.metadata.labels"
            ]
        );
    }
}
