//! Deterministic test images written as OCI image layouts.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use flate2::{Compression, GzBuilder};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use tempfile::TempDir;

use crate::error::{Result, TestbedError};
use crate::hex;

pub const MEDIA_TYPE_OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const MEDIA_TYPE_OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const MEDIA_TYPE_OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const MEDIA_TYPE_OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// The `org.opencontainers.image.ref.name` of the image in `index.json`, so
/// skopeo can address it as `oci:<layout_dir>:latest`.
pub const REF_NAME: &str = "latest";

/// Fixed timestamp written into configs and history (the epoch), for determinism.
const EPOCH: &str = "1970-01-01T00:00:00Z";

/// An OS/architecture pair (and optional variant) an image is built for.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

impl Platform {
    pub fn new(os: &str, architecture: &str, variant: Option<&str>) -> Self {
        Self {
            os: os.to_string(),
            architecture: architecture.to_string(),
            variant: variant.map(str::to_string),
        }
    }

    pub fn linux_amd64() -> Self {
        Self::new("linux", "amd64", None)
    }

    pub fn linux_arm64() -> Self {
        Self::new("linux", "arm64", Some("v8"))
    }

    /// The first `n` of linux amd64, arm64/v8, arm/v7, ppc64le, s390x, 386,
    /// riscv64 (at most 7).
    pub fn first(n: usize) -> Vec<Self> {
        [
            Self::linux_amd64(),
            Self::linux_arm64(),
            Self::new("linux", "arm", Some("v7")),
            Self::new("linux", "ppc64le", None),
            Self::new("linux", "s390x", None),
            Self::new("linux", "386", None),
            Self::new("linux", "riscv64", None),
        ]
        .into_iter()
        .take(n)
        .collect()
    }

    /// `os-architecture[-variant]`, used in layer file names.
    pub fn label(&self) -> String {
        match &self.variant {
            Some(v) => format!("{}-{}-{v}", self.os, self.architecture),
            None => format!("{}-{}", self.os, self.architecture),
        }
    }

    fn json(&self) -> Value {
        let mut p = json!({ "architecture": self.architecture, "os": self.os });
        if let Some(v) = &self.variant {
            p["variant"] = json!(v);
        }
        p
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// What to build. The same spec always yields byte-identical blobs and digests.
#[derive(Clone, Debug)]
pub struct ImageSpec {
    /// Recorded as the config label `org.testbed.name` (and in error messages).
    pub name: String,
    /// Layers per platform.
    pub layers: usize,
    /// Uncompressed size of the single file in each layer, in bytes.
    pub layer_size: usize,
    /// Seeds the pseudo-random layer contents; distinct seeds give distinct images.
    pub seed: u64,
    /// One platform: a single image manifest. Several: an image index over one
    /// manifest per platform.
    pub platforms: Vec<Platform>,
}

impl ImageSpec {
    /// A small single-platform (linux/amd64) image: 2 layers of 64 KiB.
    pub fn new(name: impl Into<String>, seed: u64) -> Self {
        Self {
            name: name.into(),
            layers: 2,
            layer_size: 64 * 1024,
            seed,
            platforms: vec![Platform::linux_amd64()],
        }
    }

    pub fn with_platforms(mut self, platforms: Vec<Platform>) -> Self {
        self.platforms = platforms;
        self
    }

    pub fn with_layers(mut self, layers: usize, layer_size: usize) -> Self {
        self.layers = layers;
        self.layer_size = layer_size;
        self
    }

    /// Builds the layout in a new temporary directory, removed when the
    /// returned [`BuiltImage`] is dropped.
    pub fn build(&self) -> Result<BuiltImage> {
        let tempdir = tempfile::Builder::new()
            .prefix("testbed-image-")
            .tempdir()
            .map_err(|e| {
                self.error(
                    &std::env::temp_dir(),
                    format!("creating a temporary directory: {e}"),
                )
            })?;
        let mut image = self.build_in(tempdir.path())?;
        image._tempdir = Some(tempdir);
        Ok(image)
    }

    /// Builds the layout in `dir` (created if missing; kept afterwards).
    ///
    /// Layout: `oci-layout`, `index.json` (one entry, annotated with
    /// `org.opencontainers.image.ref.name` = [`REF_NAME`]) and
    /// `blobs/sha256/<hex>`. Per platform: `layers` gzipped tar layers each
    /// holding `data/<seed>-<platform label>-<i>.bin` (`layer_size`
    /// xorshift bytes; mtime 0, uid/gid 0), a config (`rootfs.diff_ids` are
    /// the sha256 of the uncompressed tars; one history entry per layer, which
    /// schema 1 conversion needs) and an OCI manifest.
    pub fn build_in(&self, dir: &Path) -> Result<BuiltImage> {
        if self.platforms.is_empty() {
            return Err(self.error(dir, "no platform given"));
        }
        let layout = Layout::create(dir).map_err(|e| self.error(dir, e))?;
        let mut platform_manifests = Vec::new();
        for (p_index, platform) in self.platforms.iter().enumerate() {
            let descriptor = self
                .build_platform(&layout, p_index, platform)
                .map_err(|e| self.error(dir, e))?;
            platform_manifests.push((platform.clone(), descriptor));
        }

        let top = if let [(_, single)] = platform_manifests.as_slice() {
            single.clone()
        } else {
            let manifests: Vec<Value> = platform_manifests
                .iter()
                .map(|(platform, d)| {
                    let mut v = d.json();
                    v["platform"] = platform.json();
                    v
                })
                .collect();
            let index = json!({
                "schemaVersion": 2,
                "mediaType": MEDIA_TYPE_OCI_INDEX,
                "manifests": manifests,
            });
            layout
                .put_json(MEDIA_TYPE_OCI_INDEX, &index)
                .map_err(|e| self.error(dir, e))?
        };
        let mut entry = top.json();
        entry["annotations"] = json!({ "org.opencontainers.image.ref.name": REF_NAME });
        let index_json = json!({ "schemaVersion": 2, "manifests": [entry] });
        layout
            .write_file("index.json", &to_json_bytes(&index_json))
            .map_err(|e| self.error(dir, e))?;

        Ok(BuiltImage {
            layout_dir: dir.to_path_buf(),
            reference: REF_NAME.to_string(),
            digest: top.digest.clone(),
            media_type: top.media_type,
            platform_digests: platform_manifests
                .into_iter()
                .map(|(p, d)| (p, d.digest))
                .collect(),
            _tempdir: None,
        })
    }

    fn build_platform(
        &self,
        layout: &Layout,
        p_index: usize,
        platform: &Platform,
    ) -> std::result::Result<Descriptor, String> {
        let mut layers = Vec::new();
        let mut diff_ids = Vec::new();
        let mut history = Vec::new();
        for i in 0..self.layers {
            let seed = mix(mix(self.seed) ^ mix(p_index as u64 + 1) ^ mix(i as u64 + 0x5eed));
            let data = pseudo_random_bytes(seed, self.layer_size);
            let path = format!("data/{}-{}-{i}.bin", self.seed, platform.label());
            let tar = layer_tar(&path, &data).map_err(|e| format!("writing layer tar: {e}"))?;
            diff_ids.push(sha256_digest(&tar));
            let gz = gzip(&tar).map_err(|e| format!("compressing layer: {e}"))?;
            layers.push(layout.put(MEDIA_TYPE_OCI_LAYER_GZIP, &gz)?.json());
            history.push(json!({ "created": EPOCH, "created_by": format!("testbed: add {path}") }));
        }
        let mut config = json!({
            "created": EPOCH,
            "architecture": platform.architecture,
            "os": platform.os,
            "config": { "Labels": { "org.testbed.name": self.name, "org.testbed.seed": self.seed.to_string() } },
            "rootfs": { "type": "layers", "diff_ids": diff_ids },
            "history": history,
        });
        if let Some(v) = &platform.variant {
            config["variant"] = json!(v);
        }
        let config = layout.put_json(MEDIA_TYPE_OCI_CONFIG, &config)?;
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": MEDIA_TYPE_OCI_MANIFEST,
            "config": config.json(),
            "layers": layers,
        });
        layout.put_json(MEDIA_TYPE_OCI_MANIFEST, &manifest)
    }

    fn error(&self, dir: &Path, reason: impl Into<String>) -> TestbedError {
        TestbedError::BuildImage {
            name: self.name.clone(),
            dir: dir.to_path_buf(),
            reason: reason.into(),
        }
    }
}

/// An OCI layout on disk, ready for `skopeo copy oci:<layout_dir>:<reference> …`.
#[derive(Debug)]
pub struct BuiltImage {
    pub layout_dir: PathBuf,
    /// The ref name in `index.json` ([`REF_NAME`]).
    pub reference: String,
    /// Digest of the top-level manifest: the image index when there are
    /// several platforms, else the image manifest.
    pub digest: String,
    /// Media type of the top-level manifest.
    pub media_type: &'static str,
    /// Digest of each platform's image manifest, in spec order.
    pub platform_digests: Vec<(Platform, String)>,
    _tempdir: Option<TempDir>,
}

impl BuiltImage {
    /// `oci:<layout_dir>:<reference>`, the skopeo source name.
    pub fn oci_reference(&self) -> String {
        format!("oci:{}:{}", self.layout_dir.display(), self.reference)
    }

    pub fn is_multi_platform(&self) -> bool {
        self.media_type == MEDIA_TYPE_OCI_INDEX
    }
}

#[derive(Clone)]
struct Descriptor {
    media_type: &'static str,
    digest: String,
    size: usize,
}

impl Descriptor {
    fn json(&self) -> Value {
        json!({ "mediaType": self.media_type, "digest": self.digest, "size": self.size })
    }
}

struct Layout {
    dir: PathBuf,
}

impl Layout {
    fn create(dir: &Path) -> std::result::Result<Self, String> {
        let blobs = dir.join("blobs/sha256");
        fs::create_dir_all(&blobs).map_err(|e| format!("creating {}: {e}", blobs.display()))?;
        let layout = Self {
            dir: dir.to_path_buf(),
        };
        layout.write_file("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)?;
        Ok(layout)
    }

    fn write_file(&self, name: &str, bytes: &[u8]) -> std::result::Result<(), String> {
        let path = self.dir.join(name);
        fs::write(&path, bytes).map_err(|e| format!("writing {}: {e}", path.display()))
    }

    fn put(
        &self,
        media_type: &'static str,
        bytes: &[u8],
    ) -> std::result::Result<Descriptor, String> {
        let digest = sha256_digest(bytes);
        let hex = digest.trim_start_matches("sha256:");
        self.write_file(&format!("blobs/sha256/{hex}"), bytes)?;
        Ok(Descriptor {
            media_type,
            digest,
            size: bytes.len(),
        })
    }

    fn put_json(
        &self,
        media_type: &'static str,
        v: &Value,
    ) -> std::result::Result<Descriptor, String> {
        self.put(media_type, &to_json_bytes(v))
    }
}

/// Compact JSON; object keys sorted (serde_json's default map), so stable.
fn to_json_bytes(v: &Value) -> Vec<u8> {
    v.to_string().into_bytes()
}

/// `sha256:<hex>` of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex(&Sha256::digest(bytes)))
}

/// splitmix64 finaliser: spreads seeds so that nearby seeds give unrelated streams.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// `len` bytes of xorshift64* output from `seed`.
fn pseudo_random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut state = if seed == 0 {
        0x2545_f491_4f6c_dd1d
    } else {
        seed
    };
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        out.extend_from_slice(&state.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A tar with directory `data/` and the file `path`, both owned by 0:0 with mtime 0.
fn layer_tar(path: &str, data: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    let header = |kind: tar::EntryType, mode: u32, size: u64| {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_size(size);
        h
    };
    let mut dir = header(tar::EntryType::Directory, 0o755, 0);
    builder.append_data(&mut dir, "data/", std::io::empty())?;
    let mut file = header(tar::EntryType::Regular, 0o644, data.len() as u64);
    builder.append_data(&mut file, path, data)?;
    builder.into_inner()
}

/// gzip with a fixed header (mtime 0, no name) and fast compression — the
/// contents are random, so it would not shrink anyway.
fn gzip(data: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut enc = GzBuilder::new()
        .mtime(0)
        .write(Vec::with_capacity(data.len() + 1024), Compression::fast());
    enc.write_all(data)?;
    enc.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn read_blob(image: &BuiltImage, digest: &str) -> Vec<u8> {
        let hex = digest.strip_prefix("sha256:").unwrap();
        fs::read(image.layout_dir.join("blobs/sha256").join(hex)).unwrap()
    }

    fn read_json(image: &BuiltImage, digest: &str) -> Value {
        serde_json::from_slice(&read_blob(image, digest)).unwrap()
    }

    #[test]
    fn same_spec_same_digests_other_seed_other_digests() {
        let spec = ImageSpec::new("a", 7).with_platforms(Platform::first(2));
        let one = spec.build().unwrap();
        let two = spec.build().unwrap();
        assert_eq!(one.digest, two.digest);
        assert_eq!(one.platform_digests, two.platform_digests);
        let other = ImageSpec::new("a", 8)
            .with_platforms(Platform::first(2))
            .build()
            .unwrap();
        assert_ne!(one.digest, other.digest);
        assert_ne!(one.platform_digests[0].1, other.platform_digests[0].1);
    }

    #[test]
    fn single_platform_layout_is_consistent() {
        let spec = ImageSpec::new("single", 1).with_layers(3, 1000);
        let image = spec.build().unwrap();
        assert!(!image.is_multi_platform());
        assert_eq!(image.platform_digests.len(), 1);
        assert_eq!(image.platform_digests[0].1, image.digest);

        let index: Value =
            serde_json::from_slice(&fs::read(image.layout_dir.join("index.json")).unwrap())
                .unwrap();
        let entry = &index["manifests"][0];
        assert_eq!(entry["digest"], image.digest.as_str());
        assert_eq!(entry["mediaType"], MEDIA_TYPE_OCI_MANIFEST);
        assert_eq!(
            entry["annotations"]["org.opencontainers.image.ref.name"],
            REF_NAME
        );
        assert!(image.layout_dir.join("oci-layout").is_file());

        // Every blob is stored under its digest with the declared size.
        let manifest_bytes = read_blob(&image, &image.digest);
        assert_eq!(sha256_digest(&manifest_bytes), image.digest);
        assert_eq!(entry["size"], manifest_bytes.len());
        let manifest: Value = serde_json::from_slice(&manifest_bytes).unwrap();
        let config = read_json(&image, manifest["config"]["digest"].as_str().unwrap());
        assert_eq!(config["architecture"], "amd64");
        assert_eq!(config["os"], "linux");
        let layers = manifest["layers"].as_array().unwrap();
        assert_eq!(layers.len(), 3);
        assert_eq!(config["history"].as_array().unwrap().len(), 3);
        for (i, layer) in layers.iter().enumerate() {
            let gz = read_blob(&image, layer["digest"].as_str().unwrap());
            assert_eq!(layer["size"], gz.len());
            let mut tar = Vec::new();
            flate2::read::GzDecoder::new(&gz[..])
                .read_to_end(&mut tar)
                .unwrap();
            // diff_id = sha256 of the uncompressed tar
            assert_eq!(
                config["rootfs"]["diff_ids"][i],
                sha256_digest(&tar).as_str()
            );
            let mut archive = tar::Archive::new(&tar[..]);
            let entries: Vec<(String, u64, u64)> = archive
                .entries()
                .unwrap()
                .map(|e| {
                    let e = e.unwrap();
                    let h = e.header();
                    (
                        e.path().unwrap().display().to_string(),
                        h.size().unwrap(),
                        h.mtime().unwrap(),
                    )
                })
                .collect();
            assert_eq!(
                entries,
                vec![
                    ("data/".to_string(), 0, 0),
                    (format!("data/1-linux-amd64-{i}.bin"), 1000, 0)
                ]
            );
        }
    }

    #[test]
    fn multi_platform_layout_has_index_with_platforms() {
        let image = ImageSpec::new("multi", 3)
            .with_layers(1, 100)
            .with_platforms(vec![Platform::linux_amd64(), Platform::linux_arm64()])
            .build()
            .unwrap();
        assert!(image.is_multi_platform());
        let index = read_json(&image, &image.digest);
        assert_eq!(index["mediaType"], MEDIA_TYPE_OCI_INDEX);
        let manifests = index["manifests"].as_array().unwrap();
        assert_eq!(manifests.len(), 2);
        assert_eq!(manifests[1]["platform"]["architecture"], "arm64");
        assert_eq!(manifests[1]["platform"]["variant"], "v8");
        assert_eq!(manifests[0]["platform"].get("variant"), None);
        for ((platform, digest), m) in image.platform_digests.iter().zip(manifests) {
            assert_eq!(m["digest"], digest.as_str());
            let config = read_json(
                &image,
                read_json(&image, digest)["config"]["digest"]
                    .as_str()
                    .unwrap(),
            );
            assert_eq!(config["architecture"], platform.architecture.as_str());
        }
        // Platforms have different layers.
        let layer = |d: &str| read_json(&image, d)["layers"][0]["digest"].clone();
        assert_ne!(
            layer(&image.platform_digests[0].1),
            layer(&image.platform_digests[1].1)
        );
    }

    #[test]
    fn no_platform_is_an_error() {
        let err = ImageSpec::new("none", 1)
            .with_platforms(vec![])
            .build()
            .unwrap_err();
        assert!(matches!(err, TestbedError::BuildImage { .. }), "{err}");
    }
}
