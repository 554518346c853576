//! Admission webhooks, as kube-apiserver runs them on CREATE and UPDATE (PUT and PATCH,
//! which it admits as UPDATE of the patched object): the namespace must be open, then the
//! mutating webhooks change the object, the registry prepares and validates it, the
//! validating webhooks see the result, and only then is it stored. Webhook configurations
//! are `admissionregistration.k8s.io/v1` objects in the store; they take effect at once.
//! README.md lists what is reproduced and what not.

mod client;
mod config;
mod dispatch;
mod matching;
mod validation;

use std::sync::Arc;

use serde_json::{Value, json};

pub use config::set_defaults;
use config::{Webhook, is_configuration};
use dispatch::Warnings;
use matching::Attributes;
pub use validation::validate as validate_configuration;

use crate::resources::ResourceType;
use crate::status::ApiError;
use crate::store::{self, Patch, Proposal, Store, resource};

/// How often an update whose object changed under it (between its read and its write,
/// while webhooks were called) starts over before it answers 409, as GuaranteedUpdate does.
const ATTEMPTS: usize = 5;

/// The webhooks registered when a write arrives.
pub struct Registered {
    mutating: Vec<Webhook>,
    validating: Vec<Webhook>,
}

/// The webhooks a write to `r` goes through; None when none is registered, or when `r` is
/// itself a webhook configuration (the real server never sends those to webhooks).
pub fn registered(store: &Store, r: &ResourceType) -> Option<Registered> {
    if is_configuration(r) {
        return None;
    }
    let (mutating, validating) = config::webhooks(store);
    (!mutating.is_empty() || !validating.is_empty()).then_some(Registered {
        mutating,
        validating,
    })
}

/// The query parameters of a write that admission passes on.
#[derive(Debug, Clone, Default)]
pub struct WriteOptions {
    pub dry_run: bool,
    pub field_manager: Option<String>,
    pub field_validation: Option<String>,
    /// `status` for the status subresource.
    pub subresource: Option<String>,
}

impl WriteOptions {
    /// CreateOptions or UpdateOptions, as the webhook sees them.
    fn for_webhook(&self, operation: &str) -> Value {
        let kind = if operation == "CREATE" {
            "CreateOptions"
        } else {
            "UpdateOptions"
        };
        let mut o = json!({"kind": kind, "apiVersion": "meta.k8s.io/v1"});
        if self.dry_run {
            o["dryRun"] = json!(["All"]);
        }
        if let Some(m) = &self.field_manager {
            o["fieldManager"] = json!(m);
        }
        if let Some(v) = &self.field_validation {
            o["fieldValidation"] = json!(v);
        }
        o
    }
}

/// A write's outcome (status code and object, or the error) and the webhooks' warnings,
/// which the client gets either way.
pub struct Admitted {
    pub result: Result<(u16, Arc<Value>), ApiError>,
    pub warnings: Vec<String>,
}

/// What a PUT or a PATCH asks for.
pub enum Change<'a> {
    Put(Value),
    Patch(Patch<'a>),
}

/// The labels of the namespace a create goes to; 404 or 403 (Terminating) as the
/// NamespaceLifecycle plugin answers, before any webhook is called.
fn open_namespace(store: &Store, r: &ResourceType, ns: &str) -> Result<Value, ApiError> {
    if !r.namespaced {
        return Ok(Value::Null);
    }
    let found = store
        .get(resource("namespaces"), "", ns)
        .map_err(|_| ApiError::namespace_not_found(ns))?;
    if found["metadata"]["deletionTimestamp"].is_string() {
        return Err(ApiError::namespace_terminating(ns));
    }
    Ok(found["metadata"]["labels"].clone())
}

fn attributes(
    r: &'static ResourceType,
    operation: &'static str,
    ns: &str,
    object: Value,
    old_object: Option<Value>,
    opts: &WriteOptions,
) -> Attributes {
    let name = object["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let namespace = match (r.namespaced, r.plural, operation) {
        (true, _, _) => ns.to_owned(),
        (false, "namespaces", "UPDATE") if r.group.is_empty() => name.clone(),
        _ => String::new(),
    };
    Attributes {
        operation,
        r,
        subresource: opts.subresource.clone().unwrap_or_default(),
        namespace,
        name,
        object,
        old_object,
        namespace_labels: Value::Null,
        options: opts.for_webhook(operation),
        dry_run: opts.dry_run,
    }
}

/// POST through admission.
pub async fn create(
    hooks: &Registered,
    store: &Store,
    r: &'static ResourceType,
    ns: &str,
    object: Value,
    opts: &WriteOptions,
) -> Admitted {
    let mut warnings = Warnings::default();
    let result = create_admitted(hooks, store, r, ns, object, opts, &mut warnings).await;
    Admitted {
        result: result.map(|o| (201, o)),
        warnings: warnings.0,
    }
}

async fn create_admitted(
    hooks: &Registered,
    store: &Store,
    r: &'static ResourceType,
    ns: &str,
    mut object: Value,
    opts: &WriteOptions,
    warnings: &mut Warnings,
) -> Result<Arc<Value>, ApiError> {
    let namespace_labels = open_namespace(store, r, ns)?;
    if object["apiVersion"].is_null() {
        object["apiVersion"] = json!(r.api_version());
    }
    if object["kind"].is_null() {
        object["kind"] = json!(r.kind);
    }
    // Current servers set the request's namespace on the object before admission.
    if r.namespaced
        && object["metadata"]["namespace"]
            .as_str()
            .is_none_or(str::is_empty)
    {
        object["metadata"]["namespace"] = json!(ns);
    }
    let mut a = attributes(r, "CREATE", ns, object, None, opts);
    a.namespace_labels = namespace_labels;
    dispatch::mutate(&hooks.mutating, &mut a, warnings).await?;
    let prepared = store.prepare_create(r, ns, a.object.clone())?;
    a.object = (*store::to_external(r, &Arc::new(prepared.clone()))).clone();
    dispatch::validate(&hooks.validating, &a, warnings).await?;
    store.commit_create(r, ns, prepared, opts.dry_run)
}

/// PUT or PATCH through admission. A PUT of a missing object that the resource allows, or a
/// server-side apply of a new one, is admitted as CREATE.
pub async fn update(
    hooks: &Registered,
    store: &Store,
    r: &'static ResourceType,
    (ns, name): (&str, &str),
    change: Change<'_>,
    opts: &WriteOptions,
) -> Admitted {
    let mut warnings = Warnings::default();
    let status_only = opts.subresource.as_deref() == Some("status");
    let mut result = Err(ApiError::conflict(r, name));
    for _ in 0..ATTEMPTS {
        let proposal = match &change {
            Change::Put(body) => store.propose_update(r, ns, name, body.clone(), status_only),
            Change::Patch(patch) => store.propose_patch(r, ns, name, *patch),
        };
        let attempt = match proposal {
            Err(e) => Err(e),
            Ok(Proposal::Create(object)) => {
                create_admitted(hooks, store, r, ns, object, opts, &mut warnings)
                    .await
                    .map(|o| Some((201, o)))
            }
            Ok(Proposal::Replace { old, object }) => {
                replace(hooks, store, r, ns, (old, object), opts, &mut warnings)
                    .await
                    .map(|o| o.map(|o| (200, o)))
            }
        };
        match attempt {
            Ok(None) => continue,
            Ok(Some(done)) => {
                result = Ok(done);
                break;
            }
            Err(e) => {
                result = Err(e);
                break;
            }
        }
    }
    Admitted {
        result,
        warnings: warnings.0,
    }
}

/// One attempt at an UPDATE; None when another write changed the object meanwhile.
async fn replace(
    hooks: &Registered,
    store: &Store,
    r: &'static ResourceType,
    ns: &str,
    (old, object): (Arc<Value>, Value),
    opts: &WriteOptions,
    warnings: &mut Warnings,
) -> Result<Option<Arc<Value>>, ApiError> {
    let status_only = opts.subresource.as_deref() == Some("status");
    let old_external = (*store::to_external(r, &old)).clone();
    let mut a = attributes(r, "UPDATE", ns, object, Some(old_external), opts);
    if r.namespaced {
        a.namespace_labels = store
            .get(resource("namespaces"), "", ns)
            .map(|n| n["metadata"]["labels"].clone())
            .unwrap_or(Value::Null);
    }
    dispatch::mutate(&hooks.mutating, &mut a, warnings).await?;
    let prepared = Store::prepare_replace(r, &old, a.object.clone(), status_only)?;
    a.object = (*store::to_external(r, &Arc::new(prepared.clone()))).clone();
    dispatch::validate(&hooks.validating, &a, warnings).await?;
    Ok(store.commit_if_unchanged(r, &old, prepared, opts.dry_run))
}
