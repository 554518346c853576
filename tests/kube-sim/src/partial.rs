//! Metadata-only answers: a client that needs nothing of a written object but its metadata
//! sends `Accept: application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1` (with
//! `,application/json` after it for servers without it), and the real server answers a get,
//! a create, an update or a patch with a `meta.k8s.io` PartialObjectMetadata — the object's
//! `metadata` alone, same status code. Errors are the usual Status. Checked against
//! kube-apiserver 1.20 (tests/fidelity.rs).

use serde::Serialize;
use serde_json::Value;

/// Marks a response whose body is an object's metadata alone, for the request log.
#[derive(Debug, Clone, Copy)]
pub struct MetadataOnly;

/// The `meta.k8s.io` version of PartialObjectMetadata the Accept header asks for, if it does:
/// the first media range the server can answer decides, as in the real server's negotiation
/// (a plain `application/json` before it means the whole object).
pub fn wanted(accept: &str) -> Option<&'static str> {
    for range in accept.split(',') {
        let mut params = range.split(';').map(str::trim);
        let media = params.next().unwrap_or_default();
        if !matches!(media, "application/json" | "application/*" | "*/*") {
            continue;
        }
        let (mut as_, mut group, mut version) = (None, None, None);
        for p in params {
            match p.split_once('=') {
                Some(("as", v)) => as_ = Some(v),
                Some(("g", v)) => group = Some(v),
                Some(("v", v)) => version = Some(v),
                _ => {}
            }
        }
        match (as_, group, version) {
            (None, _, _) => return None,
            (Some("PartialObjectMetadata"), Some("meta.k8s.io"), Some("v1")) => {
                return Some("meta.k8s.io/v1");
            }
            (Some("PartialObjectMetadata"), Some("meta.k8s.io"), Some("v1beta1")) => {
                return Some("meta.k8s.io/v1beta1");
            }
            // Another transformation (a Table) or one the server lacks: the next range.
            _ => {}
        }
    }
    None
}

/// `object` answered as its metadata alone, written from it without copying it (the simulator
/// shares the bench's two cores with what the bench measures).
pub fn of<'a>(api_version: &'a str, object: &'a Value) -> Partial<'a> {
    Partial {
        api_version,
        kind: "PartialObjectMetadata",
        metadata: &object["metadata"],
    }
}

/// See [`of`]. Its fields in the order `json!` writes them (sorted), as every answer here is.
#[derive(Serialize)]
pub struct Partial<'a> {
    #[serde(rename = "apiVersion")]
    api_version: &'a str,
    kind: &'static str,
    metadata: &'a Value,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn asked_for_by_group_and_version_only() {
        let v1 = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json";
        assert_eq!(wanted(v1), Some("meta.k8s.io/v1"));
        assert_eq!(
            wanted("application/json; as=PartialObjectMetadata; g=meta.k8s.io; v=v1beta1"),
            Some("meta.k8s.io/v1beta1")
        );
        for not in [
            "",
            "application/json",
            "*/*",
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json",
            "application/json;as=PartialObjectMetadata;g=apps;v=v1",
            "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v2",
            "application/yaml;as=PartialObjectMetadata;g=meta.k8s.io;v=v1",
            "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1",
            "application/json,application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1",
        ] {
            assert_eq!(wanted(not), None, "{not:?}");
        }
    }

    #[test]
    fn keeps_the_metadata_and_nothing_else() {
        let d = json!({"kind": "Deployment", "apiVersion": "apps/v1",
            "metadata": {"name": "web", "resourceVersion": "7", "annotations": {"a": "b"}},
            "spec": {"replicas": 1}, "status": {}});
        assert_eq!(
            serde_json::to_string(&of("meta.k8s.io/v1", &d)).expect("written"),
            serde_json::to_string(
                &json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                "metadata": {"name": "web", "resourceVersion": "7", "annotations": {"a": "b"}}})
            )
            .expect("written")
        );
    }
}
