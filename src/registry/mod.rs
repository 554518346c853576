//! I/O with registries: the skopeo runner, the manifest HEAD client, the mirror, and the
//! per-registry gates that pause a registry which rate-limits us.

pub mod client;
pub mod manifest_head;
pub mod mirror;
pub mod ratelimit;
pub mod skopeo;

/// Whether `domain` (a registry's host and port) is one of `insecure_registries`, the way
/// every client of a registry decides it (skopeo's `--tls-verify`, the manifest HEAD's schemes,
/// whether the backup registry needs the system's CA certificates): hosts compare without
/// ASCII case.
pub fn is_insecure(insecure_registries: &[String], domain: &str) -> bool {
    insecure_registries
        .iter()
        .any(|r| r.eq_ignore_ascii_case(domain))
}
