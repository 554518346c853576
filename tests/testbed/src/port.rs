//! Free loopback ports for what the tests start and bind later: registries, the daemon's
//! webhooks and health listener, API servers.
//!
//! The kernel answers a bind of `127.0.0.1:0` from its ephemeral range, the range every
//! outgoing connection's local port is drawn from as well. Between choosing such a port and the
//! process binding it — seconds, when a replica starts after another has taken its Lease — one
//! of the connections the tests make by the thousand (kubectl, skopeo, the API clients) can be
//! given it, and the bind fails with "Address already in use": a CI run failed that way. The
//! ports here are below that range, where no connection is given one, and no two calls in a
//! process return the same port.

use std::net::TcpListener;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::{Result, TestbedError};

/// The lowest port handed out: above the registered ports most services use.
const LOWEST: u16 = 10_000;
/// Where the kernel's ephemeral range starts when `/proc` does not say (Linux's default).
const DEFAULT_EPHEMERAL_START: u16 = 32_768;

/// A port on 127.0.0.1 that was free when chosen, outside the ephemeral range when it starts
/// high enough to leave room below it; otherwise one the kernel chose.
pub fn free_port() -> Result<u16> {
    static CALLS: AtomicU32 = AtomicU32::new(0);
    let highest = ephemeral_start().saturating_sub(1);
    if highest < LOWEST + 1_000 {
        return kernel_chosen();
    }
    let span = u32::from(highest - LOWEST) + 1;
    // Processes start from different places, so that two test binaries seldom try the same.
    let start = std::process::id().wrapping_mul(7_919);
    for _ in 0..span {
        let call = CALLS.fetch_add(1, Ordering::Relaxed);
        let port = LOWEST + u16::try_from(start.wrapping_add(call) % span).unwrap_or(0);
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    kernel_chosen()
}

fn ephemeral_start() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse().ok())
        .unwrap_or(DEFAULT_EPHEMERAL_START)
}

fn kernel_chosen() -> Result<u16> {
    let reserve = |source| TestbedError::ReservePort { source };
    let listener = TcpListener::bind(("127.0.0.1", 0)).map_err(reserve)?;
    Ok(listener.local_addr().map_err(reserve)?.port())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_distinct_bindable_and_below_the_ephemeral_range() {
        let ports: Vec<u16> = (0..200).map(|_| free_port().expect("a port")).collect();
        let distinct: std::collections::HashSet<_> = ports.iter().collect();
        assert_eq!(distinct.len(), ports.len(), "{ports:?}");
        let below = ephemeral_start();
        for port in &ports {
            assert!(
                (LOWEST..below).contains(port) || below < LOWEST + 1_000,
                "{port} is in the ephemeral range, which starts at {below}"
            );
        }
        let port = free_port().expect("a port");
        let _bound = TcpListener::bind(("127.0.0.1", port)).expect("the port is free");
    }
}
