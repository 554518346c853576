//! Writing objects that exist: updates (PUT) and patches of every type, with the checks a
//! write passes on the way (the resourceVersion, the fields a client may not change, the
//! generation).

use std::sync::{Arc, MutexGuard};

use serde_json::{Value, json};

use super::{
    ChangeType, Patch, Proposal, State, Store, Written, check_apply_identity, meta_str,
    parse_apply, parse_json, same_content, set, to_external, to_storage,
};
use crate::resources::ResourceType;
use crate::status::ApiError;
use crate::{admission, strategic, validation};

impl Store {
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
}
