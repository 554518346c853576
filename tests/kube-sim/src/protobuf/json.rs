//! Building JSON the way Go's `encoding/json` writes the Kubernetes API structs, so that an
//! object decoded from protobuf becomes exactly the JSON kubectl would have sent for it
//! (`kubectl create ... --dry-run=client -o json` shows that JSON).
//!
//! Go's protobuf encoder writes every non-pointer field, empty or not (kubectl's bodies carry
//! `name: ""`, `generation: 0`, an empty `creationTimestamp`): prost decodes those as
//! `Some("")`, `Some(0)`. The JSON side drops them where the Go field is `omitempty`.

use std::collections::BTreeMap;
use std::time::{Duration, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use k8s_pb::apimachinery::pkg::apis::meta::v1::Time;
use serde_json::{Map, Value};

/// A JSON object under construction; each method names the Go encoding rule it follows.
#[derive(Default)]
pub struct Obj(Map<String, Value>);

impl Obj {
    pub fn new() -> Obj {
        Obj::default()
    }

    /// A value written whatever it is (a non-`omitempty` field, or a struct, which
    /// `omitempty` never drops).
    pub fn always(mut self, key: &str, v: Value) -> Obj {
        self.0.insert(key.to_owned(), v);
        self
    }

    /// A pointer or nested message: written when present.
    pub fn some(self, key: &str, v: Option<Value>) -> Obj {
        match v {
            Some(v) => self.always(key, v),
            None => self,
        }
    }

    /// `string` with `omitempty`.
    pub fn str(self, key: &str, v: &Option<String>) -> Obj {
        match v.as_deref() {
            Some(s) if !s.is_empty() => self.always(key, Value::from(s)),
            _ => self,
        }
    }

    /// `int64` with `omitempty`: zero is left out.
    pub fn int(self, key: &str, v: Option<i64>) -> Obj {
        match v {
            Some(n) if n != 0 => self.always(key, Value::from(n)),
            _ => self,
        }
    }

    /// `*int64` with `omitempty`: written when set, zero included.
    pub fn int_ptr(self, key: &str, v: Option<i64>) -> Obj {
        self.some(key, v.map(Value::from))
    }

    /// `bool` with `omitempty`: false is left out.
    pub fn flag(self, key: &str, v: Option<bool>) -> Obj {
        match v {
            Some(true) => self.always(key, Value::Bool(true)),
            _ => self,
        }
    }

    /// `*bool` with `omitempty`: written when set, false included.
    pub fn bool_ptr(self, key: &str, v: Option<bool>) -> Obj {
        self.some(key, v.map(Value::Bool))
    }

    /// `[]string` with `omitempty`.
    pub fn strings(self, key: &str, v: &[String]) -> Obj {
        if v.is_empty() {
            return self;
        }
        self.always(key, Value::from(v.to_vec()))
    }

    /// `[]T` with `omitempty`, each item converted by `f`.
    pub fn list<T>(self, key: &str, v: &[T], f: impl Fn(&T) -> Value) -> Obj {
        if v.is_empty() {
            return self;
        }
        self.always(key, Value::Array(v.iter().map(f).collect()))
    }

    /// `map[string]string` with `omitempty`.
    pub fn str_map(self, key: &str, v: &BTreeMap<String, String>) -> Obj {
        if v.is_empty() {
            return self;
        }
        let m = v
            .iter()
            .map(|(k, v)| (k.clone(), Value::from(v.as_str())))
            .collect();
        self.always(key, Value::Object(m))
    }

    /// `map[string][]byte` with `omitempty`: values in standard base64, as Go writes `[]byte`.
    pub fn bytes_map(self, key: &str, v: &BTreeMap<String, Vec<u8>>) -> Obj {
        if v.is_empty() {
            return self;
        }
        let m = v
            .iter()
            .map(|(k, v)| (k.clone(), Value::from(B64.encode(v))))
            .collect();
        self.always(key, Value::Object(m))
    }

    pub fn done(self) -> Value {
        Value::Object(self.0)
    }
}

/// `metav1.Time`: RFC 3339 in seconds; the zero time (an empty message on the wire) is `null`.
pub fn time(t: Option<&Time>) -> Value {
    match t.and_then(|t| t.seconds) {
        Some(s) if s >= 0 => {
            let at = UNIX_EPOCH + Duration::from_secs(s.unsigned_abs());
            Value::from(humantime::format_rfc3339_seconds(at).to_string())
        }
        _ => Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn empty_values_are_left_out_as_go_omitempty_leaves_them() {
        let v = Obj::new()
            .str("empty", &Some(String::new()))
            .str("name", &Some("x".into()))
            .int("generation", Some(0))
            .int_ptr("grace", Some(0))
            .flag("denied", Some(false))
            .bool_ptr("immutable", Some(false))
            .strings("finalizers", &[])
            .str_map("labels", &BTreeMap::new())
            .bytes_map(
                "data",
                &BTreeMap::from([("k".to_owned(), b"admin".to_vec())]),
            )
            .done();
        assert_eq!(
            v,
            json!({"name": "x", "grace": 0, "immutable": false, "data": {"k": "YWRtaW4="}})
        );
    }

    #[test]
    fn times_are_rfc3339_and_the_zero_time_is_null() {
        let t = Time {
            seconds: Some(1_700_000_000),
            nanos: Some(0),
        };
        assert_eq!(time(Some(&t)), json!("2023-11-14T22:13:20Z"));
        assert_eq!(time(Some(&Time::default())), Value::Null);
        assert_eq!(time(None), Value::Null);
    }
}
