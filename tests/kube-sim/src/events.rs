//! core/v1 and events.k8s.io/v1 Events are one stored object seen through two schemas, as on
//! the real server (k8s.io/kubernetes/pkg/apis/events/v1/conversion.go): an Event written
//! through either API is listed and watched through both.

use serde_json::{Map, Value};

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

fn convert(obj: &Value, api_version: &str, forward: bool) -> Value {
    let mut out = Map::new();
    out.insert("kind".into(), Value::from("Event"));
    out.insert("apiVersion".into(), Value::from(api_version));
    let Some(src) = obj.as_object() else {
        return Value::Object(out);
    };
    for key in SAME {
        if let Some(v) = src.get(*key) {
            out.insert((*key).into(), v.clone());
        }
    }
    for (new, old) in RENAMED {
        let (from, to) = if forward { (*new, *old) } else { (*old, *new) };
        if let Some(v) = src.get(from) {
            out.insert(to.into(), v.clone());
        }
    }
    Value::Object(out)
}

/// An events.k8s.io/v1 Event as it is stored (core/v1).
pub fn to_core(obj: &Value) -> Value {
    convert(obj, "v1", true)
}

/// A stored (core/v1) Event as events.k8s.io/v1 shows it.
pub fn to_events_v1(obj: &Value) -> Value {
    convert(obj, "events.k8s.io/v1", false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn round_trip() {
        let e = json!({"kind": "Event", "apiVersion": "events.k8s.io/v1",
            "metadata": {"name": "x", "namespace": "n"},
            "regarding": {"kind": "Deployment", "name": "d"}, "note": "hello",
            "reason": "Cloned", "type": "Normal", "reportingController": "image-cloner",
            "reportingInstance": "i", "action": "Clone", "eventTime": "2026-01-01T00:00:00.000000Z"});
        let core = to_core(&e);
        assert_eq!(core["involvedObject"]["name"], "d");
        assert_eq!(core["message"], "hello");
        assert_eq!(core["reportingComponent"], "image-cloner");
        assert_eq!(to_events_v1(&core), e);
    }
}
