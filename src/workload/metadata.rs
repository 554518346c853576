//! A workload's metadata read as the caches keep it. What planning never reads is not built:
//! `managedFields` (the server's record of which manager owns which field, one to a few kB of
//! nested JSON on every object of a real cluster) is skipped unparsed, and kubectl's
//! last-applied annotation (a copy of the whole object as last applied) is kept present but
//! empty, since only its presence matters (`plan::gitops_manager`). Read into k8s-openapi's
//! `ObjectMeta` as it comes, both were built in full — a tree of JSON values, a string the size
//! of the object — for every listed or watched object, then dropped.
//!
//! Every other field of `ObjectMeta` is read as k8s-openapi reads it; `selfLink`, which the API
//! server stopped writing in 1.20, is skipped too.

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};
use serde::de::{IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

/// kubectl's copy of the whole object: only its presence matters to planning (GitOps
/// detection), so its value is never kept.
pub const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// `metadata`, without `managedFields` and with [`LAST_APPLIED`]'s value empty.
pub fn read<'de, D: Deserializer<'de>>(deserializer: D) -> Result<ObjectMeta, D::Error> {
    let m = Kept::deserialize(deserializer)?;
    Ok(ObjectMeta {
        annotations: m.annotations,
        creation_timestamp: m.creation_timestamp,
        deletion_grace_period_seconds: m.deletion_grace_period_seconds,
        deletion_timestamp: m.deletion_timestamp,
        finalizers: m.finalizers,
        generate_name: m.generate_name,
        generation: m.generation,
        labels: m.labels,
        managed_fields: None,
        name: m.name,
        namespace: m.namespace,
        owner_references: m.owner_references,
        resource_version: m.resource_version,
        self_link: None,
        uid: m.uid,
    })
}

/// The fields kept; serde skips the others unparsed.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Kept {
    #[serde(default, deserialize_with = "annotations")]
    annotations: Option<BTreeMap<String, String>>,
    creation_timestamp: Option<Time>,
    deletion_grace_period_seconds: Option<i64>,
    deletion_timestamp: Option<Time>,
    finalizers: Option<Vec<String>>,
    generate_name: Option<String>,
    generation: Option<i64>,
    labels: Option<BTreeMap<String, String>>,
    name: Option<String>,
    namespace: Option<String>,
    owner_references: Option<Vec<OwnerReference>>,
    resource_version: Option<String>,
    uid: Option<String>,
}

/// The annotations, [`LAST_APPLIED`]'s value skipped unparsed and kept empty.
fn annotations<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<BTreeMap<String, String>>, D::Error> {
    deserializer.deserialize_option(Annotations)
}

struct Annotations;

impl<'de> Visitor<'de> for Annotations {
    type Value = Option<BTreeMap<String, String>>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a map of annotations")
    }

    fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut annotations = BTreeMap::new();
        while let Some(key) = map.next_key::<String>()? {
            let value = if key == LAST_APPLIED {
                map.next_value::<IgnoredAny>()?;
                String::new()
            } else {
                map.next_value::<String>()?
            };
            annotations.insert(key, value);
        }
        Ok(Some(annotations))
    }
}

#[cfg(test)]
#[path = "metadata_tests.rs"]
mod tests;
