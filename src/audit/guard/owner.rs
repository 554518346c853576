//! A Pod's workload — the object image-cloner patched — through ownerReferences: a Pod's
//! controller is the workload itself (StatefulSet, DaemonSet), or one hop short of it (a
//! ReplicaSet, whose owner is a Deployment; a Job, whose owner is a CronJob). That hop is a GET
//! (the ReplicaSet's owner is not on the Pod), remembered by the middle object's uid: the Pods
//! of one rollout share it.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use crate::audit::WorkloadKey;
use crate::audit::guard::pod::PendingPod;
use crate::reconcile::ApiError;
use crate::reconcile::api::WorkloadApi;
use crate::workload::{Kind, partial};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

/// Where an owner reference of a given kind leads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hop {
    /// The owner is a workload image-cloner patches.
    Workload(Kind),
    /// The owner may itself be owned (ReplicaSet → Deployment, Job → CronJob).
    Through(Kind),
}

/// Where an owner of `kind` leads; `None` for kinds image-cloner does not patch (an Argo
/// Rollout, a custom controller).
pub fn hop(kind: &str) -> Option<Hop> {
    Some(match kind {
        "ReplicaSet" => Hop::Through(Kind::ReplicaSet),
        "Job" => Hop::Through(Kind::Job),
        "Deployment" => Hop::Workload(Kind::Deployment),
        "StatefulSet" => Hop::Workload(Kind::StatefulSet),
        "DaemonSet" => Hop::Workload(Kind::DaemonSet),
        "CronJob" => Hop::Workload(Kind::CronJob),
        _ => return None,
    })
}

pub fn controller_of(meta: &ObjectMeta) -> Option<&OwnerReference> {
    meta.owner_references
        .as_ref()?
        .iter()
        .find(|r| r.controller == Some(true))
}

/// The workload a middle object (a ReplicaSet, a Job) with `meta` belongs to (pure).
pub fn above(kind: Kind, meta: &ObjectMeta) -> Option<(Kind, String)> {
    let name = meta.name.clone()?;
    match controller_of(meta) {
        None => Some((kind, name)),
        Some(owner) => match hop(&owner.kind)? {
            Hop::Workload(k) => Some((k, owner.name.clone())),
            Hop::Through(_) => None,
        },
    }
}

/// Pod → workload, with the middle hop remembered.
#[derive(Default)]
pub struct Owners {
    /// Middle object uid → its workload (`None`: not one image-cloner patches).
    above: Mutex<HashMap<String, Option<(Kind, String)>>>,
}

impl Owners {
    fn remembered(&self, uid: &str) -> Option<Option<(Kind, String)>> {
        let map = self.above.lock().unwrap_or_else(PoisonError::into_inner);
        map.get(uid).cloned()
    }

    fn remember(&self, uid: String, found: Option<(Kind, String)>) {
        let mut map = self.above.lock().unwrap_or_else(PoisonError::into_inner);
        map.insert(uid, found);
    }

    /// The workload of `pod`; `None` when it is not one image-cloner patches.
    pub async fn workload_of(
        &self,
        api: &WorkloadApi,
        pod: &PendingPod,
    ) -> Result<Option<WorkloadKey>, ApiError> {
        let namespace = pod.metadata.namespace.clone().unwrap_or_default();
        let key = |(kind, name): (Kind, String)| WorkloadKey {
            kind,
            namespace: namespace.clone(),
            name,
        };
        let Some(owner) = controller_of(&pod.metadata) else {
            // A bare Pod is its own workload.
            return Ok(pod.metadata.name.clone().map(|n| key((Kind::Pod, n))));
        };
        let middle = match hop(&owner.kind) {
            None => return Ok(None),
            Some(Hop::Workload(kind)) => return Ok(Some(key((kind, owner.name.clone())))),
            Some(Hop::Through(kind)) => kind,
        };
        if let Some(found) = self.remembered(&owner.uid) {
            return Ok(found.map(key));
        }
        let meta: Result<ObjectMeta, ApiError> = match middle {
            Kind::Job => api
                .get::<partial::Job>(&namespace, &owner.name)
                .await
                .map(|o| o.metadata),
            _ => api
                .get::<partial::ReplicaSet>(&namespace, &owner.name)
                .await
                .map(|o| o.metadata),
        };
        let found = match meta {
            Ok(meta) => above(middle, &meta),
            Err(e) if e.code() == Some(404) => None,
            Err(e) => return Err(e),
        };
        self.remember(owner.uid.clone(), found.clone());
        Ok(found.map(key))
    }
}
