//! The object store: every object, one cluster-wide resourceVersion, and the history of
//! changes that watches replay. All writes go through [`Store::commit`], so the order of
//! resourceVersions is the order of watch events, as with etcd's revisions.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::{Map, Value, json};
use tokio::sync::watch;

use crate::events;
use crate::resources::{RESOURCES, ResourceType, by_kind};
use crate::selector::{FieldSelector, LabelSelector};
use crate::status::ApiError;

pub use self::read::visible;
pub use crate::wire::{ListBody, list_body, list_metadata};

mod create;
mod delete;
mod read;
mod replace;

/// Namespaces every cluster has.
const SYSTEM_NAMESPACES: &[&str] = &["default", "kube-system", "kube-public", "kube-node-lease"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeType {
    Added,
    Modified,
    Deleted,
}

impl ChangeType {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeType::Added => "ADDED",
            ChangeType::Modified => "MODIFIED",
            ChangeType::Deleted => "DELETED",
        }
    }
}

/// One committed write, as watches see it.
#[derive(Debug)]
pub struct Change {
    pub rv: u64,
    pub kind: ChangeType,
    /// Storage key: the resource's plural (core and events.k8s.io Events share one).
    pub storage: &'static str,
    pub namespace: String,
    pub object: Arc<Value>,
    /// The object before this change, so a selector watch can turn a change that moves an
    /// object out of (into) the selection into DELETED (ADDED), as the watch cache does.
    pub previous: Option<Arc<Value>>,
}

type Key = (String, String);

struct State {
    rv: u64,
    objects: HashMap<&'static str, BTreeMap<Key, Arc<Value>>>,
    history: VecDeque<Arc<Change>>,
    history_limit: usize,
    /// A watch may start at any resourceVersion ≥ this; older ones get 410 Expired.
    oldest: u64,
    next_cluster_ip: u32,
}

/// How a list is filtered and paged.
#[derive(Debug, Default, Clone)]
pub struct ListOptions {
    pub labels: LabelSelector,
    pub fields: FieldSelector,
    pub limit: Option<usize>,
    pub continue_token: Option<String>,
}

/// One page of a list.
pub struct ListPage {
    pub items: Vec<Arc<Value>>,
    pub resource_version: u64,
    pub continue_token: Option<String>,
    pub remaining: Option<usize>,
}

/// Where a watch starts: the objects to send as ADDED first (for a watch without a
/// resourceVersion, or a streaming list), the changes to replay, and the cursor from which
/// to follow new changes.
pub struct WatchStart {
    pub initial: Vec<Arc<Value>>,
    pub backlog: Vec<Arc<Change>>,
    pub cursor: u64,
}

/// What an update or a patch stored, and whether it created the object (a PUT of a missing
/// object where the resource allows it, a server-side apply of a new one): 201 then, not 200.
pub struct Written {
    pub object: Arc<Value>,
    pub created: bool,
}

/// What a PUT or PATCH asks to store, before admission and the registry's checks: a
/// replacement of the stored object (`object` in the form the client used), or a create (a
/// PUT of a missing object where the resource allows it, server-side apply of a new one).
pub enum Proposal {
    Replace { old: Arc<Value>, object: Value },
    Create(Value),
}

/// A patch body and how to read it.
#[derive(Clone, Copy)]
pub enum Patch<'a> {
    Json(&'a [u8]),
    Merge(&'a [u8]),
    Strategic(&'a [u8]),
    Apply { body: &'a [u8], force: bool },
}

pub struct Store {
    state: Mutex<State>,
    /// The latest committed resourceVersion, for watches to wait on.
    head: watch::Sender<u64>,
    /// Bumped to end every open watch.
    epoch: watch::Sender<u64>,
}

fn now() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

fn meta_str<'a>(obj: &'a Value, key: &str) -> &'a str {
    obj["metadata"][key].as_str().unwrap_or_default()
}

/// The storage form of an object written through `r` (events.k8s.io Events are stored as
/// core Events; a Secret's `stringData` is written into its `data`).
fn to_storage(r: &ResourceType, obj: Value) -> Value {
    match (r.group, r.kind) {
        ("events.k8s.io", _) => events::to_core(obj),
        ("", "Secret") => merge_string_data(obj),
        _ => obj,
    }
}

/// Convert_v1_Secret_To_core_Secret: `stringData` overwrites keys of `data`, base64-encoded,
/// and is not stored.
fn merge_string_data(mut obj: Value) -> Value {
    use base64::Engine as _;
    let Some(Value::Object(strings)) = obj.as_object_mut().and_then(|o| o.remove("stringData"))
    else {
        return obj;
    };
    if !strings.is_empty() && !obj["data"].is_object() {
        obj["data"] = json!({});
    }
    for (k, v) in strings {
        let text = v.as_str().unwrap_or_default();
        obj["data"][k] = json!(base64::engine::general_purpose::STANDARD.encode(text));
    }
    obj
}

/// How an object of `r` is shown, from its storage form.
pub fn to_external(r: &ResourceType, obj: &Arc<Value>) -> Arc<Value> {
    if r.group == "events.k8s.io" {
        Arc::new(events::to_events_v1(obj))
    } else {
        Arc::clone(obj)
    }
}

/// `obj[key] = v.clone()`, without the index operator's copy of `key` when the field is
/// there already (as it mostly is: a replacement keeps what the stored object had).
fn set(obj: &mut Value, key: &str, v: &Value) {
    match obj.get_mut(key) {
        Some(slot) => *slot = v.clone(),
        None => obj[key] = v.clone(),
    }
}

fn parse_json(body: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("invalid JSON: {e}")))
}

/// Everything about two versions of an object that a write would change, ignoring the
/// resourceVersion (a write that changes nothing else is a no-op, as etcd3's store does).
/// Compared in place: copying both objects to strip the ignored fields first was a third of
/// the simulator's CPU for a patch.
fn same_content(a: &Value, b: &Value) -> bool {
    const IGNORED: [&str; 2] = ["resourceVersion", "managedFields"];
    let (Value::Object(a), Value::Object(b)) = (a, b) else {
        return a == b;
    };
    // An object without metadata compares as one with `"metadata": null` (what indexing
    // it for the ignored fields used to insert).
    fn metadata(m: &Map<String, Value>) -> &Value {
        m.get("metadata").unwrap_or(&Value::Null)
    }
    let same_metadata = match (metadata(a), metadata(b)) {
        (Value::Object(ma), Value::Object(mb)) => equal_except(ma, mb, &IGNORED),
        (ma, mb) => ma == mb,
    };
    same_metadata && equal_except(a, b, &["metadata"])
}

/// Whether two maps are equal once the `ignored` keys are left out of both.
fn equal_except(a: &Map<String, Value>, b: &Map<String, Value>, ignored: &[&str]) -> bool {
    let kept = |m: &Map<String, Value>| m.keys().filter(|k| !ignored.contains(&k.as_str())).count();
    kept(a) == kept(b)
        && a.iter()
            .filter(|(k, _)| !ignored.contains(&k.as_str()))
            .all(|(k, v)| b.get(k) == Some(v))
}

impl Store {
    pub fn new(history_limit: usize) -> Store {
        let store = Store {
            state: Mutex::new(State {
                rv: 1,
                objects: HashMap::new(),
                history: VecDeque::new(),
                history_limit: history_limit.max(1),
                oldest: 1,
                next_cluster_ip: 1,
            }),
            head: watch::channel(1).0,
            epoch: watch::channel(0).0,
        };
        for ns in SYSTEM_NAMESPACES {
            let r = resource("namespaces");
            let body = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
            let _ = store.create(r, "", body, false);
        }
        let svc = json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "kubernetes", "labels": {"component": "apiserver", "provider": "kubernetes"}},
            "spec": {"ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}],
                     "type": "ClusterIP", "sessionAffinity": "None"}});
        let _ = store.create(resource("services"), "default", svc, false);
        store
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves consistent data: every mutation is a single
        // insert after all checks.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn resource_version(&self) -> u64 {
        self.lock().rv
    }

    pub fn subscribe(&self) -> (watch::Receiver<u64>, watch::Receiver<u64>) {
        (self.head.subscribe(), self.epoch.subscribe())
    }

    /// Ends every open watch (the client sees its stream close, as when an API server
    /// restarts or a load balancer drops the connection).
    pub fn drop_watches(&self) {
        self.epoch.send_modify(|e| *e += 1);
    }

    /// Forgets the history: a watch from any resourceVersion older than the current one gets
    /// 410 Expired, as after an etcd compaction.
    pub fn expire(&self) {
        let mut s = self.lock();
        s.history.clear();
        s.oldest = s.rv;
    }

    /// Records a write: new resourceVersion, history, wake the watches.
    fn commit(
        &self,
        s: &mut State,
        r: &'static ResourceType,
        kind: ChangeType,
        mut object: Value,
        previous: Option<Arc<Value>>,
    ) -> Arc<Value> {
        s.rv += 1;
        let rv = s.rv;
        object["metadata"]["resourceVersion"] = json!(rv.to_string());
        let ns = meta_str(&object, "namespace").to_owned();
        let name = meta_str(&object, "name").to_owned();
        let object = Arc::new(object);
        let table = s.objects.entry(r.plural).or_default();
        if kind == ChangeType::Deleted {
            table.remove(&(ns.clone(), name));
        } else {
            table.insert((ns.clone(), name), Arc::clone(&object));
        }
        s.history.push_back(Arc::new(Change {
            rv,
            kind,
            storage: r.plural,
            namespace: ns,
            object: Arc::clone(&object),
            previous,
        }));
        while s.history.len() > s.history_limit {
            if let Some(c) = s.history.pop_front() {
                s.oldest = c.rv;
            }
        }
        self.head.send_replace(rv);
        object
    }

    fn current(s: &State, r: &ResourceType, ns: &str, name: &str) -> Option<Arc<Value>> {
        s.objects
            .get(r.plural)
            .and_then(|t| t.get(&(ns.to_owned(), name.to_owned())))
            .cloned()
    }

    fn check_kind(r: &ResourceType, obj: &Value) -> Result<(), ApiError> {
        let (Some(av), Some(kind)) = (obj["apiVersion"].as_str(), obj["kind"].as_str()) else {
            return Ok(());
        };
        if kind != r.kind {
            return Err(ApiError::bad_request(format!(
                "the kind in the data ({kind}) does not match the expected kind ({})",
                r.kind
            )));
        }
        if av != r.api_version() {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({av}) does not match the expected API version ({})",
                r.api_version()
            )));
        }
        Ok(())
    }

    fn check_namespace(r: &ResourceType, ns: &str, obj: &mut Value) -> Result<(), ApiError> {
        if !r.namespaced {
            if let Some(m) = obj["metadata"].as_object_mut() {
                m.remove("namespace");
            }
            return Ok(());
        }
        match obj["metadata"]["namespace"].as_str() {
            Some(given) if !given.is_empty() && given != ns => Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            )),
            _ => {
                obj["metadata"]["namespace"] = json!(ns);
                Ok(())
            }
        }
    }

    /// GET one object.
    pub fn get(
        &self,
        r: &'static ResourceType,
        ns: &str,
        name: &str,
    ) -> Result<Arc<Value>, ApiError> {
        let s = self.lock();
        Self::current(&s, r, ns, name)
            .map(|o| to_external(r, &o))
            .ok_or_else(|| ApiError::not_found(r, name))
    }
}

/// The core-group resource named `plural` (namespaces, pods, ...) or, for the apps and batch
/// kinds, the one of that plural in any group.
pub fn resource(plural: &str) -> &'static ResourceType {
    RESOURCES
        .iter()
        .find(|r| r.plural == plural && r.group.is_empty())
        .or_else(|| RESOURCES.iter().find(|r| r.plural == plural))
        .unwrap_or(&RESOURCES[0])
}

/// The resource whose table holds objects of `r`.
fn storage_of(r: &'static ResourceType) -> &'static ResourceType {
    if r.group == "events.k8s.io" {
        resource("events")
    } else {
        r
    }
}

fn parse_apply(body: &[u8]) -> Result<Value, ApiError> {
    serde_yaml_ng::from_slice::<Value>(body)
        .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))
}

/// An apply patch names its type, and its object when it creates one; applied to an existing
/// object it may leave the name out, as the real server takes the URL's (kube-lease-manager's
/// patches do: checked against kube-apiserver 1.20.2 in the fidelity tests).
fn check_apply_identity(
    r: &ResourceType,
    name: &str,
    obj: &Value,
    existing: bool,
) -> Result<(), ApiError> {
    let av = obj["apiVersion"].as_str().unwrap_or_default();
    let kind = obj["kind"].as_str().unwrap_or_default();
    if av.is_empty() || kind.is_empty() {
        return Err(ApiError::bad_request(
            "apiVersion and kind must be set in an apply patch",
        ));
    }
    if by_kind(av, kind).is_none_or(|k| k.plural != r.plural) {
        return Err(ApiError::bad_request(format!(
            "the apply patch's apiVersion/kind {av}/{kind} does not match the resource {}",
            r.qualified()
        )));
    }
    let given = meta_str(obj, "name");
    if given != name && !(existing && given.is_empty()) {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({given}) does not match the name on the URL ({name})"
        )));
    }
    Ok(())
}

/// For seeding: the resource of an object from its apiVersion and kind.
pub fn resource_of(obj: &Value) -> Result<&'static ResourceType, ApiError> {
    let av = obj["apiVersion"].as_str().unwrap_or_default();
    let kind = obj["kind"].as_str().unwrap_or_default();
    by_kind(av, kind).ok_or_else(|| {
        ApiError::bad_request(format!(
            "no resource of apiVersion {av:?} and kind {kind:?} is served"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `same_content` answered when it compared stripped copies.
    fn stripped_equal(a: &Value, b: &Value) -> bool {
        let strip = |v: &Value| {
            let mut v = v.clone();
            if let Some(m) = v["metadata"].as_object_mut() {
                m.remove("resourceVersion");
                m.remove("managedFields");
            }
            v
        };
        strip(a) == strip(b)
    }

    #[test]
    fn same_content_ignores_what_copies_stripped() {
        let base = json!({"kind": "K", "metadata": {"name": "a", "resourceVersion": "1",
            "managedFields": [1]}, "spec": {"x": 1}});
        let variants = [
            json!({"kind": "K", "metadata": {"name": "a", "resourceVersion": "2"}, "spec": {"x": 1}}),
            json!({"kind": "K", "metadata": {"name": "a"}, "spec": {"x": 2}}),
            json!({"kind": "K", "metadata": {"name": "b", "resourceVersion": "1"}, "spec": {"x": 1}}),
            json!({"kind": "K", "metadata": {"name": "a"}, "spec": {"x": 1}, "status": {}}),
            json!({"kind": "K", "metadata": null, "spec": {"x": 1}}),
            json!({"kind": "K", "spec": {"x": 1}}),
            json!({"kind": "K", "metadata": "text", "spec": {"x": 1}}),
            json!({"metadata": {"name": "a"}, "spec": {"x": 1}}),
        ];
        for a in std::iter::once(&base).chain(&variants) {
            for b in std::iter::once(&base).chain(&variants) {
                assert_eq!(same_content(a, b), stripped_equal(a, b), "{a} vs {b}");
            }
        }
    }
}
