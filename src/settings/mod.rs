//! One typed [`Settings`], loaded once at start-up, in rising precedence, from built-in
//! defaults, a TOML file, environment variables and command-line flags (the `config` crate
//! does the layering).
//!
//! The original ConfigMap's three names (`BACKUP_REGISTRY`, `MAX_CONCURRENT_RECONCILES`,
//! `NAMESPACES_TO_IGNORE`) work unchanged through `envFrom`; every setting, those three
//! included, is also `IMAGE_CLONER_<KEY>` (both names may be set only to the same value). In
//! the TOML file a value's type must fit the setting. Every problem is
//! collected and reported together, each naming the setting, the bad value, where it came
//! from and what is expected, before the daemon touches a cluster or a registry.

pub mod cli;
mod describe;
mod discover;
pub mod docker_config;
pub mod environment;
mod layers;
mod log_filter;
mod parse;
mod services;
pub mod spec;
mod validate;

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use thiserror::Error;

use crate::image::naming::{BackupRegistry, Naming, Pin};
use crate::settings::docker_config::DockerConfig;
pub use crate::settings::spec::{ENV_PREFIX, SPECS, Spec, Task};
use crate::settings::validate::Validator;

/// The config file read when `--config` is not given; it is optional.
pub const DEFAULT_CONFIG_FILE: &str = "/etc/image-cloner/config.toml";
/// Always ignored, whatever `NAMESPACES_TO_IGNORE` says: the cluster's own machinery.
pub const ALWAYS_IGNORED_NAMESPACE: &str = "kube-system";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// The daemon's effective configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    pub backup_registry: BackupRegistry,
    pub max_concurrent_reconciles: usize,
    /// Always holds `kube-system`.
    pub namespaces_to_ignore: BTreeSet<String>,
    /// When not empty, the only namespaces acted in (the rest count as ignored).
    pub namespaces: BTreeSet<String>,
    pub naming: Naming,
    pub pin: Pin,
    /// `None` when no docker config exists at the default place: registries are then used
    /// anonymously.
    pub docker_config: Option<DockerConfig>,
    pub skopeo: PathBuf,
    pub copy_timeout: Duration,
    pub inspect_timeout: Duration,
    pub retry_times: u32,
    pub insecure_registries: Vec<String>,
    pub cert_dir: Option<PathBuf>,
    pub tmp_dir: Option<PathBuf>,
    /// An explicit kubeconfig; `None` infers ($KUBECONFIG, ~/.kube/config, in-cluster).
    pub kubeconfig: Option<PathBuf>,
    /// Where the cluster configuration comes from, for `check-config`: the `kubeconfig` path,
    /// or what `None` infers (`$KUBECONFIG = …`, `~/.kube/config = …`, in-cluster).
    pub kubeconfig_source: String,
    pub context: Option<String>,
    /// Also patch Pods that have no owner (only their images can change).
    pub bare_pods: bool,
    /// Patch workloads managed by Argo CD or Flux anyway (they will revert it unless git is
    /// updated too).
    pub patch_gitops_managed: bool,
    /// How long a stopping daemon lets running reconciles and copies finish.
    pub shutdown_grace: Duration,
    /// Where `/healthz`, `/readyz` and `/metrics` are served.
    pub metrics_address: std::net::SocketAddr,
    pub log_format: LogFormat,
    pub log_level: String,
    /// Which sources are copied: `source_include`, `source_exclude`, `copy_private_sources`.
    pub sources: crate::source_policy::SourcePolicy,
    /// Pulls of a registry's reported budget kept for the nodes.
    pub pull_budget_reserve: u64,
    /// The Secret provisioned in each namespace before its first patch, holding only the
    /// backup registry's entry of the docker config; `None`: none is provisioned.
    pub pull_secret: Option<String>,
    /// Patch only where the pods could pull the copy (`pull_check = on`, the default); off, the
    /// operator says the nodes have their own credentials for the backup registry.
    pub pull_check: bool,
    /// Where each setting's value came from, for `check-config`.
    pub origins: BTreeMap<&'static str, String>,
}

/// Everything wrong with the settings, one problem a line.
#[derive(Debug, Error)]
#[error("{}", .problems.join("\n"))]
pub struct SettingsError {
    pub problems: Vec<String>,
}

/// The inputs of [`load`], passed in rather than read from the process so that loading is
/// deterministic and testable.
#[derive(Debug, Default, Clone)]
pub struct Inputs {
    /// `--config PATH`: when given, the file must exist.
    pub config_file: Option<PathBuf>,
    /// The process environment (`std::env::vars_os()`): names and values need not be UTF-8.
    pub env: Vec<(OsString, OsString)>,
    /// Settings given as flags, by key.
    pub flags: Vec<(&'static str, String)>,
    /// The command: only the settings it uses are checked (`check-config`, the default: all).
    pub task: Task,
}

/// What loading produced besides the settings: things worth a warning, never fatal.
#[derive(Debug)]
pub struct Loaded {
    pub settings: Settings,
    pub warnings: Vec<String>,
}

/// Loads and validates the settings.
pub fn load(inputs: &Inputs) -> Result<Loaded, SettingsError> {
    let mut warnings = Vec::new();
    let (file_path, required) = match &inputs.config_file {
        Some(p) => (p.clone(), true),
        None => (PathBuf::from(DEFAULT_CONFIG_FILE), false),
    };
    let mut problems = Vec::new();
    let env = environment::read(&inputs.env, inputs.task, &mut problems);
    if required && !file_path.is_file() {
        problems.push(format!(
            "config file {}: not found or not a file (given with --config)",
            file_path.display()
        ));
        return Err(SettingsError { problems });
    }
    let built = layers::merge(
        &file_path,
        required,
        &env.text,
        &inputs.flags,
        inputs.task,
        &mut warnings,
        &mut problems,
    );
    let map = match built {
        Ok(m) => m,
        Err(e) => {
            problems.push(format!("config file {}: {e}", file_path.display()));
            return Err(SettingsError { problems });
        }
    };
    for key in map.keys() {
        if Spec::find(key).is_none() {
            let known: Vec<&str> = SPECS.iter().map(|s| s.key).collect();
            problems.push(format!(
                "unknown setting {key:?} in {}: known settings are {}",
                file_path.display(),
                known.join(", ")
            ));
        }
    }
    let mut v = Validator {
        map,
        env: &env,
        task: inputs.task,
        problems,
        origins: BTreeMap::new(),
    };
    let settings = v.settings(&mut warnings);
    match settings {
        Some(settings) if v.problems.is_empty() => Ok(Loaded { settings, warnings }),
        _ => Err(SettingsError {
            problems: v.problems,
        }),
    }
}

#[cfg(test)]
mod tests;
