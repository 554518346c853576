//! Real registries and real test images for image-cloner's tests, benchmarks
//! and demo — on loopback only.
//!
//! - [`Registry`]: Debian's `docker-registry` (CNCF distribution 2.8) on a free
//!   `127.0.0.1` port, optionally with htpasswd auth, TLS from a throwaway CA,
//!   and schema 1 manifests enabled. Killed and removed on drop.
//! - [`ImageSpec`]: deterministic OCI image layouts (single platform or a
//!   multi-platform index) with real gzipped tar layers.
//! - [`push`], [`inspect_raw`], [`digest_of`], [`delete`]: the real `skopeo`.
//!
//! ```no_run
//! use testbed::{ImageSpec, Platform, PushOptions, Registry, RegistryOptions};
//! # fn main() -> testbed::Result<()> {
//! let registry = Registry::start(RegistryOptions::default())?;
//! let image = ImageSpec::new("app", 1)
//!     .with_platforms(vec![Platform::linux_amd64(), Platform::linux_arm64()])
//!     .build()?;
//! let digest = testbed::push(&image, &registry, "app", "1.0", PushOptions { all: true, ..Default::default() })?;
//! assert_eq!(digest, image.digest);
//! assert_eq!(testbed::digest_of(&registry, "app:1.0")?, Some(digest));
//! # Ok(()) }
//! ```
//!
//! Programs are found on `PATH`, or through `TESTBED_REGISTRY` and `TESTBED_SKOPEO`.

mod error;
pub mod http;
mod image;
mod port;
mod process;
mod registry;
mod request_log;
mod skopeo;
pub mod tls;

pub use error::{Result, TestbedError};
pub use image::{
    BuiltImage, ImageSpec, MEDIA_TYPE_OCI_CONFIG, MEDIA_TYPE_OCI_INDEX, MEDIA_TYPE_OCI_LAYER_GZIP,
    MEDIA_TYPE_OCI_MANIFEST, Platform, REF_NAME, sha256_digest,
};
pub use port::free_port;
pub use registry::{Credentials, READY_TIMEOUT, Registry, RegistryOptions, write_docker_config};
pub use request_log::{LoggedRequest, logged_requests};
pub use skopeo::{
    Access, Creds, Format, PushOptions, SKOPEO_TIMEOUT, delete, digest_of, digest_of_at,
    inspect_raw, inspect_raw_at, is_manifest_unknown, manifest_digest, push, push_to,
};

/// Lowercase hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}
