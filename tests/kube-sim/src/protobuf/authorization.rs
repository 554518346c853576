//! authorization.k8s.io/v1 access reviews (what `kubectl auth can-i` sends), to the JSON
//! kubectl would have sent for them. Every field of each type is carried.

use k8s_pb::api::authorization::v1::{
    FieldSelectorAttributes, LabelSelectorAttributes, NonResourceAttributes, ResourceAttributes,
    SelfSubjectAccessReview, SubjectAccessReview, SubjectAccessReviewStatus,
};
use k8s_pb::apimachinery::pkg::apis::meta::v1::{
    FieldSelectorRequirement, LabelSelectorRequirement,
};
use prost::Message as _;
use serde_json::Value;

use super::json::Obj;
use super::meta::object_meta;

pub fn self_subject_access_review(raw: &[u8]) -> Result<Value, prost::DecodeError> {
    let r = SelfSubjectAccessReview::decode(raw)?;
    let spec = r.spec.unwrap_or_default();
    Ok(Obj::new()
        .always("metadata", object_meta(r.metadata.as_ref()))
        .always(
            "spec",
            Obj::new()
                .some(
                    "resourceAttributes",
                    spec.resource_attributes.as_ref().map(resource_attributes),
                )
                .some(
                    "nonResourceAttributes",
                    spec.non_resource_attributes
                        .as_ref()
                        .map(non_resource_attributes),
                )
                .done(),
        )
        .always("status", status(r.status.unwrap_or_default()))
        .done())
}

pub fn subject_access_review(raw: &[u8]) -> Result<Value, prost::DecodeError> {
    let r = SubjectAccessReview::decode(raw)?;
    let spec = r.spec.unwrap_or_default();
    let extra: serde_json::Map<String, Value> = spec
        .extra
        .iter()
        .map(|(k, v)| (k.clone(), Value::from(v.items.clone())))
        .collect();
    let spec_json = Obj::new()
        .some(
            "resourceAttributes",
            spec.resource_attributes.as_ref().map(resource_attributes),
        )
        .some(
            "nonResourceAttributes",
            spec.non_resource_attributes
                .as_ref()
                .map(non_resource_attributes),
        )
        .str("user", &spec.user)
        .strings("groups", &spec.groups)
        .some("extra", (!extra.is_empty()).then_some(Value::Object(extra)))
        .str("uid", &spec.uid);
    Ok(Obj::new()
        .always("metadata", object_meta(r.metadata.as_ref()))
        .always("spec", spec_json.done())
        .always("status", status(r.status.unwrap_or_default()))
        .done())
}

fn resource_attributes(a: &ResourceAttributes) -> Value {
    Obj::new()
        .str("namespace", &a.namespace)
        .str("verb", &a.verb)
        .str("group", &a.group)
        .str("version", &a.version)
        .str("resource", &a.resource)
        .str("subresource", &a.subresource)
        .str("name", &a.name)
        .some(
            "fieldSelector",
            a.field_selector.as_ref().map(field_selector),
        )
        .some(
            "labelSelector",
            a.label_selector.as_ref().map(label_selector),
        )
        .done()
}

fn non_resource_attributes(a: &NonResourceAttributes) -> Value {
    Obj::new().str("path", &a.path).str("verb", &a.verb).done()
}

fn field_selector(s: &FieldSelectorAttributes) -> Value {
    let requirement = |r: &FieldSelectorRequirement| requirement(&r.key, &r.operator, &r.values);
    Obj::new()
        .str("rawSelector", &s.raw_selector)
        .list("requirements", &s.requirements, requirement)
        .done()
}

fn label_selector(s: &LabelSelectorAttributes) -> Value {
    let requirement = |r: &LabelSelectorRequirement| requirement(&r.key, &r.operator, &r.values);
    Obj::new()
        .str("rawSelector", &s.raw_selector)
        .list("requirements", &s.requirements, requirement)
        .done()
}

fn requirement(key: &Option<String>, operator: &Option<String>, values: &[String]) -> Value {
    Obj::new()
        .always("key", Value::from(key.clone().unwrap_or_default()))
        .always(
            "operator",
            Value::from(operator.clone().unwrap_or_default()),
        )
        .strings("values", values)
        .done()
}

/// `allowed` has no `omitempty`; the other fields do.
fn status(s: SubjectAccessReviewStatus) -> Value {
    Obj::new()
        .always("allowed", Value::Bool(s.allowed.unwrap_or(false)))
        .flag("denied", s.denied)
        .str("reason", &s.reason)
        .str("evaluationError", &s.evaluation_error)
        .done()
}
