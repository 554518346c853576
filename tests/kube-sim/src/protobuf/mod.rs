//! Protobuf request bodies (`Content-Type: application/vnd.kubernetes.protobuf`), which
//! client-go's typed clients send — `kubectl create namespace|secret|configmap`,
//! `kubectl auth can-i`. The body is the Kubernetes envelope (the magic `k8s\0`, then a
//! `runtime.Unknown` naming the object's apiVersion and kind around its encoded bytes); the
//! object is decoded with `k8s-pb`'s generated types and turned into the JSON kubectl would
//! have sent, so the rest of the simulator sees what the JSON path sees. Answers stay JSON.

mod authorization;
mod core;
mod json;
mod meta;

use k8s_pb::apimachinery::pkg::runtime::{TypeMeta, Unknown};
use prost::Message as _;
use serde_json::Value;

use crate::status::ApiError;

pub const MEDIA_TYPE: &str = "application/vnd.kubernetes.protobuf";

/// The 4 bytes before every Kubernetes protobuf object (apimachinery's
/// `runtime/serializer/protobuf`).
const MAGIC: &[u8] = b"k8s\0";

type Converter = fn(&[u8]) -> Result<Value, prost::DecodeError>;

/// The types read from protobuf: those kubectl's typed commands send.
const CONVERTERS: &[(&str, &str, Converter)] = &[
    ("v1", "Namespace", core::namespace),
    ("v1", "Secret", core::secret),
    ("v1", "ConfigMap", core::config_map),
    (
        "authorization.k8s.io/v1",
        "SelfSubjectAccessReview",
        authorization::self_subject_access_review,
    ),
    (
        "authorization.k8s.io/v1",
        "SubjectAccessReview",
        authorization::subject_access_review,
    ),
];

#[derive(Debug, thiserror::Error)]
pub enum ProtobufError {
    #[error(
        "provided data does not appear to be a protobuf message, expected prefix [107 56 115 0]"
    )]
    CheckMagic,
    #[error("decoding the runtime.Unknown envelope: {0}")]
    DecodeEnvelope(#[source] prost::DecodeError),
    #[error("the envelope's contentEncoding is {0:?}; kube-sim reads only unencoded objects")]
    ReadEncoding(String),
    #[error("the envelope holds {0:?}, not {MEDIA_TYPE}")]
    ReadContentType(String),
    #[error(
        "kube-sim reads protobuf bodies of {} only, not of {api_version} {kind}; send it as JSON (kubectl create -f FILE)",
        supported()
    )]
    FindConverter { api_version: String, kind: String },
    #[error("decoding a {api_version} {kind}: {source}")]
    DecodeObject {
        api_version: String,
        kind: String,
        #[source]
        source: prost::DecodeError,
    },
}

fn supported() -> String {
    let names: Vec<String> = CONVERTERS
        .iter()
        .map(|(v, k, _)| format!("{v} {k}"))
        .collect();
    names.join(", ")
}

/// The object in a protobuf body, as the JSON kubectl would have sent for it.
pub fn decode(body: &[u8]) -> Result<Value, ProtobufError> {
    let inner = body.strip_prefix(MAGIC).ok_or(ProtobufError::CheckMagic)?;
    let unknown = Unknown::decode(inner).map_err(ProtobufError::DecodeEnvelope)?;
    if let Some(e) = unknown.content_encoding.filter(|e| !e.is_empty()) {
        return Err(ProtobufError::ReadEncoding(e));
    }
    if let Some(t) = unknown
        .content_type
        .filter(|t| !t.is_empty() && t != MEDIA_TYPE)
    {
        return Err(ProtobufError::ReadContentType(t));
    }
    let type_meta = unknown.type_meta.unwrap_or_default();
    let api_version = type_meta.api_version.unwrap_or_default();
    let kind = type_meta.kind.unwrap_or_default();
    let Some((_, _, convert)) = CONVERTERS
        .iter()
        .find(|(v, k, _)| *v == api_version && *k == kind)
    else {
        return Err(ProtobufError::FindConverter { api_version, kind });
    };
    let mut object = convert(&unknown.raw.unwrap_or_default()).map_err(|source| {
        ProtobufError::DecodeObject {
            api_version: api_version.clone(),
            kind: kind.clone(),
            source,
        }
    })?;
    object["apiVersion"] = Value::from(api_version);
    object["kind"] = Value::from(kind);
    Ok(object)
}

/// How the real server answers a body it cannot read: 400, "the object provided is
/// unrecognized (must be of type Namespace): ..." — except a type it could read and the
/// simulator cannot, which is the simulator's limit and says so with a 415.
pub fn api_error(expected_kind: &str, e: &ProtobufError) -> ApiError {
    match e {
        ProtobufError::FindConverter { .. } => {
            ApiError::new(415, "UnsupportedMediaType", e.to_string(), None)
        }
        _ => ApiError::bad_request(format!(
            "the object provided is unrecognized (must be of type {expected_kind}): {e}"
        )),
    }
}

/// Answers are JSON: a client that accepts only protobuf (or CBOR) gets 406, as the real
/// server answers an Accept it cannot serve. kubectl sends
/// `application/vnd.kubernetes.protobuf,application/json` and gets JSON.
pub fn check_accept(accept: &str) -> Result<(), ApiError> {
    let only_binary = !accept.trim().is_empty()
        && accept.split(',').all(|range| {
            let media = range.split(';').next().unwrap_or_default().trim();
            media.contains("protobuf") || media.contains("cbor")
        });
    if only_binary {
        return Err(ApiError::new(
            406,
            "NotAcceptable",
            format!(
                "kube-sim answers in application/json only, and the request accepts {accept:?}"
            ),
            Some(serde_json::json!({})),
        ));
    }
    Ok(())
}

/// A protobuf body around `raw`, the encoded object (for tests that send protobuf).
pub fn envelope(api_version: &str, kind: &str, raw: Vec<u8>) -> Vec<u8> {
    let unknown = Unknown {
        type_meta: Some(TypeMeta {
            api_version: Some(api_version.to_owned()),
            kind: Some(kind.to_owned()),
        }),
        raw: Some(raw),
        content_encoding: Some(String::new()),
        content_type: Some(String::new()),
    };
    let mut out = MAGIC.to_vec();
    out.extend(unknown.encode_to_vec());
    out
}

#[cfg(test)]
mod tests;
