//! The leader-election settings: `leader_election`, `lease_name`, `lease_namespace` and
//! `lease_duration`, checked together because one depends on another: outside a cluster the
//! daemon has no namespace of its own, so with leader election on the Lease's namespace must
//! be given — a daemon that cannot know where its Lease is must not start and write.

use std::time::Duration;

use crate::settings::Settings;
use crate::settings::parse::Bad;
use crate::settings::validate::Validator;

/// The Lease's name when `lease_name` is not set.
pub const DEFAULT_LEASE_NAME: &str = "image-cloner";
/// The Lease's duration when `lease_duration` is not set (client-go's default too).
pub const DEFAULT_LEASE_DURATION: Duration = Duration::from_secs(15);
/// Where a pod finds its namespace (the service account's token mount).
const SERVICE_ACCOUNT_NAMESPACE: &str = "/var/run/secrets/kubernetes.io/serviceaccount/namespace";

/// The Lease a daemon with leader election on takes part in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseSettings {
    pub name: String,
    pub namespace: String,
    pub duration: Duration,
}

impl Settings {
    /// The Lease to elect a leader on; `None` with leader election off.
    pub fn lease(&self) -> Option<LeaseSettings> {
        if !self.leader_election {
            return None;
        }
        Some(LeaseSettings {
            name: self.lease_name.clone(),
            namespace: self.lease_namespace.clone()?,
            duration: self.lease_duration,
        })
    }
}

/// The daemon's own namespace when it runs in a pod: `POD_NAMESPACE` (set by the manifests
/// through the downward API), else the service account's namespace file.
pub fn own_namespace(env_pod_namespace: Option<&str>) -> Option<String> {
    if let Some(ns) = env_pod_namespace.filter(|s| !s.is_empty()) {
        return Some(ns.to_owned());
    }
    std::fs::read_to_string(SERVICE_ACCOUNT_NAMESPACE)
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
}

/// An object name as Kubernetes takes it: an RFC 1123 subdomain.
fn is_dns_subdomain(s: &str) -> bool {
    let b = s.as_bytes();
    let alnum = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    (1..=253).contains(&b.len())
        && b.iter().all(|c| alnum(c) || *c == b'-' || *c == b'.')
        && alnum(&b[0])
        && alnum(&b[b.len() - 1])
}

fn on_off(s: &str) -> Result<bool, Bad> {
    match s {
        "on" => Ok(true),
        "off" => Ok(false),
        _ => Err(Bad(None)),
    }
}

/// The four settings, as [`Settings`] holds them.
pub(super) struct Leader {
    pub(super) enabled: bool,
    pub(super) name: String,
    pub(super) namespace: Option<String>,
    pub(super) duration: Duration,
}

impl Validator<'_> {
    pub(super) fn leader(&mut self) -> Leader {
        let enabled = self.scalar("leader_election", false, on_off);
        let name = self.scalar("lease_name", DEFAULT_LEASE_NAME.to_owned(), |s| {
            if is_dns_subdomain(s) {
                Ok(s.to_owned())
            } else {
                Err(Bad(None))
            }
        });
        let explicit = self.scalar("lease_namespace", None, |s| {
            if crate::settings::parse::is_dns_label(s) {
                Ok(Some(s.to_owned()))
            } else {
                Err(Bad(None))
            }
        });
        let duration = self.duration("lease_duration", DEFAULT_LEASE_DURATION);
        let namespace = match explicit {
            Some(ns) => Some(ns),
            None if !self.uses("lease_namespace") => None,
            None => {
                let own = own_namespace(self.env("POD_NAMESPACE"));
                if own.is_some() {
                    self.origins.insert(
                        "lease_namespace",
                        "default, the daemon's own namespace".to_owned(),
                    );
                } else if enabled {
                    self.problems.push(format!(
                        "missing setting lease_namespace: leader_election = on, and outside a cluster the daemon has no namespace of its own (no POD_NAMESPACE, no {SERVICE_ACCOUNT_NAMESPACE}); set IMAGE_CLONER_LEASE_NAMESPACE, `lease_namespace = ...` in the config file, or --lease-namespace to the namespace of the Lease every replica shares"
                    ));
                }
                own
            }
        };
        Leader {
            enabled,
            name,
            namespace,
            duration,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_names_are_dns_subdomains() {
        for ok in ["image-cloner", "a", "image-cloner.example.com", "0x"] {
            assert!(is_dns_subdomain(ok), "{ok}");
        }
        let long = "a".repeat(254);
        for bad in ["", "-a", "a-", "A", "a_b", "a/b", ".a", long.as_str()] {
            assert!(!is_dns_subdomain(bad), "{bad}");
        }
    }

    #[test]
    fn leader_election_is_on_or_off() {
        assert_eq!(on_off("on").ok(), Some(true));
        assert_eq!(on_off("off").ok(), Some(false));
        for bad in ["true", "yes", "1", "ON", ""] {
            assert!(on_off(bad).is_err(), "{bad}");
        }
    }
}
