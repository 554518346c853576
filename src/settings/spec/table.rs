//! The rows of the settings table ([`Spec`]): every setting with its names, its type, what it
//! expects and the commands that read it, in the order `--help` and `check-config` list them.

use std::time::Duration;

use super::{Kind, Spec, Task};

// Not `Copy`: it would shadow the derive.
use Task::{Plan, PlanCheckBackup, Restore, Run};

/// Every command but `check-config` (which uses every setting anyway).
const ALL: &[Task] = &[Run, Task::Copy, Plan, Restore];
/// Where copies go and what they are called.
const NAMING: &[Task] = &[Run, Task::Copy, Plan];
/// Asking or writing to registries: skopeo, credentials, TLS, timeouts.
const REGISTRY: &[Task] = &[Run, Task::Copy, PlanCheckBackup];
/// Whether and how pods pull the copies: what `run` does and `plan` shows.
const PULLING: &[Task] = &[Run, Plan];
/// The reference a copy is patched to (`plan --check-backup` shows the one it finds).
const PINNING: &[Task] = &[Run, Task::Copy, PlanCheckBackup];
/// Reaching registries without credentials: `plan` too asks whether sources are public, and
/// whether the backup registry answers anonymous pulls.
const REGISTRY_ACCESS: &[Task] = &[Run, Task::Copy, Plan];
/// Which sources are copied at all: what `run` and `copy` do, and `plan` shows.
const SOURCES: &[Task] = &[Run, Task::Copy, Plan];
/// Copying: only `run` and `copy` copy.
const COPYING: &[Task] = &[Run, Task::Copy];
/// Reaching the cluster.
const CLUSTER: &[Task] = &[Run, Plan, Restore];
/// Which workloads are planned and patched.
const WORKLOADS: &[Task] = &[Run, Plan];
/// The daemon's own life.
const DAEMON: &[Task] = &[Run];

const fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

pub const SPECS: &[Spec] = &[
    Spec {
        key: "backup_registry",
        bare_env: true,
        value: "REGISTRY",
        used_by: NAMING,
        required: true,
        kind: Kind::Text,
        expected: "a registry host with an optional path, e.g. quay.io/my-org or registry.example.com:5000/backup",
    },
    Spec {
        key: "max_concurrent_reconciles",
        bare_env: true,
        value: "N",
        used_by: COPYING,
        required: false,
        kind: Kind::Number { min: 1, max: 100 },
        expected: "a whole number from 1 to 100",
    },
    Spec {
        key: "namespaces_to_ignore",
        bare_env: true,
        value: "NAMESPACES",
        used_by: WORKLOADS,
        required: false,
        kind: Kind::List,
        expected: "a comma-separated list of namespace names",
    },
    Spec {
        key: "namespaces",
        bare_env: false,
        value: "NAMESPACES",
        used_by: WORKLOADS,
        required: false,
        kind: Kind::List,
        expected: "a comma-separated list of namespace names to act in (empty: all)",
    },
    Spec {
        key: "naming",
        bare_env: false,
        value: "flat|nested",
        used_by: NAMING,
        required: false,
        kind: Kind::Text,
        expected: "\"flat\" or \"nested\"",
    },
    Spec {
        key: "pin",
        bare_env: false,
        value: "digest|tag",
        used_by: PINNING,
        required: false,
        kind: Kind::Text,
        expected: "\"digest\" or \"tag\"",
    },
    Spec {
        key: "docker_config",
        bare_env: false,
        value: "PATH",
        used_by: REGISTRY,
        required: false,
        kind: Kind::Text,
        expected: "the path of a readable docker config.json",
    },
    Spec {
        key: "skopeo",
        bare_env: false,
        value: "PATH",
        used_by: REGISTRY,
        required: false,
        kind: Kind::Text,
        expected: "the path of the skopeo executable",
    },
    Spec {
        key: "copy_timeout",
        bare_env: false,
        value: "DURATION",
        used_by: COPYING,
        required: false,
        kind: Kind::Duration {
            min: secs(10),
            max: secs(24 * 3600),
        },
        expected: "a duration from 10s to 24h, such as 30m or 90s",
    },
    Spec {
        key: "inspect_timeout",
        bare_env: false,
        value: "DURATION",
        used_by: REGISTRY_ACCESS,
        required: false,
        kind: Kind::Duration {
            min: secs(1),
            max: secs(600),
        },
        expected: "a duration from 1s to 10m, such as 1m or 30s",
    },
    Spec {
        key: "retry_times",
        bare_env: false,
        value: "N",
        used_by: REGISTRY,
        required: false,
        kind: Kind::Number { min: 0, max: 10 },
        expected: "a whole number from 0 to 10",
    },
    Spec {
        key: "insecure_registries",
        bare_env: false,
        value: "HOSTS",
        used_by: REGISTRY_ACCESS,
        required: false,
        kind: Kind::List,
        expected: "a comma-separated list of host[:port]",
    },
    Spec {
        key: "cert_dir",
        bare_env: false,
        value: "DIR",
        used_by: REGISTRY_ACCESS,
        required: false,
        kind: Kind::Text,
        expected: "a directory of CA certificates (*.crt)",
    },
    Spec {
        key: "tmp_dir",
        bare_env: false,
        value: "DIR",
        used_by: COPYING,
        required: false,
        kind: Kind::Text,
        expected: "a writable directory for skopeo's temporary files",
    },
    Spec {
        key: "kubeconfig",
        bare_env: false,
        value: "PATH",
        used_by: CLUSTER,
        required: false,
        kind: Kind::Text,
        expected: "the path of a readable kubeconfig (default: $KUBECONFIG, ~/.kube/config, then in-cluster)",
    },
    Spec {
        key: "context",
        bare_env: false,
        value: "NAME",
        used_by: CLUSTER,
        required: false,
        kind: Kind::Text,
        expected: "the name of a context in the kubeconfig",
    },
    Spec {
        key: "bare_pods",
        bare_env: false,
        value: "true|false",
        used_by: WORKLOADS,
        required: false,
        kind: Kind::Bool,
        expected: "true or false",
    },
    Spec {
        key: "patch_gitops_managed",
        bare_env: false,
        value: "true|false",
        used_by: WORKLOADS,
        required: false,
        kind: Kind::Bool,
        expected: "true or false",
    },
    Spec {
        key: "shutdown_grace",
        bare_env: false,
        value: "DURATION",
        used_by: DAEMON,
        required: false,
        kind: Kind::Duration {
            min: secs(0),
            max: secs(3600),
        },
        expected: "a duration from 0s to 1h, such as 30s or 5m",
    },
    Spec {
        key: "metrics_address",
        bare_env: false,
        value: "ADDRESS",
        used_by: DAEMON,
        required: false,
        kind: Kind::Text,
        expected: "an address to listen on, such as 127.0.0.1:9090 or 0.0.0.0:9090",
    },
    Spec {
        key: "log_format",
        bare_env: false,
        value: "text|json",
        used_by: ALL,
        required: false,
        kind: Kind::Text,
        expected: "\"text\" or \"json\"",
    },
    Spec {
        key: "log_level",
        bare_env: false,
        value: "FILTER",
        used_by: ALL,
        required: false,
        kind: Kind::Text,
        expected: "a level (error, warn, info, debug, trace, off) or comma-separated directives such as info,image_cloner=debug or kube_runtime[reconcile]=trace",
    },
    Spec {
        key: "source_include",
        bare_env: false,
        value: "PATTERNS",
        used_by: SOURCES,
        required: false,
        kind: Kind::List,
        expected: "comma-separated glob patterns over source repositories such as docker.io/*,ghcr.io/* ('*' matches any characters, '/' included; '?' one); only matching sources are copied (empty: every source)",
    },
    Spec {
        key: "source_exclude",
        bare_env: false,
        value: "PATTERNS",
        used_by: SOURCES,
        required: false,
        kind: Kind::List,
        expected: "comma-separated glob patterns over source repositories such as *.internal/*; matching sources are never copied (wins over source_include)",
    },
    Spec {
        key: "copy_private_sources",
        bare_env: false,
        value: "false|true|REGISTRIES",
        used_by: SOURCES,
        required: false,
        kind: Kind::List,
        expected: "false, true, or a comma-separated list of registries (host[:port]) whose private images (served only with credentials) may be copied",
    },
    Spec {
        key: "pull_budget_reserve",
        bare_env: false,
        value: "N",
        used_by: COPYING,
        required: false,
        kind: Kind::Number { min: 0, max: 10000 },
        expected: "a whole number from 0 to 10000: pulls of a registry's reported budget (Docker Hub's ratelimit-remaining) left untouched for the nodes",
    },
    Spec {
        key: "pull_secret",
        bare_env: false,
        value: "NAME",
        used_by: PULLING,
        required: false,
        kind: Kind::Text,
        expected: "the name of the Secret image-cloner creates in each namespace it patches, holding only the backup registry's credentials (a DNS subdomain name such as image-cloner-pull), or empty for none",
    },
    Spec {
        key: "pull_check",
        bare_env: false,
        value: "on|off",
        used_by: PULLING,
        required: false,
        kind: Kind::Text,
        expected: "\"on\" (patch only where pods can pull the copy: a pull secret in place, or a backup registry that answers anonymous pulls) or \"off\" (the nodes have their own credentials for the backup registry)",
    },
    Spec {
        key: "leader_election",
        bare_env: false,
        value: "on|off",
        used_by: DAEMON,
        required: false,
        kind: Kind::Text,
        expected: "\"on\" or \"off\"",
    },
    Spec {
        key: "lease_name",
        bare_env: false,
        value: "NAME",
        used_by: DAEMON,
        required: false,
        kind: Kind::Text,
        expected: "a Lease name: lowercase letters, digits, '-' and '.', at most 253 characters",
    },
    Spec {
        key: "lease_namespace",
        bare_env: false,
        value: "NAMESPACE",
        used_by: DAEMON,
        required: false,
        kind: Kind::Text,
        expected: "the namespace of the Lease (default: the daemon's own; required outside a cluster when leader_election is on)",
    },
    Spec {
        key: "lease_duration",
        bare_env: false,
        value: "DURATION",
        used_by: DAEMON,
        required: false,
        kind: Kind::Duration {
            min: secs(5),
            max: secs(300),
        },
        expected: "a duration from 5s to 5m, such as 15s",
    },
    Spec {
        key: "audit_interval",
        bare_env: false,
        value: "DURATION",
        used_by: DAEMON,
        required: false,
        kind: Kind::Duration {
            min: secs(1),
            max: secs(7 * 24 * 3600),
        },
        expected: "a duration from 1s to 168h, such as 1h or 15m",
    },
    Spec {
        key: "on_backup_missing",
        bare_env: false,
        value: "report|restore",
        used_by: DAEMON,
        required: false,
        kind: Kind::Text,
        expected: "\"report\" or \"restore\"",
    },
    Spec {
        key: "rollout_guard_after",
        bare_env: false,
        value: "DURATION",
        used_by: DAEMON,
        required: false,
        kind: Kind::Duration {
            min: secs(1),
            max: secs(24 * 3600),
        },
        expected: "a duration from 1s to 24h, such as 5m or 90s",
    },
    // The admission webhooks (src/admission/): each switchable on its own, off by default.
    Spec {
        key: "mutating_webhook",
        bare_env: false,
        value: "on|off",
        used_by: DAEMON,
        required: false,
        kind: Kind::Text,
        expected: "\"on\" or \"off\"",
    },
    Spec {
        key: "validating_webhook",
        bare_env: false,
        value: "off|warn|deny",
        used_by: DAEMON,
        required: false,
        kind: Kind::Text,
        expected: "\"off\", \"warn\" or \"deny\"",
    },
    Spec {
        key: "webhook_address",
        bare_env: false,
        value: "ADDRESS",
        used_by: DAEMON,
        required: false,
        kind: Kind::Text,
        expected: "an address to serve the webhooks on (HTTPS), such as 127.0.0.1:8443 or 0.0.0.0:8443",
    },
    Spec {
        key: "webhook_cert_file",
        bare_env: false,
        value: "PATH",
        used_by: DAEMON,
        required: false,
        kind: Kind::Text,
        expected: "the path of a readable PEM file holding the webhooks' certificate chain",
    },
    Spec {
        key: "webhook_key_file",
        bare_env: false,
        value: "PATH",
        used_by: DAEMON,
        required: false,
        kind: Kind::Text,
        expected: "the path of a readable PEM file holding the webhooks' private key",
    },
    Spec {
        key: "webhook_tls",
        bare_env: false,
        value: "files|self-signed",
        used_by: DAEMON,
        required: false,
        kind: Kind::Text,
        expected: "\"files\" (webhook_cert_file and webhook_key_file) or \"self-signed\" (a CA made at start, written into the webhook configurations)",
    },
];
