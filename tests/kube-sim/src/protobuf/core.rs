//! core/v1 objects kubectl sends in protobuf (`kubectl create namespace|secret|configmap`),
//! to the JSON kubectl would have sent for them. Every field of each type is carried.

use k8s_pb::api::core::v1::{ConfigMap, Namespace, NamespaceCondition, Secret};
use prost::Message as _;
use serde_json::Value;

use super::json::{Obj, time};
use super::meta::object_meta;

pub fn namespace(raw: &[u8]) -> Result<Value, prost::DecodeError> {
    let ns = Namespace::decode(raw)?;
    let spec = ns.spec.unwrap_or_default();
    let status = ns.status.unwrap_or_default();
    Ok(Obj::new()
        .always("metadata", object_meta(ns.metadata.as_ref()))
        .always(
            "spec",
            Obj::new().strings("finalizers", &spec.finalizers).done(),
        )
        .always(
            "status",
            Obj::new()
                .str("phase", &status.phase)
                .list("conditions", &status.conditions, namespace_condition)
                .done(),
        )
        .done())
}

fn namespace_condition(c: &NamespaceCondition) -> Value {
    Obj::new()
        .always("type", Value::from(c.r#type.clone().unwrap_or_default()))
        .always("status", Value::from(c.status.clone().unwrap_or_default()))
        .always("lastTransitionTime", time(c.last_transition_time.as_ref()))
        .str("reason", &c.reason)
        .str("message", &c.message)
        .done()
}

pub fn secret(raw: &[u8]) -> Result<Value, prost::DecodeError> {
    let s = Secret::decode(raw)?;
    Ok(Obj::new()
        .always("metadata", object_meta(s.metadata.as_ref()))
        .bool_ptr("immutable", s.immutable)
        .bytes_map("data", &s.data)
        .str_map("stringData", &s.string_data)
        .str("type", &s.r#type)
        .done())
}

pub fn config_map(raw: &[u8]) -> Result<Value, prost::DecodeError> {
    let c = ConfigMap::decode(raw)?;
    Ok(Obj::new()
        .always("metadata", object_meta(c.metadata.as_ref()))
        .bool_ptr("immutable", c.immutable)
        .str_map("data", &c.data)
        .bytes_map("binaryData", &c.binary_data)
        .done())
}
