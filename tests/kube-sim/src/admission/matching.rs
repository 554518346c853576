//! Which webhooks a request goes to: `rules` (operations, API groups and versions,
//! resources with their subresource forms and `*`, scope), `namespaceSelector` and
//! `objectSelector`, as `apiserver/pkg/admission/plugin/webhook/predicates/` decides.

use serde_json::Value;

use super::config::{Rule, Webhook};
use crate::resources::ResourceType;

/// What the real server calls the admission attributes of a write.
#[derive(Debug, Clone)]
pub struct Attributes {
    /// `CREATE` or `UPDATE`.
    pub operation: &'static str,
    pub r: &'static ResourceType,
    /// `status` for writes to the status subresource, else empty.
    pub subresource: String,
    /// The request's namespace: the object's for namespaced resources; for a namespace
    /// itself, its name on UPDATE (the real server's request info takes it from the path),
    /// empty on CREATE; empty for other cluster-scoped resources.
    pub namespace: String,
    pub name: String,
    pub object: Value,
    pub old_object: Option<Value>,
    /// The labels of the namespace the object is in (for `namespaceSelector`).
    pub namespace_labels: Value,
    /// CreateOptions or UpdateOptions, as the webhook receives them.
    pub options: Value,
    pub dry_run: bool,
}

fn exact_or_wildcard(items: &[String], requested: &str) -> bool {
    items.iter().any(|i| i == "*" || i == requested)
}

/// `rules.Matcher.Matches`.
pub fn rule_matches(rule: &Rule, a: &Attributes) -> bool {
    let is_namespace = a.r.group.is_empty() && a.r.plural == "namespaces";
    let scope = match rule.scope.as_deref() {
        None | Some("*") => true,
        Some("Namespaced") => !is_namespace && !a.namespace.is_empty(),
        Some("Cluster") => is_namespace || a.namespace.is_empty(),
        Some(_) => false,
    };
    let operation = rule.operations.iter().any(|o| o == "*" || o == a.operation);
    let resource = rule.resources.iter().any(|res| {
        let (res, sub) = res.split_once('/').unwrap_or((res, ""));
        (res == "*" || res == a.r.plural) && (sub == "*" || sub == a.subresource)
    });
    scope
        && operation
        && exact_or_wildcard(&rule.api_groups, a.r.group)
        && exact_or_wildcard(&rule.api_versions, a.r.version)
        && resource
}

/// A `metav1.LabelSelector` (`matchLabels`, `matchExpressions`) against a label map; the
/// empty selector matches everything.
pub fn selector_matches(selector: &Value, labels: &Value) -> bool {
    let label = |k: &str| labels[k].as_str();
    let by_labels = selector["matchLabels"]
        .as_object()
        .into_iter()
        .flatten()
        .all(|(k, v)| label(k).is_some() && label(k) == v.as_str());
    let by_expressions = selector["matchExpressions"]
        .as_array()
        .into_iter()
        .flatten()
        .all(|e| {
            let key = e["key"].as_str().unwrap_or_default();
            let values: Vec<&str> = e["values"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            match (e["operator"].as_str().unwrap_or_default(), label(key)) {
                ("In", Some(v)) => values.contains(&v),
                ("NotIn", Some(v)) => !values.contains(&v),
                ("NotIn", None) | ("Exists", Some(_)) | ("DoesNotExist", None) => true,
                _ => false,
            }
        });
    by_labels && by_expressions
}

/// `namespace.Matcher.MatchNamespaceSelector`: cluster-scoped objects other than namespaces
/// are never exempted; a namespace being created or updated is matched by its own labels.
fn namespace_matches(hook: &Webhook, a: &Attributes) -> bool {
    let is_namespace = a.r.group.is_empty() && a.r.plural == "namespaces";
    if a.namespace.is_empty() && !is_namespace {
        return true;
    }
    let labels = if is_namespace && a.subresource.is_empty() {
        &a.object["metadata"]["labels"]
    } else {
        &a.namespace_labels
    };
    selector_matches(&hook.namespace_selector, labels)
}

/// `object.Matcher.MatchObjectSelector`: the new object's labels or, on UPDATE, the old's.
fn object_matches(hook: &Webhook, a: &Attributes) -> bool {
    let sel = &hook.object_selector;
    selector_matches(sel, &a.object["metadata"]["labels"])
        || a.old_object
            .as_ref()
            .is_some_and(|o| selector_matches(sel, &o["metadata"]["labels"]))
}

/// `Webhook.ShouldCallHook`: a rule matches, and both selectors.
pub fn should_call(hook: &Webhook, a: &Attributes) -> bool {
    namespace_matches(hook, a)
        && object_matches(hook, a)
        && hook.rules.iter().any(|r| rule_matches(r, a))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::by_path;
    use serde_json::json;

    fn attrs(group: &str, plural: &str, sub: &str, ns: &str, op: &'static str) -> Attributes {
        Attributes {
            operation: op,
            r: by_path(group, "v1", plural).expect("served"),
            subresource: sub.to_owned(),
            namespace: ns.to_owned(),
            name: "x".to_owned(),
            object: json!({"metadata": {"name": "x", "labels": {"app": "web", "tier": "front"}}}),
            old_object: None,
            namespace_labels: json!({"env": "prod"}),
            options: json!({}),
            dry_run: false,
        }
    }

    fn rule(v: Value) -> Rule {
        serde_json::from_value(v).expect("a rule")
    }

    #[test]
    fn rules_match_as_the_real_server() {
        let deploy = attrs("apps", "deployments", "", "a", "CREATE");
        let base = json!({"operations": ["CREATE"], "apiGroups": ["apps"], "apiVersions": ["v1"], "resources": ["deployments"]});
        assert!(rule_matches(&rule(base.clone()), &deploy));
        let with = |k: &str, v: Value| {
            let mut r = base.clone();
            r[k] = v;
            rule(r)
        };
        assert!(!rule_matches(
            &with("operations", json!(["UPDATE"])),
            &deploy
        ));
        assert!(rule_matches(&with("operations", json!(["*"])), &deploy));
        assert!(!rule_matches(&with("apiGroups", json!([""])), &deploy));
        assert!(rule_matches(&with("apiGroups", json!(["*"])), &deploy));
        assert!(!rule_matches(
            &with("apiVersions", json!(["v1beta1"])),
            &deploy
        ));
        assert!(rule_matches(&with("resources", json!(["*"])), &deploy));
        // Subresources: "deployments" is not "deployments/status"; "*/status" and "deployments/*" are.
        let status = attrs("apps", "deployments", "status", "a", "CREATE");
        assert!(!rule_matches(
            &with("resources", json!(["deployments"])),
            &status
        ));
        assert!(!rule_matches(&with("resources", json!(["*"])), &status));
        assert!(rule_matches(
            &with("resources", json!(["*/status"])),
            &status
        ));
        assert!(rule_matches(
            &with("resources", json!(["deployments/*"])),
            &status
        ));
        assert!(rule_matches(&with("resources", json!(["*/*"])), &status));
        assert!(
            rule_matches(&with("resources", json!(["deployments/*"])), &deploy),
            "res/* includes the resource itself"
        );
        // Scope: a namespace object is cluster-scoped even though its namespace is its name.
        assert!(!rule_matches(&with("scope", json!("Cluster")), &deploy));
        assert!(rule_matches(&with("scope", json!("Namespaced")), &deploy));
        let ns_rule = json!({"operations": ["*"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["namespaces"]});
        let ns = attrs("", "namespaces", "", "x", "UPDATE");
        let scoped = |s: &str| {
            let mut r = ns_rule.clone();
            r["scope"] = json!(s);
            rule(r)
        };
        assert!(rule_matches(&scoped("Cluster"), &ns));
        assert!(!rule_matches(&scoped("Namespaced"), &ns));
        assert!(rule_matches(&scoped("*"), &ns));
    }

    #[test]
    fn selectors_match_as_the_real_server() {
        let labels = json!({"app": "web", "tier": "front"});
        let m = |s: Value| selector_matches(&s, &labels);
        assert!(m(json!({})));
        assert!(m(json!({"matchLabels": {"app": "web"}})));
        assert!(!m(json!({"matchLabels": {"app": "db"}})));
        assert!(!m(json!({"matchLabels": {"app": "web", "zone": "a"}})));
        let e = |op: &str, key: &str, values: Value| {
            m(json!({"matchExpressions": [{"key": key, "operator": op, "values": values}]}))
        };
        assert!(e("In", "tier", json!(["front", "back"])));
        assert!(!e("In", "zone", json!(["a"])));
        assert!(e("NotIn", "tier", json!(["back"])));
        assert!(
            e("NotIn", "zone", json!(["a"])),
            "NotIn matches a missing key"
        );
        assert!(!e("NotIn", "tier", json!(["front"])));
        assert!(e("Exists", "app", json!(null)));
        assert!(!e("Exists", "zone", json!(null)));
        assert!(e("DoesNotExist", "zone", json!(null)));
        assert!(!e("Bogus", "app", json!(null)));
        assert!(!selector_matches(
            &json!({"matchLabels": {"a": "b"}}),
            &Value::Null
        ));
    }

    fn hook(ns_sel: Value, obj_sel: Value) -> Webhook {
        Webhook {
            name: "h.kube-sim.test".into(),
            endpoint: super::super::config::Endpoint::Service {
                namespace: String::new(),
                name: String::new(),
            },
            rules: vec![rule(
                json!({"operations": ["*"], "apiGroups": ["*"], "apiVersions": ["*"], "resources": ["*"]}),
            )],
            ignore_failures: false,
            namespace_selector: ns_sel,
            object_selector: obj_sel,
            side_effects: "None".into(),
            timeout: std::time::Duration::from_secs(10),
            review_versions: vec!["v1".into()],
        }
    }

    #[test]
    fn selectors_choose_webhooks() {
        let deploy = attrs("apps", "deployments", "", "a", "UPDATE");
        let prod = json!({"matchLabels": {"env": "prod"}});
        assert!(should_call(&hook(prod.clone(), json!({})), &deploy));
        assert!(!should_call(
            &hook(json!({"matchLabels": {"env": "dev"}}), json!({})),
            &deploy
        ));
        // A cluster-scoped object other than a namespace ignores the namespaceSelector.
        let role = attrs(
            "rbac.authorization.k8s.io",
            "clusterroles",
            "",
            "",
            "CREATE",
        );
        assert!(should_call(
            &hook(json!({"matchLabels": {"env": "dev"}}), json!({})),
            &role
        ));
        // A namespace is matched by its own labels, not by a namespace's.
        let mut ns = attrs("", "namespaces", "", "x", "UPDATE");
        ns.object = json!({"metadata": {"labels": {"env": "dev"}}});
        assert!(should_call(
            &hook(json!({"matchLabels": {"env": "dev"}}), json!({})),
            &ns
        ));
        assert!(!should_call(&hook(prod, json!({})), &ns));
        // objectSelector: the new object's labels, or on UPDATE the old object's.
        let deny = json!({"matchLabels": {"deny": "true"}});
        let mut update = deploy.clone();
        assert!(!should_call(&hook(json!({}), deny.clone()), &update));
        update.old_object = Some(json!({"metadata": {"labels": {"deny": "true"}}}));
        assert!(should_call(&hook(json!({}), deny), &update));
    }
}
