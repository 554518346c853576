//! What the mirror needs to know about a raw manifest, read from the exact bytes a registry
//! served: its digest, whether it is a legacy schema-1 manifest (which cannot keep its digest
//! and which current registries refuse), and — for schema 1 — whether a backup copy converted
//! from it already holds the same layers.

use serde::Deserialize;

use crate::image::reference::Digest;

/// The kinds of manifest the mirror treats differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ManifestKind {
    /// Docker schema 2 or OCI manifest, or a manifest list / OCI index: copied byte for byte.
    Modern,
    /// Docker schema 1 (signed or not): converted to schema 2 on copy.
    Schema1,
}

/// A manifest as served: its bytes' digest and the little the mirror reads from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawManifest {
    pub digest: Digest,
    pub kind: ManifestKind,
    /// Layer blob digests, base layer first, empty (throwaway) schema-1 layers left out: the
    /// layers a schema-2 conversion keeps.
    pub layers: Vec<String>,
    /// `mediaType` when the manifest declares one.
    pub media_type: Option<String>,
}

#[derive(Deserialize)]
struct Probe {
    #[serde(rename = "schemaVersion")]
    schema_version: Option<u32>,
    #[serde(rename = "mediaType")]
    media_type: Option<String>,
    #[serde(default)]
    layers: Vec<Descriptor>,
    #[serde(default, rename = "fsLayers")]
    fs_layers: Vec<FsLayer>,
    #[serde(default)]
    history: Vec<History>,
    #[serde(default)]
    signatures: Vec<Signature>,
}

#[derive(Deserialize)]
struct Signature {
    protected: String,
}

/// The JWS protected header of a signed schema-1 manifest: where the signed payload ends.
#[derive(Deserialize)]
struct Protected {
    #[serde(rename = "formatLength")]
    format_length: usize,
    #[serde(rename = "formatTail")]
    format_tail: String,
}

#[derive(Deserialize)]
struct Descriptor {
    digest: String,
}

#[derive(Deserialize)]
struct FsLayer {
    #[serde(rename = "blobSum")]
    blob_sum: String,
}

#[derive(Deserialize)]
struct History {
    #[serde(rename = "v1Compatibility")]
    v1_compatibility: String,
}

#[derive(Deserialize)]
struct V1Compatibility {
    #[serde(default)]
    throwaway: bool,
}

/// Why bytes served as a manifest could not be read as one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the registry served a manifest that is not valid JSON of a known format: {0}")]
pub struct ManifestError(String);

/// The digest of a schema-1 manifest. A signed one is identified by its payload without the
/// signatures (which the registry may recompute on every GET): the first `formatLength` bytes
/// followed by the base64url-decoded `formatTail`, as libtrust defines it and containers/image's
/// `manifest.Digest` computes it.
fn schema1_digest(bytes: &[u8], signatures: &[Signature]) -> Result<Digest, ManifestError> {
    use base64::Engine as _;
    let Some(first) = signatures.first() else {
        return Ok(Digest::sha256_of(bytes));
    };
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let header = b64
        .decode(first.protected.trim_end_matches('='))
        .map_err(|e| ManifestError(format!("schema-1 signature header: {e}")))?;
    let protected: Protected = serde_json::from_slice(&header)
        .map_err(|e| ManifestError(format!("schema-1 signature header: {e}")))?;
    let tail = b64
        .decode(protected.format_tail.trim_end_matches('='))
        .map_err(|e| ManifestError(format!("schema-1 formatTail: {e}")))?;
    let head = bytes.get(..protected.format_length).ok_or_else(|| {
        ManifestError(format!(
            "schema-1 formatLength {} is beyond the manifest's {} bytes",
            protected.format_length,
            bytes.len()
        ))
    })?;
    let mut payload = head.to_vec();
    payload.extend_from_slice(&tail);
    Ok(Digest::sha256_of(&payload))
}

impl RawManifest {
    /// A modern manifest known by its digest alone: what is copied byte for byte needs nothing
    /// else of it.
    pub fn modern(digest: Digest) -> Self {
        RawManifest {
            digest,
            kind: ManifestKind::Modern,
            layers: Vec::new(),
            media_type: None,
        }
    }

    pub fn parse(bytes: &[u8]) -> Result<Self, ManifestError> {
        let probe: Probe =
            serde_json::from_slice(bytes).map_err(|e| ManifestError(e.to_string()))?;
        if probe.schema_version == Some(1) {
            let digest = schema1_digest(bytes, &probe.signatures)?;
            // fsLayers and history run from the top layer down and pair up by index; the
            // conversion to schema 2 keeps the non-throwaway layers, base first.
            if probe.history.len() != probe.fs_layers.len() {
                return Err(ManifestError(format!(
                    "schema-1 manifest has {} fsLayers but {} history entries",
                    probe.fs_layers.len(),
                    probe.history.len()
                )));
            }
            let mut layers = Vec::new();
            for (layer, history) in probe.fs_layers.iter().zip(&probe.history).rev() {
                let v1: V1Compatibility = serde_json::from_str(&history.v1_compatibility)
                    .map_err(|e| ManifestError(format!("schema-1 v1Compatibility: {e}")))?;
                if !v1.throwaway {
                    layers.push(layer.blob_sum.clone());
                }
            }
            return Ok(RawManifest {
                digest,
                kind: ManifestKind::Schema1,
                layers,
                media_type: probe.media_type,
            });
        }
        let digest = Digest::sha256_of(bytes);
        if probe.schema_version != Some(2) {
            return Err(ManifestError(format!(
                "schemaVersion {:?}, expected 1 or 2",
                probe.schema_version
            )));
        }
        Ok(RawManifest {
            digest,
            kind: ManifestKind::Modern,
            layers: probe.layers.into_iter().map(|d| d.digest).collect(),
            media_type: probe.media_type,
        })
    }

    /// Whether `self` (a backup copy) already is `source`: byte-identical for a modern manifest;
    /// for a schema-1 source, a single-image manifest with the same non-empty layers, which is
    /// what skopeo's conversion produces.
    pub fn already_holds(&self, source: &RawManifest) -> bool {
        match source.kind {
            ManifestKind::Modern => self.digest == source.digest,
            ManifestKind::Schema1 => {
                self.kind == ManifestKind::Modern
                    && !self.layers.is_empty()
                    && self.layers == source.layers
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INDEX: &str = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#;

    fn schema1() -> String {
        serde_json::json!({
            "schemaVersion": 1,
            "name": "x", "tag": "1", "architecture": "amd64",
            "fsLayers": [
                {"blobSum": "sha256:top"},
                {"blobSum": "sha256:empty"},
                {"blobSum": "sha256:base"}
            ],
            "history": [
                {"v1Compatibility": "{\"id\":\"3\"}"},
                {"v1Compatibility": "{\"id\":\"2\",\"throwaway\":true}"},
                {"v1Compatibility": "{\"id\":\"1\"}"}
            ]
        })
        .to_string()
    }

    #[test]
    fn modern_manifest_digest_is_the_sha256_of_its_bytes() {
        let m = RawManifest::parse(INDEX.as_bytes()).unwrap();
        assert_eq!(m.kind, ManifestKind::Modern);
        assert_eq!(m.digest, Digest::sha256_of(INDEX.as_bytes()));
        assert_eq!(
            m.media_type.as_deref(),
            Some("application/vnd.oci.image.index.v1+json")
        );
    }

    #[test]
    fn schema1_layers_are_base_first_without_throwaway_layers() {
        let m = RawManifest::parse(schema1().as_bytes()).unwrap();
        assert_eq!(m.kind, ManifestKind::Schema1);
        assert_eq!(m.layers, ["sha256:base", "sha256:top"]);
    }

    #[test]
    fn a_converted_copy_holds_a_schema1_source_when_its_layers_match() {
        let source = RawManifest::parse(schema1().as_bytes()).unwrap();
        let converted = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": {"digest": "sha256:cfg"},
            "layers": [{"digest": "sha256:base"}, {"digest": "sha256:top"}]
        })
        .to_string();
        let other = converted.replace("sha256:top", "sha256:changed");
        assert!(
            RawManifest::parse(converted.as_bytes())
                .unwrap()
                .already_holds(&source)
        );
        assert!(
            !RawManifest::parse(other.as_bytes())
                .unwrap()
                .already_holds(&source)
        );
    }

    #[test]
    fn a_modern_copy_holds_its_source_only_byte_for_byte() {
        let a = RawManifest::parse(INDEX.as_bytes()).unwrap();
        let reformatted = INDEX.replace(',', ", ");
        let b = RawManifest::parse(reformatted.as_bytes()).unwrap();
        assert!(a.already_holds(&a));
        assert!(!b.already_holds(&a));
    }

    #[test]
    fn a_signed_schema1_manifest_is_identified_by_its_payload_without_signatures() {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let payload = "{\n   \"schemaVersion\": 1,\n   \"fsLayers\": [],\n   \"history\": []\n}";
        let format_length = payload.len() - 2;
        let header = format!(
            r#"{{"formatLength":{format_length},"formatTail":"{}","time":"2026-11-25T00:00:00Z"}}"#,
            b64.encode("\n}")
        );
        let signed = format!(
            "{},\n   \"signatures\": [{{\"protected\": \"{}\", \"signature\": \"sig\"}}]\n}}",
            &payload[..format_length],
            b64.encode(header)
        );
        let m = RawManifest::parse(signed.as_bytes()).unwrap();
        assert_eq!(m.kind, ManifestKind::Schema1);
        assert_eq!(m.digest, Digest::sha256_of(payload.as_bytes()));
        assert_ne!(m.digest, Digest::sha256_of(signed.as_bytes()));
    }

    #[test]
    fn garbage_is_rejected_with_the_reason() {
        let err = RawManifest::parse(b"<html>").unwrap_err();
        assert!(err.to_string().contains("not valid JSON"), "{err}");
        let err = RawManifest::parse(br#"{"schemaVersion":3}"#).unwrap_err();
        assert!(err.to_string().contains("expected 1 or 2"), "{err}");
    }
}
