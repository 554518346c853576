//! `admissionregistration.k8s.io/v1` MutatingWebhookConfiguration and
//! ValidatingWebhookConfiguration objects: the defaults the real server stores
//! (pkg/apis/admissionregistration/v1/defaults.go), and the webhooks they register, in the
//! order the real server calls them (configurations by name, webhooks in their order:
//! `configuration/mutating_webhook_manager.go` sorts by name).

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::resources::ResourceType;
use crate::store::{ListOptions, Store, resource};

pub const GROUP: &str = "admissionregistration.k8s.io";
pub const MUTATING: &str = "mutatingwebhookconfigurations";
pub const VALIDATING: &str = "validatingwebhookconfigurations";

/// Whether objects of `r` are webhook configurations (which no webhook is ever called for).
pub fn is_configuration(r: &ResourceType) -> bool {
    r.group == GROUP
}

/// What defaulting sets on a webhook configuration that the client left out.
pub fn set_defaults(r: &ResourceType, obj: &mut Value) {
    if !is_configuration(r) {
        return;
    }
    let mutating = r.plural == MUTATING;
    for hook in obj["webhooks"].as_array_mut().into_iter().flatten() {
        let Some(h) = hook.as_object_mut() else {
            continue;
        };
        let mut default = |key: &str, value: Value| {
            if h.get(key).is_none_or(Value::is_null) {
                h.insert(key.to_owned(), value);
            }
        };
        default("failurePolicy", json!("Fail"));
        default("matchPolicy", json!("Equivalent"));
        default("namespaceSelector", json!({}));
        default("objectSelector", json!({}));
        default("timeoutSeconds", json!(10));
        if mutating {
            default("reinvocationPolicy", json!("Never"));
        }
        for rule in h
            .get_mut("rules")
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            if rule.get("scope").is_none_or(Value::is_null) && rule.is_object() {
                rule["scope"] = json!("*");
            }
        }
        if let Some(service) = h
            .get_mut("clientConfig")
            .and_then(|c| c.get_mut("service"))
            .filter(|s| s.is_object())
            && service.get("port").is_none_or(Value::is_null)
        {
            service["port"] = json!(443);
        }
    }
}

/// One rule of a webhook: which operations on which resources it wants to see.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Rule {
    pub operations: Vec<String>,
    pub api_groups: Vec<String>,
    pub api_versions: Vec<String>,
    pub resources: Vec<String>,
    pub scope: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct RawClientConfig {
    url: Option<String>,
    ca_bundle: Option<String>,
    service: Option<Value>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct RawWebhook {
    name: String,
    client_config: RawClientConfig,
    rules: Vec<Rule>,
    failure_policy: Option<String>,
    namespace_selector: Option<Value>,
    object_selector: Option<Value>,
    side_effects: Option<String>,
    timeout_seconds: Option<u64>,
    admission_review_versions: Vec<String>,
}

/// Where a webhook is reached.
#[derive(Debug, Clone)]
pub enum Endpoint {
    /// `clientConfig.url`, trusting the PEM certificates of `caBundle`.
    Url { url: String, ca_pem: Vec<u8> },
    /// `clientConfig.service`: the simulator has no Services to route to.
    Service { namespace: String, name: String },
}

/// One registered webhook, as the dispatcher needs it.
#[derive(Debug, Clone)]
pub struct Webhook {
    pub name: String,
    pub endpoint: Endpoint,
    pub rules: Vec<Rule>,
    /// `failurePolicy: Ignore`: a webhook that cannot be called lets the request through.
    pub ignore_failures: bool,
    pub namespace_selector: Value,
    pub object_selector: Value,
    pub side_effects: String,
    pub timeout: Duration,
    pub review_versions: Vec<String>,
}

impl Webhook {
    fn from_raw(raw: RawWebhook) -> Webhook {
        let endpoint = match raw.client_config.url {
            Some(url) => Endpoint::Url {
                url,
                ca_pem: raw
                    .client_config
                    .ca_bundle
                    .and_then(|b| B64.decode(b).ok())
                    .unwrap_or_default(),
            },
            None => {
                let s = raw.client_config.service.unwrap_or_default();
                Endpoint::Service {
                    namespace: s["namespace"].as_str().unwrap_or_default().to_owned(),
                    name: s["name"].as_str().unwrap_or_default().to_owned(),
                }
            }
        };
        Webhook {
            name: raw.name,
            endpoint,
            rules: raw.rules,
            ignore_failures: raw.failure_policy.as_deref() == Some("Ignore"),
            namespace_selector: raw.namespace_selector.unwrap_or_else(|| json!({})),
            object_selector: raw.object_selector.unwrap_or_else(|| json!({})),
            side_effects: raw.side_effects.unwrap_or_default(),
            timeout: Duration::from_secs(raw.timeout_seconds.unwrap_or(10).clamp(1, 30)),
            review_versions: raw.admission_review_versions,
        }
    }
}

/// The webhooks of every stored configuration of `plural`, configurations by name (the
/// store keeps them in name order), webhooks in their order.
fn registered(store: &Store, plural: &str) -> Vec<Webhook> {
    let r = resource(plural);
    let Ok(page) = store.list(r, None, &ListOptions::default()) else {
        return Vec::new();
    };
    page.items
        .iter()
        .flat_map(|c| c["webhooks"].as_array().cloned().unwrap_or_default())
        .filter_map(|h| serde_json::from_value::<RawWebhook>(h).ok())
        .map(Webhook::from_raw)
        .collect()
}

/// The mutating and the validating webhooks registered now.
pub fn webhooks(store: &Store) -> (Vec<Webhook>, Vec<Webhook>) {
    (registered(store, MUTATING), registered(store, VALIDATING))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::by_path;

    #[test]
    fn defaults_are_the_real_servers() {
        let r = by_path(GROUP, "v1", MUTATING).expect("served");
        let mut obj = json!({"webhooks": [{"name": "a.b.c", "rules": [{"operations": ["CREATE"]}],
            "clientConfig": {"service": {"namespace": "n", "name": "s"}}, "timeoutSeconds": 3}]});
        set_defaults(r, &mut obj);
        let h = &obj["webhooks"][0];
        assert_eq!(h["failurePolicy"], "Fail");
        assert_eq!(h["matchPolicy"], "Equivalent");
        assert_eq!(h["namespaceSelector"], json!({}));
        assert_eq!(h["objectSelector"], json!({}));
        assert_eq!(h["timeoutSeconds"], 3, "a given value stays");
        assert_eq!(h["reinvocationPolicy"], "Never");
        assert_eq!(h["rules"][0]["scope"], "*");
        assert_eq!(h["clientConfig"]["service"]["port"], 443);
        let v = by_path(GROUP, "v1", VALIDATING).expect("served");
        let mut obj = json!({"webhooks": [{"name": "a.b.c"}]});
        set_defaults(v, &mut obj);
        assert!(obj["webhooks"][0].get("reinvocationPolicy").is_none());
    }
}
