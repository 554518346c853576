//! The object store: every object, one cluster-wide resourceVersion, and the history of
//! changes that watches replay. All writes go through [`Store::commit`], so the order of
//! resourceVersions is the order of watch events, as with etcd's revisions.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::{Map, Value, json};
use tokio::sync::watch;

use crate::admission;
use crate::events;
use crate::resources::{RESOURCES, ResourceType, by_kind};
use crate::selector::{FieldSelector, LabelSelector};
use crate::status::ApiError;
use crate::strategic;
use crate::validation;

pub use crate::wire::{ListBody, list_body, list_metadata};

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

    /// POST: a new object.
    pub fn create(
        &self,
        r: &'static ResourceType,
        ns: &str,
        body: Value,
        dry_run: bool,
    ) -> Result<Arc<Value>, ApiError> {
        let stored = self.create_stored(r, ns, body, dry_run)?;
        Ok(to_external(r, &stored))
    }

    /// [`Store::create`], answering the object in its storage form: the server writes the
    /// response from it ([`crate::wire::external`]) instead of converting a copy.
    pub fn create_stored(
        &self,
        r: &'static ResourceType,
        ns: &str,
        body: Value,
        dry_run: bool,
    ) -> Result<Arc<Value>, ApiError> {
        let obj = self.prepare_create(r, ns, body)?;
        self.commit_stored(r, ns, obj, dry_run)
    }

    /// A create up to the write: the object as it would be stored (generated name, uid,
    /// timestamps, what the registry sets), validated, its namespace open. Split from
    /// [`Store::commit_create`] for admission, whose validating webhooks see this object.
    pub fn prepare_create(
        &self,
        r: &'static ResourceType,
        ns: &str,
        body: Value,
    ) -> Result<Value, ApiError> {
        Self::check_kind(r, &body)?;
        let mut obj = to_storage(r, body);
        let storage_r = storage_of(r);
        if !obj["metadata"].is_object() {
            obj["metadata"] = json!({});
        }
        obj["apiVersion"] = json!(storage_r.api_version());
        obj["kind"] = json!(storage_r.kind);
        Self::check_namespace(r, ns, &mut obj)?;
        admission::set_defaults(r, &mut obj);
        let mut s = self.lock();
        if meta_str(&obj, "name").is_empty()
            && let Some(prefix) = obj["metadata"]["generateName"].as_str()
        {
            let suffix: String = uuid::Uuid::new_v4().simple().to_string()[..5].to_owned();
            obj["metadata"]["name"] = json!(format!("{prefix}{suffix}"));
        }
        let name = meta_str(&obj, "name").to_owned();
        let causes = validation::validate(r, &obj);
        if !causes.is_empty() {
            return Err(ApiError::invalid(r, &name, &causes));
        }
        if r.namespaced {
            match Self::current(&s, resource("namespaces"), "", ns) {
                None => return Err(ApiError::namespace_not_found(ns)),
                Some(n) if n["metadata"]["deletionTimestamp"].is_string() => {
                    return Err(ApiError::namespace_terminating(ns));
                }
                Some(_) => {}
            }
        }
        let meta = obj["metadata"]
            .as_object_mut()
            .ok_or_else(|| ApiError::bad_request("metadata must be an object"))?;
        meta.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
        meta.insert("creationTimestamp".into(), json!(now()));
        for k in [
            "resourceVersion",
            "deletionTimestamp",
            "managedFields",
            "selfLink",
        ] {
            meta.remove(k);
        }
        if r.generation {
            meta.insert("generation".into(), json!(1));
        } else {
            meta.remove("generation");
        }
        Self::prepare_for_create(&mut s, r, &mut obj);
        Ok(obj)
    }

    /// Stores an object from [`Store::prepare_create`]: 409 AlreadyExists when its name is
    /// taken (checked here, at the write, as etcd does).
    pub fn commit_create(
        &self,
        r: &'static ResourceType,
        ns: &str,
        obj: Value,
        dry_run: bool,
    ) -> Result<Arc<Value>, ApiError> {
        let stored = self.commit_stored(r, ns, obj, dry_run)?;
        Ok(to_external(r, &stored))
    }

    /// [`Store::commit_create`], answering the storage form.
    fn commit_stored(
        &self,
        r: &'static ResourceType,
        ns: &str,
        mut obj: Value,
        dry_run: bool,
    ) -> Result<Arc<Value>, ApiError> {
        let storage_r = storage_of(r);
        let name = meta_str(&obj, "name").to_owned();
        let mut s = self.lock();
        if Self::current(&s, storage_r, ns, &name).is_some() {
            return Err(ApiError::already_exists(r, &name));
        }
        if dry_run {
            obj["metadata"]["resourceVersion"] = json!("");
            return Ok(Arc::new(obj));
        }
        Ok(self.commit(&mut s, storage_r, ChangeType::Added, obj, None))
    }

    /// What each registry's PrepareForCreate sets.
    fn prepare_for_create(s: &mut State, r: &ResourceType, obj: &mut Value) {
        match r.kind {
            "Namespace" => {
                let name = meta_str(obj, "name").to_owned();
                obj["metadata"]["labels"]["kubernetes.io/metadata.name"] = json!(name);
                obj["spec"] = json!({"finalizers": ["kubernetes"]});
                obj["status"] = json!({"phase": "Active"});
            }
            "Pod" => obj["status"] = json!({"phase": "Pending"}),
            // SetDefaults_Secret: `kubectl create secret generic` sends no type.
            "Secret" if obj["type"].as_str().is_none_or(str::is_empty) => {
                obj["type"] = json!("Opaque");
            }
            "Job" => {
                // generateSelector (pkg/registry/batch/job/strategy.go): the Job's pods are
                // labelled with its uid, the selector matches that, and a Job without labels
                // takes its template's.
                if obj["spec"]["manualSelector"] != json!(true) {
                    let uid = meta_str(obj, "uid").to_owned();
                    let name = meta_str(obj, "name").to_owned();
                    let labels = &mut obj["spec"]["template"]["metadata"]["labels"];
                    for (k, v) in [
                        ("batch.kubernetes.io/controller-uid", &uid),
                        ("batch.kubernetes.io/job-name", &name),
                        ("controller-uid", &uid),
                        ("job-name", &name),
                    ] {
                        labels[k] = json!(v);
                    }
                    obj["spec"]["selector"] =
                        json!({"matchLabels": {"batch.kubernetes.io/controller-uid": uid}});
                }
                if obj["metadata"]["labels"]
                    .as_object()
                    .is_none_or(|l| l.is_empty())
                {
                    obj["metadata"]["labels"] =
                        obj["spec"]["template"]["metadata"]["labels"].clone();
                }
                obj["status"] = json!({});
            }
            "Service" => {
                let spec = &mut obj["spec"];
                if spec["type"].as_str() != Some("ExternalName") && spec["clusterIP"].is_null() {
                    let n = s.next_cluster_ip;
                    s.next_cluster_ip += 1;
                    let ip = format!("10.0.{}.{}", n / 256, n % 256);
                    spec["clusterIP"] = json!(ip);
                    spec["clusterIPs"] = json!([ip]);
                }
                obj["status"] = json!({"loadBalancer": {}});
            }
            _ if r.status => obj["status"] = json!({}),
            _ => {}
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

    /// PUT: replace an object, with optimistic concurrency on `metadata.resourceVersion`.
    pub fn update(
        &self,
        r: &'static ResourceType,
        ns: &str,
        name: &str,
        body: Value,
        status_only: bool,
        dry_run: bool,
    ) -> Result<Written, ApiError> {
        let s = self.lock();
        let proposal = Self::propose_put(&s, r, ns, name, body, status_only)?;
        self.write(s, r, ns, proposal, status_only, dry_run)
    }

    /// What a PUT asks to store (see [`Proposal`]), for admission.
    pub fn propose_update(
        &self,
        r: &'static ResourceType,
        ns: &str,
        name: &str,
        body: Value,
        status_only: bool,
    ) -> Result<Proposal, ApiError> {
        Self::propose_put(&self.lock(), r, ns, name, body, status_only)
    }

    fn propose_put(
        s: &State,
        r: &'static ResourceType,
        ns: &str,
        name: &str,
        body: Value,
        status_only: bool,
    ) -> Result<Proposal, ApiError> {
        Self::check_kind(r, &body)?;
        let mut obj = body;
        if !obj["metadata"].is_object() {
            obj["metadata"] = json!({});
        }
        let given = meta_str(&obj, "name");
        if given != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({given}) does not match the name on the URL ({name})"
            )));
        }
        Self::check_namespace(r, ns, &mut obj)?;
        match Self::current(s, r, ns, name) {
            Some(old) => Ok(Proposal::Replace { old, object: obj }),
            None if r.create_on_update && !status_only => Ok(Proposal::Create(obj)),
            None => Err(ApiError::not_found(r, name)),
        }
    }

    /// The common end of update and patch, the lock held from the proposal to the write.
    fn write(
        &self,
        mut s: MutexGuard<'_, State>,
        r: &'static ResourceType,
        ns: &str,
        proposal: Proposal,
        status_only: bool,
        dry_run: bool,
    ) -> Result<Written, ApiError> {
        match proposal {
            Proposal::Create(obj) => {
                drop(s);
                self.create(r, ns, obj, dry_run).map(|object| Written {
                    object,
                    created: true,
                })
            }
            Proposal::Replace { old, object } => {
                let obj = Self::prepare_replace(r, &old, object, status_only)?;
                Ok(Written {
                    object: self.commit_replace(&mut s, r, old, obj, dry_run),
                    created: false,
                })
            }
        }
    }

    /// A replacement of `old` up to the write: optimistic concurrency (a resourceVersion that
    /// is not the stored one is a 409), what the client may not change kept, validated, the
    /// generation bumped on spec changes. Admission's validating webhooks see the result.
    pub fn prepare_replace(
        r: &'static ResourceType,
        old: &Value,
        obj: Value,
        status_only: bool,
    ) -> Result<Value, ApiError> {
        let name = meta_str(old, "name").to_owned();
        let mut obj = to_storage(r, obj);
        if !obj["metadata"].is_object() {
            obj["metadata"] = json!({});
        }
        let given_rv = meta_str(&obj, "resourceVersion");
        if !given_rv.is_empty() && given_rv != meta_str(old, "resourceVersion") {
            return Err(ApiError::conflict(r, &name));
        }
        admission::set_defaults(r, &mut obj);
        if status_only {
            let status = obj["status"].take();
            obj = old.clone();
            obj["status"] = status;
        } else if r.status {
            match old.get("status") {
                Some(st) => obj["status"] = st.clone(),
                None => {
                    if let Some(m) = obj.as_object_mut() {
                        m.remove("status");
                    }
                }
            }
        }
        set(&mut obj, "apiVersion", &old["apiVersion"]);
        set(&mut obj, "kind", &old["kind"]);
        let (old_meta, meta) = (&old["metadata"], &mut obj["metadata"]);
        for key in [
            "uid",
            "creationTimestamp",
            "namespace",
            "deletionTimestamp",
            "generation",
        ] {
            match old_meta.get(key) {
                Some(v) => set(meta, key, v),
                None => {
                    if let Some(m) = meta.as_object_mut() {
                        m.remove(key);
                    }
                }
            }
        }
        set(meta, "resourceVersion", &old_meta["resourceVersion"]);
        if r.kind == "Namespace" {
            obj["spec"] = old["spec"].clone();
            obj["metadata"]["labels"]["kubernetes.io/metadata.name"] = json!(name);
        }
        let mut causes = validation::validate(r, &obj);
        causes.extend(validation::immutable(r, old, &obj));
        if !causes.is_empty() {
            return Err(ApiError::invalid(r, &name, &causes));
        }
        if r.generation && Self::bumps_generation(r, old, &obj) {
            let g = old["metadata"]["generation"].as_i64().unwrap_or(0);
            obj["metadata"]["generation"] = json!(g + 1);
        }
        Ok(obj)
    }

    /// Stores a prepared replacement; a write that changes nothing is skipped (no new
    /// resourceVersion, no event), as etcd3's store does.
    fn commit_replace(
        &self,
        s: &mut State,
        r: &'static ResourceType,
        old: Arc<Value>,
        obj: Value,
        dry_run: bool,
    ) -> Arc<Value> {
        if same_content(&old, &obj) {
            return to_external(r, &old);
        }
        if dry_run {
            return to_external(r, &Arc::new(obj));
        }
        let stored = self.commit(s, r, ChangeType::Modified, obj, Some(old));
        to_external(r, &stored)
    }

    /// For admission, which prepares a replacement without holding the lock: stores it if
    /// `old` is still the stored object; None when another write came first (the caller
    /// starts over, as the real server's GuaranteedUpdate does).
    pub fn commit_if_unchanged(
        &self,
        r: &'static ResourceType,
        old: &Arc<Value>,
        obj: Value,
        dry_run: bool,
    ) -> Option<Arc<Value>> {
        let mut s = self.lock();
        let current = Self::current(&s, r, meta_str(old, "namespace"), meta_str(old, "name"))?;
        Arc::ptr_eq(&current, old)
            .then(|| self.commit_replace(&mut s, r, Arc::clone(old), obj, dry_run))
    }

    /// Spec changes bump the generation; a Deployment's annotation changes do too, because
    /// they are copied to its ReplicaSets (pkg/registry/apps/deployment/strategy.go); a
    /// webhook configuration's generation follows its `webhooks`.
    fn bumps_generation(r: &ResourceType, old: &Value, new: &Value) -> bool {
        old["spec"] != new["spec"]
            || (r.kind == "Deployment"
                && old["metadata"]["annotations"] != new["metadata"]["annotations"])
            || old["webhooks"] != new["webhooks"]
    }

    /// PATCH, in any of the four patch types.
    pub fn patch(
        &self,
        r: &'static ResourceType,
        ns: &str,
        name: &str,
        patch: Patch<'_>,
        status_only: bool,
        dry_run: bool,
    ) -> Result<Written, ApiError> {
        let s = self.lock();
        let proposal = Self::propose_patched(&s, r, ns, name, patch)?;
        self.write(s, r, ns, proposal, status_only, dry_run)
    }

    /// What a PATCH asks to store (see [`Proposal`]), for admission.
    pub fn propose_patch(
        &self,
        r: &'static ResourceType,
        ns: &str,
        name: &str,
        patch: Patch<'_>,
    ) -> Result<Proposal, ApiError> {
        Self::propose_patched(&self.lock(), r, ns, name, patch)
    }

    fn propose_patched(
        s: &State,
        r: &'static ResourceType,
        ns: &str,
        name: &str,
        patch: Patch<'_>,
    ) -> Result<Proposal, ApiError> {
        let Some(old) = Self::current(s, r, ns, name) else {
            if let Patch::Apply { body, .. } = patch {
                let obj = parse_apply(body)?;
                check_apply_identity(r, name, &obj, false)?;
                return Ok(Proposal::Create(obj));
            }
            return Err(ApiError::not_found(r, name));
        };
        let external = to_external(r, &old);
        let patched = match patch {
            Patch::Json(body) => {
                let p: json_patch::Patch = serde_json::from_slice(body)
                    .map_err(|e| ApiError::bad_request(format!("invalid JSON patch: {e}")))?;
                let mut doc = (*external).clone();
                json_patch::patch(&mut doc, &p).map_err(|_| ApiError::patch_not_applicable())?;
                doc
            }
            Patch::Merge(body) => {
                let p = parse_json(body)?;
                let mut doc = (*external).clone();
                json_patch::merge(&mut doc, &p);
                doc
            }
            Patch::Strategic(body) => {
                let p = parse_json(body)?;
                strategic::apply(&external, &p, r.kind)
                    .map_err(|e| ApiError::bad_request(e.to_string()))?
            }
            Patch::Apply { body, .. } => {
                let p = parse_apply(body)?;
                check_apply_identity(r, name, &p, true)?;
                strategic::apply(&external, &p, r.kind)
                    .map_err(|e| ApiError::bad_request(e.to_string()))?
            }
        };
        if !patched.is_object() {
            return Err(ApiError::bad_request("the patch does not yield an object"));
        }
        // A resourceVersion in the patch is a precondition ([`Store::prepare_replace`]).
        if meta_str(&patched, "name") != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({}) does not match the name on the URL ({name})",
                meta_str(&patched, "name")
            )));
        }
        Ok(Proposal::Replace {
            old,
            object: patched,
        })
    }

    /// DELETE one object. Returns what the real server returns: the object for kinds with
    /// graceful deletion (pods, namespaces), a Success Status otherwise.
    pub fn delete(
        &self,
        r: &'static ResourceType,
        ns: &str,
        name: &str,
        preconditions: &Value,
        dry_run: bool,
    ) -> Result<Value, ApiError> {
        let mut s = self.lock();
        let storage_r = storage_of(r);
        let old =
            Self::current(&s, storage_r, ns, name).ok_or_else(|| ApiError::not_found(r, name))?;
        if let Some(uid) = preconditions["uid"].as_str()
            && uid != meta_str(&old, "uid")
        {
            return Err(ApiError::precondition_failed(
                r,
                name,
                &format!(
                    "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                    meta_str(&old, "uid")
                ),
            ));
        }
        if let Some(rv) = preconditions["resourceVersion"].as_str()
            && rv != meta_str(&old, "resourceVersion")
        {
            return Err(ApiError::precondition_failed(
                r,
                name,
                &format!(
                    "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                    meta_str(&old, "resourceVersion")
                ),
            ));
        }
        if dry_run {
            return Ok((*to_external(r, &old)).clone());
        }
        if r.kind == "Namespace" {
            // Like the real server: the namespace turns Terminating now; its content and then
            // the namespace itself go when the namespace controller gets to it
            // ([`Store::finalize_namespace`], which the server calls shortly after).
            if old["metadata"]["deletionTimestamp"].is_string() {
                return Ok((*old).clone());
            }
            let mut terminating = (*old).clone();
            terminating["metadata"]["deletionTimestamp"] = json!(now());
            terminating["status"]["phase"] = json!("Terminating");
            let stored = self.commit(&mut s, r, ChangeType::Modified, terminating, Some(old));
            return Ok((*stored).clone());
        }
        let last = self.commit(
            &mut s,
            storage_r,
            ChangeType::Deleted,
            (*old).clone(),
            Some(old),
        );
        if matches!(r.kind, "Pod") {
            return Ok((*to_external(r, &last)).clone());
        }
        let mut details = json!({"name": name, "kind": r.plural, "uid": meta_str(&last, "uid")});
        if !r.group.is_empty() {
            details["group"] = json!(r.group);
        }
        Ok(
            json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details}),
        )
    }

    /// The namespace controller's work for a Terminating namespace: every object in it, then
    /// the namespace.
    pub fn finalize_namespace(&self, name: &str) {
        let mut s = self.lock();
        let ns_r = resource("namespaces");
        let Some(ns_obj) = Self::current(&s, ns_r, "", name) else {
            return;
        };
        let doomed: Vec<(&'static ResourceType, Arc<Value>)> = RESOURCES
            .iter()
            .filter(|t| t.namespaced && t.group != "events.k8s.io")
            .flat_map(|t| {
                s.objects
                    .get(t.plural)
                    .into_iter()
                    .flat_map(|m| m.iter())
                    .filter(|((n, _), _)| n == name)
                    .map(move |(_, o)| (t, Arc::clone(o)))
                    .collect::<Vec<_>>()
            })
            .collect();
        for (t, o) in doomed {
            self.commit(&mut s, t, ChangeType::Deleted, (*o).clone(), Some(o));
        }
        self.commit(
            &mut s,
            ns_r,
            ChangeType::Deleted,
            (*ns_obj).clone(),
            Some(ns_obj),
        );
    }

    /// DELETE on a collection: every matching object; answers the list of what was deleted.
    pub fn delete_collection(
        &self,
        r: &'static ResourceType,
        ns: Option<&str>,
        opts: &ListOptions,
    ) -> Result<Vec<Arc<Value>>, ApiError> {
        let page = self.list(
            r,
            ns,
            &ListOptions {
                limit: None,
                continue_token: None,
                ..opts.clone()
            },
        )?;
        let mut out = Vec::new();
        for item in page.items {
            let name = meta_str(&item, "name").to_owned();
            let ns = meta_str(&item, "namespace").to_owned();
            if self.delete(r, &ns, &name, &Value::Null, false).is_ok() {
                out.push(item);
            }
        }
        Ok(out)
    }

    /// GET on a collection.
    pub fn list(
        &self,
        r: &'static ResourceType,
        ns: Option<&str>,
        opts: &ListOptions,
    ) -> Result<ListPage, ApiError> {
        let s = self.lock();
        let (list_rv, start) = match &opts.continue_token {
            Some(token) => {
                let (rv, start) = decode_continue(token)?;
                if rv < s.oldest {
                    return Err(ApiError::continue_expired());
                }
                (rv, Some(start))
            }
            None => (s.rv, None),
        };
        let empty = BTreeMap::new();
        let table = s.objects.get(storage_of(r).plural).unwrap_or(&empty);
        let range: Box<dyn Iterator<Item = (&Key, &Arc<Value>)>> = match (&start, ns) {
            (Some(k), _) => Box::new(table.range(k.clone()..).filter(move |(key, _)| *key != k)),
            (None, Some(ns)) => Box::new(table.range((ns.to_owned(), String::new())..)),
            (None, None) => Box::new(table.iter()),
        };
        let mut items = Vec::new();
        let mut last_key = None;
        let mut remaining = 0usize;
        for (key, obj) in range {
            if let Some(ns) = ns
                && key.0 != ns
            {
                if key.0.as_str() > ns {
                    break;
                }
                continue;
            }
            if !opts.labels.matches(obj) || !opts.fields.matches(obj) {
                continue;
            }
            if opts.limit.is_some_and(|l| items.len() >= l) {
                remaining += 1;
                continue;
            }
            items.push(Arc::clone(obj));
            last_key = Some(key);
        }
        let continue_token = if remaining > 0 {
            last_key.map(|k| encode_continue(list_rv, k))
        } else {
            None
        };
        Ok(ListPage {
            items: items.iter().map(|o| to_external(r, o)).collect(),
            resource_version: list_rv,
            remaining: continue_token.as_ref().map(|_| remaining),
            continue_token,
        })
    }

    /// Where a watch from `rv` (None: now, with the current objects sent as ADDED) starts.
    pub fn watch_start(
        &self,
        r: &'static ResourceType,
        ns: Option<&str>,
        rv: Option<u64>,
        opts: &ListOptions,
    ) -> Result<WatchStart, ApiError> {
        let s = self.lock();
        match rv {
            None => {
                let empty = BTreeMap::new();
                let initial = s
                    .objects
                    .get(storage_of(r).plural)
                    .unwrap_or(&empty)
                    .iter()
                    .filter(|((n, _), o)| {
                        ns.is_none_or(|ns| ns == n)
                            && opts.labels.matches(o)
                            && opts.fields.matches(o)
                    })
                    .map(|(_, o)| to_external(r, o))
                    .collect();
                Ok(WatchStart {
                    initial,
                    backlog: Vec::new(),
                    cursor: s.rv,
                })
            }
            Some(rv) if rv < s.oldest => Err(ApiError::expired(rv, s.oldest)),
            Some(rv) => {
                let from = s.history.partition_point(|c| c.rv <= rv);
                Ok(WatchStart {
                    initial: Vec::new(),
                    backlog: s.history.range(from..).cloned().collect(),
                    cursor: s.rv.max(rv),
                })
            }
        }
    }

    /// The changes after `cursor`, or None when the cursor fell out of the history window
    /// (the watch must end: its client resumes and gets 410 if it is really too old).
    pub fn changes_after(&self, cursor: u64) -> Option<(Vec<Arc<Change>>, u64)> {
        let s = self.lock();
        if cursor < s.oldest {
            return None;
        }
        let from = s.history.partition_point(|c| c.rv <= cursor);
        Some((s.history.range(from..).cloned().collect(), s.rv))
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

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;

/// The real server's continue token: base64 of `{"v":"meta.k8s.io/v1","rv":N,"start":KEY}`.
fn encode_continue(rv: u64, key: &Key) -> String {
    let start = if key.0.is_empty() {
        format!("{}\u{0}", key.1)
    } else {
        format!("{}/{}\u{0}", key.0, key.1)
    };
    B64.encode(json!({"v": "meta.k8s.io/v1", "rv": rv, "start": start}).to_string())
}

fn decode_continue(token: &str) -> Result<(u64, Key), ApiError> {
    let bad = || ApiError::bad_request(format!("continue key is not valid: {token}"));
    let raw = B64.decode(token).map_err(|_| bad())?;
    let v: Value = serde_json::from_slice(&raw).map_err(|_| bad())?;
    let rv = v["rv"].as_u64().ok_or_else(bad)?;
    let start = v["start"]
        .as_str()
        .ok_or_else(bad)?
        .trim_end_matches('\u{0}');
    let key = match start.split_once('/') {
        Some((ns, name)) => (ns.to_owned(), name.to_owned()),
        None => (String::new(), start.to_owned()),
    };
    Ok((rv, key))
}

/// Whether a change is visible to a watch on `r` in `ns` with `opts`, and as which type.
pub fn visible(
    change: &Change,
    r: &'static ResourceType,
    ns: Option<&str>,
    opts: &ListOptions,
) -> Option<ChangeType> {
    if change.storage != storage_of(r).plural || ns.is_some_and(|n| n != change.namespace) {
        return None;
    }
    let sel = |o: &Value| opts.labels.matches(o) && opts.fields.matches(o);
    let now = sel(&change.object);
    let before = change.previous.as_deref().is_some_and(sel);
    match change.kind {
        ChangeType::Added => now.then_some(ChangeType::Added),
        ChangeType::Deleted => (now || before).then_some(ChangeType::Deleted),
        ChangeType::Modified => match (before, now) {
            (true, true) => Some(ChangeType::Modified),
            (false, true) => Some(ChangeType::Added),
            (true, false) => Some(ChangeType::Deleted),
            (false, false) => None,
        },
    }
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
