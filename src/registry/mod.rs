//! I/O with registries: the skopeo runner, the manifest HEAD client and the mirror.

pub mod client;
pub mod manifest_head;
pub mod mirror;
pub mod skopeo;
