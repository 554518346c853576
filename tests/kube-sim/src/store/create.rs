//! Creating objects: defaults, generated names, uids, the checks before admission, and the
//! commit of a create.

use std::sync::Arc;

use serde_json::{Value, json};

use super::{
    ChangeType, State, Store, meta_str, now, resource, resource_of, storage_of, to_external,
    to_storage,
};
use crate::resources::ResourceType;
use crate::status::ApiError;
use crate::{admission, validation};

impl Store {
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

    /// For seeding and tests: creates `obj`, of any kind served (its apiVersion and kind), in
    /// the namespace its metadata names.
    pub fn create_object(&self, obj: Value) -> Result<Arc<Value>, ApiError> {
        let r = resource_of(&obj)?;
        let ns = obj["metadata"]["namespace"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        self.create(r, &ns, obj, false)
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
}
