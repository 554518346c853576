//! The validation the real server applies to webhook configurations, with its field paths,
//! reasons and messages (pkg/apis/admissionregistration/validation/validation.go,
//! `util/webhook/validation.go`, `metav1validation.ValidateLabelSelector`).

use serde_json::Value;

use super::config::{MUTATING, is_configuration};
use crate::resources::ResourceType;
use crate::status::Cause;

fn cause(reason: &'static str, field: &str, message: String) -> Cause {
    Cause {
        reason,
        field: field.to_owned(),
        message,
    }
}

fn required(field: &str, detail: &str) -> Cause {
    let message = if detail.is_empty() {
        "Required value".to_owned()
    } else {
        format!("Required value: {detail}")
    };
    cause("FieldValueRequired", field, message)
}

/// `value` as Go's field errors print it: strings quoted, numbers bare.
fn invalid(field: &str, value: &Value, detail: &str) -> Cause {
    let shown = match value {
        Value::String(s) => format!("{s:?}"),
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(|i| format!("\"{}\"", str_of(i))).collect();
            format!("[]string{{{}}}", items.join(", "))
        }
        other => other.to_string(),
    };
    cause(
        "FieldValueInvalid",
        field,
        format!("Invalid value: {shown}: {detail}"),
    )
}

fn not_supported(field: &str, value: &str, supported: &[&str]) -> Cause {
    let list: Vec<String> = supported.iter().map(|s| format!("\"{s}\"")).collect();
    cause(
        "FieldValueNotSupported",
        field,
        format!(
            "Unsupported value: {value:?}: supported values: {}",
            list.join(", ")
        ),
    )
}

fn str_of(v: &Value) -> &str {
    v.as_str().unwrap_or_default()
}

fn strings(v: &Value) -> Vec<&str> {
    v.as_array()
        .into_iter()
        .flatten()
        .map(str_of)
        .collect::<Vec<_>>()
}

fn dns_subdomain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// Every field error of a webhook configuration (empty for other kinds).
pub fn validate(r: &ResourceType, obj: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    if !is_configuration(r) {
        return causes;
    }
    let mut names: Vec<&str> = Vec::new();
    for (i, h) in obj["webhooks"].as_array().into_iter().flatten().enumerate() {
        let at = format!("webhooks[{i}]");
        webhook(&mut causes, &at, h, r.plural == MUTATING);
        review_versions(&mut causes, &format!("{at}.admissionReviewVersions"), h);
        let name = str_of(&h["name"]);
        if !name.is_empty() {
            if names.contains(&name) {
                causes.push(cause(
                    "FieldValueDuplicate",
                    &format!("{at}.name"),
                    format!("Duplicate value: {name:?}"),
                ));
            }
            names.push(name);
        }
    }
    causes
}

fn webhook(causes: &mut Vec<Cause>, at: &str, h: &Value, mutating: bool) {
    let name = str_of(&h["name"]);
    let field = format!("{at}.name");
    if name.is_empty() {
        causes.push(required(&field, ""));
    } else if !dns_subdomain(name) {
        causes.push(invalid(&field, &h["name"], "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"));
    } else if name.split('.').count() < 3 {
        causes.push(invalid(
            &field,
            &h["name"],
            "should be a domain with at least three segments separated by dots",
        ));
    }
    for (j, rule) in h["rules"].as_array().into_iter().flatten().enumerate() {
        rules(causes, &format!("{at}.rules[{j}]"), rule);
    }
    let one_of = |causes: &mut Vec<Cause>, key: &str, supported: &[&str]| {
        if let Some(v) = h[key].as_str()
            && !supported.contains(&v)
        {
            causes.push(not_supported(&format!("{at}.{key}"), v, supported));
        }
    };
    one_of(causes, "failurePolicy", &["Fail", "Ignore"]);
    one_of(causes, "matchPolicy", &["Equivalent", "Exact"]);
    if h["sideEffects"].is_null() {
        causes.push(required(
            &format!("{at}.sideEffects"),
            "must specify one of None, NoneOnDryRun",
        ));
    }
    one_of(causes, "sideEffects", &["None", "NoneOnDryRun"]);
    if let Some(t) = h["timeoutSeconds"].as_i64()
        && !(1..=30).contains(&t)
    {
        causes.push(invalid(
            &format!("{at}.timeoutSeconds"),
            &h["timeoutSeconds"],
            "the timeout value must be between 1 and 30 seconds",
        ));
    }
    for key in ["namespaceSelector", "objectSelector"] {
        selector(causes, &format!("{at}.{key}"), &h[key]);
    }
    if mutating {
        one_of(causes, "reinvocationPolicy", &["IfNeeded", "Never"]);
    }
    client_config(causes, &format!("{at}.clientConfig"), &h["clientConfig"]);
}

fn rules(causes: &mut Vec<Cause>, at: &str, rule: &Value) {
    let ops = strings(&rule["operations"]);
    if ops.is_empty() {
        causes.push(required(&format!("{at}.operations"), ""));
    }
    if ops.len() > 1 && ops.contains(&"*") {
        causes.push(invalid(
            &format!("{at}.operations"),
            &rule["operations"],
            "if '*' is present, must not specify other operations",
        ));
    }
    let supported = ["*", "CONNECT", "CREATE", "DELETE", "UPDATE"];
    for (k, op) in ops.iter().enumerate() {
        if !supported.contains(op) {
            causes.push(not_supported(
                &format!("{at}.operations[{k}]"),
                op,
                &supported,
            ));
        }
    }
    for (key, what) in [("apiGroups", "API groups"), ("apiVersions", "API versions")] {
        let items = strings(&rule[key]);
        if items.is_empty() {
            causes.push(required(&format!("{at}.{key}"), ""));
        }
        if items.len() > 1 && items.contains(&"*") {
            causes.push(invalid(
                &format!("{at}.{key}"),
                &rule[key],
                &format!("if '*' is present, must not specify other {what}"),
            ));
        }
    }
    let resources = strings(&rule["resources"]);
    if resources.is_empty() {
        causes.push(required(&format!("{at}.resources"), ""));
    }
    for (k, res) in resources.iter().enumerate() {
        if res.is_empty() {
            causes.push(required(&format!("{at}.resources[{k}]"), ""));
        }
    }
    if let Some(scope) = rule["scope"].as_str()
        && !["*", "Cluster", "Namespaced"].contains(&scope)
    {
        causes.push(not_supported(
            &format!("{at}.scope"),
            scope,
            &["*", "Cluster", "Namespaced"],
        ));
    }
}

fn selector(causes: &mut Vec<Cause>, at: &str, sel: &Value) {
    for (k, e) in sel["matchExpressions"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        let at = format!("{at}.matchExpressions[{k}]");
        let has_values = e["values"].as_array().is_some_and(|v| !v.is_empty());
        match str_of(&e["operator"]) {
            "In" | "NotIn" if !has_values => causes.push(required(
                &format!("{at}.values"),
                "must be specified when `operator` is 'In' or 'NotIn'",
            )),
            "Exists" | "DoesNotExist" if has_values => causes.push(cause(
                "FieldValueForbidden",
                &format!("{at}.values"),
                "Forbidden: may not be specified when `operator` is 'Exists' or 'DoesNotExist'"
                    .to_owned(),
            )),
            "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
            _ => causes.push(invalid(
                &format!("{at}.operator"),
                &e["operator"],
                "not a valid selector operator",
            )),
        }
    }
}

fn client_config(causes: &mut Vec<Cause>, at: &str, cc: &Value) {
    let url = cc["url"].as_str();
    let service = &cc["service"];
    if url.is_some() == service.is_object() {
        causes.push(required(at, "exactly one of url or service is required"));
        return;
    }
    let Some(url) = url else {
        for key in ["name", "namespace"] {
            if str_of(&service[key]).is_empty() {
                causes.push(required(
                    &format!("{at}.service.{key}"),
                    &format!("service {key} is required"),
                ));
            }
        }
        return;
    };
    const FORM: &str = "; desired format: https://host[/path]";
    let field = format!("{at}.url");
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let (rest, fragment) = rest.split_once('#').unwrap_or((rest, ""));
    let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
    let authority = rest.split('/').next().unwrap_or_default();
    let (user, host) = authority.rsplit_once('@').unwrap_or(("", authority));
    let checks = [
        (
            scheme != "https",
            scheme,
            "'https' is the only allowed URL scheme",
        ),
        (host.is_empty(), host, "host must be provided"),
        (
            !user.is_empty(),
            user,
            "user information is not permitted in the URL",
        ),
        (
            !fragment.is_empty(),
            fragment,
            "fragments are not permitted in the URL",
        ),
        (
            !query.is_empty(),
            query,
            "query parameters are not permitted in the URL",
        ),
    ];
    for (failed, value, detail) in checks {
        if failed {
            let form = if detail.ends_with("scheme") || detail.starts_with("host") {
                FORM
            } else {
                ""
            };
            causes.push(invalid(
                &field,
                &Value::from(value),
                &format!("{detail}{form}"),
            ));
        }
    }
}

fn review_versions(causes: &mut Vec<Cause>, at: &str, h: &Value) {
    let versions = strings(&h["admissionReviewVersions"]);
    if versions.is_empty() {
        causes.push(required(at, "must specify one of v1, v1beta1"));
        return;
    }
    for (k, v) in versions.iter().enumerate() {
        if versions[..k].contains(v) {
            causes.push(invalid(
                &format!("{at}[{k}]"),
                &Value::from(*v),
                "duplicate version",
            ));
        }
    }
    if !versions.iter().any(|v| matches!(*v, "v1" | "v1beta1")) {
        causes.push(invalid(
            at,
            &h["admissionReviewVersions"],
            "must include at least one of v1, v1beta1",
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::by_path;
    use serde_json::json;

    fn causes_of(change: impl Fn(&mut Value)) -> Vec<(String, String)> {
        let r = by_path("admissionregistration.k8s.io", "v1", MUTATING).expect("served");
        let mut h = json!({"name": "a.kube-sim.test", "sideEffects": "None", "admissionReviewVersions": ["v1"],
            "clientConfig": {"url": "https://127.0.0.1:1/x"},
            "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"]}]});
        change(&mut h);
        validate(r, &json!({"webhooks": [h]}))
            .into_iter()
            .map(|c| (c.field, c.message))
            .collect()
    }

    #[test]
    fn messages_are_the_real_servers() {
        assert!(causes_of(|_| {}).is_empty());
        assert_eq!(
            causes_of(|h| h["name"] = json!("images")),
            [(
                "webhooks[0].name".into(),
                "Invalid value: \"images\": should be a domain with at least three segments separated by dots".into()
            )]
        );
        assert_eq!(
            causes_of(|h| h["clientConfig"]["url"] = json!("http://127.0.0.1:1/x")),
            [("webhooks[0].clientConfig.url".into(), "Invalid value: \"http\": 'https' is the only allowed URL scheme; desired format: https://host[/path]".into())]
        );
        assert_eq!(
            causes_of(|h| h["rules"][0]["operations"] = json!(["CONNECTED"])),
            [("webhooks[0].rules[0].operations[0]".into(), "Unsupported value: \"CONNECTED\": supported values: \"*\", \"CONNECT\", \"CREATE\", \"DELETE\", \"UPDATE\"".into())]
        );
        assert_eq!(
            causes_of(|h| h["timeoutSeconds"] = json!(31)),
            [(
                "webhooks[0].timeoutSeconds".into(),
                "Invalid value: 31: the timeout value must be between 1 and 30 seconds".into()
            )]
        );
        assert_eq!(
            causes_of(|h| {
                h.as_object_mut().expect("object").remove("sideEffects");
            }),
            [(
                "webhooks[0].sideEffects".into(),
                "Required value: must specify one of None, NoneOnDryRun".into()
            )]
        );
    }
}
