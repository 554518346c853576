//! The list of settings: each one's key (the TOML key), its environment names, its flag and
//! what it expects. The loader, the error messages, the command line and `check-config` all
//! read this one table, so the names cannot drift apart.

/// Prefix of every setting's environment variable.
pub const ENV_PREFIX: &str = "IMAGE_CLONER_";

/// A setting's name in each layer and what it expects; the single list that the loader,
/// the error messages and `check-config` share.
pub struct Spec {
    pub key: &'static str,
    /// Also read from the bare upper-case name, as the original ConfigMap wrote it.
    pub bare_env: bool,
    pub expected: &'static str,
}

pub const SPECS: &[Spec] = &[
    Spec {
        key: "backup_registry",
        bare_env: true,
        expected: "a registry host with an optional path, e.g. quay.io/cargaona",
    },
    Spec {
        key: "max_concurrent_reconciles",
        bare_env: true,
        expected: "a whole number from 1 to 100",
    },
    Spec {
        key: "namespaces_to_ignore",
        bare_env: true,
        expected: "a comma-separated list of namespace names",
    },
    Spec {
        key: "namespaces",
        bare_env: false,
        expected: "a comma-separated list of namespace names to act in (empty: all)",
    },
    Spec {
        key: "naming",
        bare_env: false,
        expected: "\"flat\" or \"nested\"",
    },
    Spec {
        key: "pin",
        bare_env: false,
        expected: "\"digest\" or \"tag\"",
    },
    Spec {
        key: "docker_config",
        bare_env: false,
        expected: "the path of a readable docker config.json",
    },
    Spec {
        key: "skopeo",
        bare_env: false,
        expected: "the path of the skopeo executable",
    },
    Spec {
        key: "copy_timeout",
        bare_env: false,
        expected: "a duration such as 30m or 90s",
    },
    Spec {
        key: "inspect_timeout",
        bare_env: false,
        expected: "a duration such as 1m or 30s",
    },
    Spec {
        key: "retry_times",
        bare_env: false,
        expected: "a whole number from 0 to 10",
    },
    Spec {
        key: "insecure_registries",
        bare_env: false,
        expected: "a comma-separated list of host[:port]",
    },
    Spec {
        key: "cert_dir",
        bare_env: false,
        expected: "a directory of CA certificates (*.crt)",
    },
    Spec {
        key: "tmp_dir",
        bare_env: false,
        expected: "a writable directory for skopeo's temporary files",
    },
    Spec {
        key: "kubeconfig",
        bare_env: false,
        expected: "the path of a readable kubeconfig (default: $KUBECONFIG, ~/.kube/config, then in-cluster)",
    },
    Spec {
        key: "context",
        bare_env: false,
        expected: "the name of a context in the kubeconfig",
    },
    Spec {
        key: "bare_pods",
        bare_env: false,
        expected: "true or false",
    },
    Spec {
        key: "patch_gitops_managed",
        bare_env: false,
        expected: "true or false",
    },
    Spec {
        key: "shutdown_grace",
        bare_env: false,
        expected: "a duration such as 30s or 5m",
    },
    Spec {
        key: "metrics_address",
        bare_env: false,
        expected: "an address to listen on, such as 127.0.0.1:9090 or 0.0.0.0:9090",
    },
    Spec {
        key: "log_format",
        bare_env: false,
        expected: "\"text\" or \"json\"",
    },
    Spec {
        key: "log_level",
        bare_env: false,
        expected: "a level (error, warn, info, debug, trace) or a tracing filter",
    },
];

impl Spec {
    pub fn env_name(&self) -> String {
        format!("{ENV_PREFIX}{}", self.key.to_ascii_uppercase())
    }

    pub fn flag(&self) -> String {
        format!("--{}", self.key.replace('_', "-"))
    }

    pub(crate) fn find(key: &str) -> Option<&'static Spec> {
        SPECS.iter().find(|s| s.key == key)
    }
}
