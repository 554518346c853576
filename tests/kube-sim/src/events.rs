//! core/v1 and events.k8s.io/v1 Events are one stored object seen through two schemas, as on
//! the real server (k8s.io/kubernetes/pkg/apis/events/v1/conversion.go): an Event written
//! through either API is listed and watched through both.

use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::Value;

/// Field pairs: (events.k8s.io/v1 name, core/v1 name).
const RENAMED: &[(&str, &str)] = &[
    ("regarding", "involvedObject"),
    ("note", "message"),
    ("deprecatedCount", "count"),
    ("deprecatedFirstTimestamp", "firstTimestamp"),
    ("deprecatedLastTimestamp", "lastTimestamp"),
    ("deprecatedSource", "source"),
    ("related", "related"),
    ("reportingController", "reportingComponent"),
];

/// Fields with the same name in both.
const SAME: &[&str] = &[
    "metadata",
    "eventTime",
    "series",
    "action",
    "reason",
    "type",
    "reportingInstance",
];

/// The conversion's `(from, to)` field pairs.
fn pairs(forward: bool) -> impl Iterator<Item = (&'static str, &'static str)> {
    let same = SAME.iter().map(|k| (*k, *k));
    let renamed = RENAMED
        .iter()
        .map(move |&(new, old)| if forward { (new, old) } else { (old, new) });
    same.chain(renamed)
}

/// An events.k8s.io/v1 Event as it is stored (core/v1). Converted in place: the fields that
/// keep their name stay where they are, the renamed ones move, the rest go.
pub fn to_core(obj: Value) -> Value {
    let Value::Object(mut m) = obj else {
        return serde_json::json!({"kind": "Event", "apiVersion": "v1"});
    };
    // No field is renamed to the name of another field that is kept (`related` is renamed to
    // itself), so renaming after the others are dropped cannot overwrite one.
    m.retain(|k, _| pairs(true).any(|(from, _)| from == k));
    for (from, to) in pairs(true).filter(|(from, to)| from != to) {
        if let Some(v) = m.remove(from) {
            m.insert(to.into(), v);
        }
    }
    m.insert("kind".into(), Value::from("Event"));
    m.insert("apiVersion".into(), Value::from("v1"));
    Value::Object(m)
}

/// A stored (core/v1) Event as events.k8s.io/v1 shows it: [`V1View`], as a `Value`.
pub fn to_events_v1(obj: &Value) -> Value {
    serde_json::to_value(V1View(obj)).expect("JSON values with string keys always make a Value")
}

/// A stored (core/v1) Event serialized as events.k8s.io/v1 shows it, without copying the
/// Event: what a create answers, and (through [`to_events_v1`]) what lists and watches show.
pub struct V1View<'a>(pub &'a Value);

impl Serialize for V1View<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        enum Field<'a> {
            Text(&'a str),
            Json(&'a Value),
        }
        let mut fields = vec![
            ("kind", Field::Text("Event")),
            ("apiVersion", Field::Text("events.k8s.io/v1")),
        ];
        for (from, to) in pairs(false) {
            if let Some(v) = self.0.get(from) {
                fields.push((to, Field::Json(v)));
            }
        }
        // Sorted, as a `Map` (a `BTreeMap`: serde_json without `preserve_order`) writes them.
        fields.sort_unstable_by_key(|(k, _)| *k);
        let mut m = s.serialize_map(Some(fields.len()))?;
        for (k, f) in &fields {
            match f {
                Field::Text(t) => m.serialize_entry(k, t)?,
                Field::Json(v) => m.serialize_entry(k, v)?,
            }
        }
        m.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Map, json};

    #[test]
    fn round_trip() {
        let e = json!({"kind": "Event", "apiVersion": "events.k8s.io/v1",
            "metadata": {"name": "x", "namespace": "n"},
            "regarding": {"kind": "Deployment", "name": "d"}, "note": "hello",
            "reason": "Cloned", "type": "Normal", "reportingController": "image-cloner",
            "reportingInstance": "i", "action": "Clone", "eventTime": "2026-01-01T00:00:00.000000Z"});
        let core = to_core(e.clone());
        assert_eq!(core["involvedObject"]["name"], "d");
        assert_eq!(core["message"], "hello");
        assert_eq!(core["reportingComponent"], "image-cloner");
        assert_eq!(to_events_v1(&core), e);
        let shown = serde_json::to_string(&V1View(&core)).unwrap_or_default();
        assert_eq!(shown, to_events_v1(&core).to_string());
    }

    /// The in-place conversion keeps what a field-by-field copy kept: fields of neither
    /// schema, and core names sent through events.k8s.io, are dropped.
    #[test]
    fn to_core_drops_what_it_does_not_convert() {
        let e = json!({"kind": "Event", "apiVersion": "events.k8s.io/v1",
            "metadata": {"name": "x"}, "note": "kept", "message": "dropped",
            "count": 3, "related": {"name": "r"}, "unknown": 1, "series": {"count": 2}});
        let copied: Map<String, Value> = pairs(true)
            .filter_map(|(from, to)| Some((to.to_owned(), e.get(from)?.clone())))
            .chain([
                ("kind".into(), json!("Event")),
                ("apiVersion".into(), json!("v1")),
            ])
            .collect();
        assert_eq!(to_core(e), Value::Object(copied));
        assert_eq!(
            to_core(json!("not an object")),
            json!({"kind": "Event", "apiVersion": "v1"})
        );
    }
}
