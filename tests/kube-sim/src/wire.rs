//! Response bodies serialized straight from the stored objects. A list page of 500
//! Deployments used to be built as a `Value` — every item deep-cloned to drop its
//! `apiVersion` and `kind`, then serialized, then freed — which cost the simulator more CPU
//! than the client it serves spent reading the page; the simulator shares the bench's two
//! cores with the processes it measures, so that CPU distorted the figures. The types here
//! write the same bytes without copying anything.
//!
//! Same bytes: serde_json is built without `preserve_order`, so a `Map` is a `BTreeMap` and a
//! `json!` object serializes its keys in sorted order; the outer keys below are written in
//! that order, and an item's remaining keys keep the order of its map.

use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{Map, Value, json};

use crate::events;
use crate::resources::ResourceType;
use crate::store::ListPage;

/// An object as resource `r` shows it, written from its storage form: the bytes of
/// [`crate::store::to_external`]'s answer without building it (an events.k8s.io Event is the
/// stored core Event with renamed fields, [`events::V1View`]).
pub fn external<'a>(r: &'a ResourceType, stored: &'a Value) -> External<'a> {
    External { r, stored }
}

/// See [`external`].
pub struct External<'a> {
    r: &'a ResourceType,
    stored: &'a Value,
}

impl Serialize for External<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.r.group == "events.k8s.io" {
            events::V1View(self.stored).serialize(s)
        } else {
            self.stored.serialize(s)
        }
    }
}

/// An object list in the real server's JSON form: items without apiVersion and kind.
pub fn list_body<'a>(r: &'a ResourceType, page: &'a ListPage) -> ListBody<'a> {
    ListBody { r, page }
}

/// See [`list_body`].
pub struct ListBody<'a> {
    r: &'a ResourceType,
    page: &'a ListPage,
}

impl Serialize for ListBody<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // Sorted, as `json!({"kind", "apiVersion", "metadata", "items"})` wrote them.
        let mut m = s.serialize_map(Some(4))?;
        m.serialize_entry("apiVersion", &self.r.api_version())?;
        let items: Vec<Item<'_>> = self.page.items.iter().map(|o| Item(o)).collect();
        m.serialize_entry("items", &items)?;
        m.serialize_entry("kind", &format!("{}List", self.r.kind))?;
        m.serialize_entry("metadata", &list_metadata(self.page))?;
        m.end()
    }
}

/// A list item: the object without its `apiVersion` and `kind`.
struct Item<'a>(&'a Value);

impl Serialize for Item<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let Value::Object(obj) = self.0 else {
            return self.0.serialize(s);
        };
        let shown = |k: &String| k != "apiVersion" && k != "kind";
        let mut m = s.serialize_map(Some(obj.keys().filter(|k| shown(k)).count()))?;
        for (k, v) in obj.iter().filter(|(k, _)| shown(k)) {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

/// A list's `metadata`: its resourceVersion, and where the next page starts.
pub fn list_metadata(page: &ListPage) -> Value {
    let mut metadata = Map::new();
    metadata.insert(
        "resourceVersion".into(),
        json!(page.resource_version.to_string()),
    );
    if let Some(c) = &page.continue_token {
        metadata.insert("continue".into(), json!(c));
    }
    if let Some(n) = page.remaining {
        metadata.insert("remainingItemCount".into(), json!(n));
    }
    Value::Object(metadata)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::store::resource;

    /// The bytes of the `Value` the list body used to be built as.
    fn as_value(r: &ResourceType, page: &ListPage) -> Value {
        let items: Vec<Value> = page
            .items
            .iter()
            .map(|o| {
                let mut o = (**o).clone();
                if let Some(m) = o.as_object_mut() {
                    m.remove("apiVersion");
                    m.remove("kind");
                }
                o
            })
            .collect();
        json!({
            "kind": format!("{}List", r.kind),
            "apiVersion": r.api_version(),
            "metadata": list_metadata(page),
            "items": items,
        })
    }

    #[test]
    fn list_bodies_are_the_bytes_of_the_value_they_replace() {
        let d = |name: &str| {
            Arc::new(json!({"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": name, "labels": {"z": "1", "a": "2"}},
                "spec": {"replicas": 1, "template": {"spec": {"containers": [{"image": "x"}]}}},
                "status": {}}))
        };
        for r in [resource("deployments"), resource("namespaces")] {
            for page in [
                ListPage {
                    items: vec![d("a"), d("b"), Arc::new(json!({}))],
                    resource_version: 7,
                    continue_token: Some("tok".into()),
                    remaining: Some(3),
                },
                ListPage {
                    items: Vec::new(),
                    resource_version: 1,
                    continue_token: None,
                    remaining: None,
                },
            ] {
                let direct = serde_json::to_vec(&list_body(r, &page)).unwrap_or_default();
                let before = serde_json::to_vec(&as_value(r, &page)).unwrap_or_default();
                assert_eq!(
                    String::from_utf8_lossy(&direct),
                    String::from_utf8_lossy(&before)
                );
            }
        }
    }
}
