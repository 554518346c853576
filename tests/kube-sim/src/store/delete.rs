//! Deleting objects: one, a collection, and a namespace's finalization.

use std::sync::Arc;

use serde_json::{Value, json};

use super::{ChangeType, ListOptions, Store, meta_str, now, resource, storage_of, to_external};
use crate::resources::{RESOURCES, ResourceType};
use crate::status::ApiError;

impl Store {
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
        // The real server's messages name each field its own way.
        for (field, called) in [("uid", "UID"), ("resourceVersion", "ResourceVersion")] {
            if let Some(wanted) = preconditions[field].as_str()
                && wanted != meta_str(&old, field)
            {
                return Err(ApiError::precondition_failed(
                    r,
                    name,
                    &format!(
                        "Precondition failed: {called} in precondition: {wanted}, {called} in object meta: {}",
                        meta_str(&old, field)
                    ),
                ));
            }
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
}
