//! I/O with registries: the skopeo runner, the manifest HEAD client, the mirror, and the
//! per-registry gates that pause a registry which rate-limits us.

pub mod client;
pub mod manifest_head;
pub mod mirror;
pub mod ratelimit;
pub mod skopeo;
