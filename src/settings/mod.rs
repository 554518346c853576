//! One typed [`Settings`], loaded once at start-up, in rising precedence, from built-in
//! defaults, a TOML file, environment variables and command-line flags (the `config` crate
//! does the layering).
//!
//! The original ConfigMap's three names (`BACKUP_REGISTRY`, `MAX_CONCURRENT_RECONCILES`,
//! `NAMESPACES_TO_IGNORE`) work unchanged through `envFrom`; every setting, those three
//! included, is also `IMAGE_CLONER_<KEY>`, which wins over the bare name. Every problem is
//! collected and reported together, each naming the setting, the bad value, where it came
//! from and what is expected, before the daemon touches a cluster or a registry.

pub mod cli;
pub mod docker_config;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use config::{Config, File, FileFormat, Map, Source, Value, ValueKind};
use thiserror::Error;

use crate::image::naming::{BackupRegistry, Naming, Pin};
use crate::image::reference::valid_domain;
use crate::settings::docker_config::DockerConfig;

/// The config file read when `--config` is not given; it is optional.
pub const DEFAULT_CONFIG_FILE: &str = "/etc/image-cloner/config.toml";
/// Prefix of every setting's environment variable.
pub const ENV_PREFIX: &str = "IMAGE_CLONER_";
/// Always ignored, whatever `NAMESPACES_TO_IGNORE` says: the cluster's own machinery.
pub const ALWAYS_IGNORED_NAMESPACE: &str = "kube-system";

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

    fn find(key: &str) -> Option<&'static Spec> {
        SPECS.iter().find(|s| s.key == key)
    }
}

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
    /// The process environment.
    pub env: Vec<(String, String)>,
    /// Settings given as flags, by key.
    pub flags: Vec<(&'static str, String)>,
}

/// What loading produced besides the settings: things worth a warning, never fatal.
#[derive(Debug)]
pub struct Loaded {
    pub settings: Settings,
    pub warnings: Vec<String>,
}

/// A layer built from key/value pairs, each value tagged with where it came from.
#[derive(Debug, Clone)]
struct Layer(Map<String, Value>);

impl Source for Layer {
    fn clone_into_box(&self) -> Box<dyn Source + Send + Sync> {
        Box::new(self.clone())
    }
    fn collect(&self) -> Result<Map<String, Value>, config::ConfigError> {
        Ok(self.0.clone())
    }
}

fn value(origin: String, v: &str) -> Value {
    Value::new(Some(&origin), ValueKind::String(v.to_owned()))
}

/// Service links: Kubernetes injects `<SERVICE>_SERVICE_HOST`, `<SERVICE>_PORT_…` into every
/// pod for each Service in the namespace, so a Service named `image-cloner` produces
/// `IMAGE_CLONER_PORT=tcp://…`. Those are not settings and must not be reported as typos.
fn is_service_link(rest: &str) -> bool {
    rest == "PORT" || rest.starts_with("PORT_") || rest.starts_with("SERVICE_")
}

fn env_layers(env: &[(String, String)], warnings: &mut Vec<String>) -> (Layer, Layer) {
    let mut bare = Map::new();
    let mut prefixed = Map::new();
    for (name, v) in env {
        if v.is_empty() {
            continue;
        }
        if let Some(spec) = SPECS.iter().find(|s| {
            s.bare_env && s.key.eq_ignore_ascii_case(name) && *name == name.to_ascii_uppercase()
        }) {
            bare.insert(
                spec.key.to_owned(),
                value(format!("environment variable {name}"), v),
            );
        } else if let Some(rest) = name.strip_prefix(ENV_PREFIX) {
            match Spec::find(&rest.to_ascii_lowercase()) {
                Some(spec) if rest == rest.to_ascii_uppercase() => {
                    prefixed.insert(spec.key.to_owned(), value(format!("environment variable {name}"), v));
                }
                _ if is_service_link(rest) => {}
                _ => warnings.push(format!("environment variable {name} is not a setting and is ignored (see `image-cloner check-config --help`)")),
            }
        }
    }
    (Layer(bare), Layer(prefixed))
}

/// Loads and validates the settings.
pub fn load(inputs: &Inputs) -> Result<Loaded, SettingsError> {
    let mut warnings = Vec::new();
    let (file_path, required) = match &inputs.config_file {
        Some(p) => (p.clone(), true),
        None => (PathBuf::from(DEFAULT_CONFIG_FILE), false),
    };
    let mut problems = Vec::new();
    if required && !file_path.is_file() {
        problems.push(format!(
            "config file {}: not found or not a file (given with --config)",
            file_path.display()
        ));
        return Err(SettingsError { problems });
    }
    let (bare, prefixed) = env_layers(&inputs.env, &mut warnings);
    let flags = Layer(
        inputs
            .flags
            .iter()
            .map(|(k, v)| {
                (
                    (*k).to_owned(),
                    value(format!("flag --{}", k.replace('_', "-")), v),
                )
            })
            .collect(),
    );
    let path_str = file_path.to_string_lossy().into_owned();
    let built = Config::builder()
        .add_source(File::new(&path_str, FileFormat::Toml).required(required))
        .add_source(bare)
        .add_source(prefixed)
        .add_source(flags)
        .build()
        .and_then(|c| c.collect());
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
        env: &inputs.env,
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

/// Turns raw values into typed ones, recording one problem per bad setting.
struct Validator<'a> {
    map: Map<String, Value>,
    env: &'a [(String, String)],
    problems: Vec<String>,
    origins: BTreeMap<&'static str, String>,
}

/// Stands for a value a setting cannot use; [`Validator`] turns it into a message.
struct Bad(Option<String>);

impl Validator<'_> {
    fn env(&self, name: &str) -> Option<&str> {
        self.env
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }

    fn raw(&mut self, key: &'static str) -> Option<(Value, String)> {
        let v = self.map.get(key)?.clone();
        let origin = v
            .origin()
            .map_or_else(|| "config file".to_owned(), |o| o.to_owned());
        self.origins.insert(key, origin.clone());
        Some((v, origin))
    }

    fn report(&mut self, key: &'static str, shown: &str, origin: &str, detail: Option<String>) {
        let expected = Spec::find(key).map_or("", |s| s.expected);
        let detail = detail.map(|d| format!(" ({d})")).unwrap_or_default();
        self.problems.push(format!(
            "invalid setting {key} = {shown:?} (from {origin}): expected {expected}{detail}"
        ));
    }

    /// A scalar setting through `parse`, or `default` when unset.
    fn scalar<T>(
        &mut self,
        key: &'static str,
        default: Option<T>,
        parse: impl Fn(&str) -> Result<T, Bad>,
    ) -> Option<T> {
        let Some((v, origin)) = self.raw(key) else {
            self.origins.insert(key, "default".to_owned());
            if default.is_none() {
                let spec = Spec::find(key);
                let (env, flag) =
                    spec.map_or((String::new(), String::new()), |s| (s.env_name(), s.flag()));
                let bare = spec
                    .filter(|s| s.bare_env)
                    .map(|s| format!("{}, ", s.key.to_ascii_uppercase()))
                    .unwrap_or_default();
                self.problems.push(format!(
                    "missing setting {key}: set {bare}{env}, `{key} = ...` in the config file, or {flag}; expected {}",
                    spec.map_or("", |s| s.expected)
                ));
            }
            return default;
        };
        let shown = match v.clone().into_string() {
            Ok(s) => s,
            Err(_) => {
                self.report(
                    key,
                    &format!("{v}"),
                    &origin,
                    Some("a single value, not a list or table".into()),
                );
                return None;
            }
        };
        match parse(shown.trim()) {
            Ok(t) => Some(t),
            Err(Bad(detail)) => {
                self.report(key, &shown, &origin, detail);
                None
            }
        }
    }

    /// A list setting: a TOML array, or a comma-separated string from the environment or a flag.
    fn list(&mut self, key: &'static str, check: impl Fn(&str) -> bool) -> Vec<String> {
        let Some((v, origin)) = self.raw(key) else {
            self.origins.insert(key, "default".to_owned());
            return Vec::new();
        };
        let items: Vec<String> = match &v.kind {
            ValueKind::Array(a) => a
                .iter()
                .map(|x| x.clone().into_string().unwrap_or_else(|_| format!("{x}")))
                .collect(),
            _ => v
                .clone()
                .into_string()
                .unwrap_or_default()
                .split(',')
                .map(str::to_owned)
                .collect(),
        };
        let items: Vec<String> = items
            .iter()
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect();
        if let Some(bad) = items.iter().find(|s| !check(s)) {
            self.report(key, bad, &origin, Some("this item is not valid".into()));
        }
        items
    }

    fn settings(&mut self, warnings: &mut Vec<String>) -> Option<Settings> {
        let backup_registry = self.scalar("backup_registry", None, |s| {
            BackupRegistry::parse(s).map_err(|e| Bad(Some(e)))
        });
        let max_concurrent_reconciles = self.scalar("max_concurrent_reconciles", Some(5), |s| {
            s.parse::<usize>()
                .ok()
                .filter(|n| (1..=100).contains(n))
                .ok_or(Bad(None))
        });
        let mut namespaces_to_ignore: BTreeSet<String> = self
            .list("namespaces_to_ignore", is_dns_label)
            .into_iter()
            .collect();
        namespaces_to_ignore.insert(ALWAYS_IGNORED_NAMESPACE.to_owned());
        let namespaces: BTreeSet<String> =
            self.list("namespaces", is_dns_label).into_iter().collect();
        let naming = self.scalar("naming", Some(Naming::Flat), |s| {
            s.parse().map_err(|()| Bad(None))
        });
        let pin = self.scalar("pin", Some(Pin::Digest), |s| {
            s.parse().map_err(|()| Bad(None))
        });
        let docker_config = self.docker_config(warnings);
        let skopeo = self.skopeo();
        let copy_timeout = self.scalar(
            "copy_timeout",
            Some(Duration::from_secs(30 * 60)),
            parse_duration,
        );
        let inspect_timeout = self.scalar(
            "inspect_timeout",
            Some(Duration::from_secs(60)),
            parse_duration,
        );
        let retry_times = self.scalar("retry_times", Some(3), |s| {
            s.parse::<u32>().ok().filter(|n| *n <= 10).ok_or(Bad(None))
        });
        let insecure_registries = self.list("insecure_registries", |s| {
            valid_domain(s) && !s.contains("://")
        });
        let cert_dir = self.scalar("cert_dir", Some(None), |s| existing_dir(s).map(Some));
        let tmp_dir = self.scalar("tmp_dir", Some(None), |s| existing_dir(s).map(Some));
        let kubeconfig = self.scalar("kubeconfig", Some(None), |s| {
            let p = PathBuf::from(s);
            if p.is_file() {
                Ok(Some(p))
            } else {
                Err(Bad(Some("no such file".into())))
            }
        });
        let context = self.scalar("context", Some(None), |s| Ok(Some(s.to_owned())));
        let bare_pods = self.scalar("bare_pods", Some(false), parse_bool);
        let patch_gitops_managed = self.scalar("patch_gitops_managed", Some(false), parse_bool);
        let shutdown_grace = self.scalar(
            "shutdown_grace",
            Some(Duration::from_secs(30)),
            parse_duration,
        );
        let metrics_address = self.scalar(
            "metrics_address",
            Some(std::net::SocketAddr::from(([127, 0, 0, 1], 9090))),
            |s| s.parse().map_err(|_| Bad(None)),
        );
        let log_format = self.scalar("log_format", Some(LogFormat::Text), |s| match s {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            _ => Err(Bad(None)),
        });
        let log_level = self.scalar("log_level", Some("info".to_owned()), |s| {
            tracing_subscriber::EnvFilter::try_new(s)
                .map(|_| s.to_owned())
                .map_err(|e| Bad(Some(e.to_string())))
        });
        Some(Settings {
            backup_registry: backup_registry?,
            max_concurrent_reconciles: max_concurrent_reconciles?,
            namespaces_to_ignore,
            namespaces,
            naming: naming?,
            pin: pin?,
            docker_config: docker_config?,
            skopeo: skopeo?,
            copy_timeout: copy_timeout?,
            inspect_timeout: inspect_timeout?,
            retry_times: retry_times?,
            insecure_registries,
            cert_dir: cert_dir?,
            tmp_dir: tmp_dir?,
            kubeconfig: kubeconfig?,
            context: context?,
            bare_pods: bare_pods?,
            patch_gitops_managed: patch_gitops_managed?,
            shutdown_grace: shutdown_grace?,
            metrics_address: metrics_address?,
            log_format: log_format?,
            log_level: log_level?,
            origins: std::mem::take(&mut self.origins),
        })
    }

    /// An explicit docker config must be readable and valid; the default one only if present.
    fn docker_config(&mut self, warnings: &mut Vec<String>) -> Option<Option<DockerConfig>> {
        if self.map.contains_key("docker_config") {
            return self.scalar("docker_config", None, |s| {
                DockerConfig::load(Path::new(s))
                    .map(Some)
                    .map_err(|e| Bad(Some(e.to_string())))
            });
        }
        let default = match (self.env("DOCKER_CONFIG"), self.env("HOME")) {
            (Some(dir), _) => Some((
                PathBuf::from(dir).join("config.json"),
                "$DOCKER_CONFIG/config.json",
            )),
            (None, Some(home)) => Some((
                PathBuf::from(home).join(".docker/config.json"),
                "~/.docker/config.json",
            )),
            (None, None) => None,
        };
        let Some((path, how)) = default.filter(|(p, _)| p.exists()) else {
            self.origins.insert("docker_config", "default".to_owned());
            warnings.push(
                "no docker config found ($DOCKER_CONFIG/config.json, ~/.docker/config.json): registries are accessed anonymously; set IMAGE_CLONER_DOCKER_CONFIG".to_owned(),
            );
            return Some(None);
        };
        self.origins
            .insert("docker_config", format!("default, {how}"));
        match DockerConfig::load(&path) {
            Ok(c) => Some(Some(c)),
            Err(e) => {
                self.problems.push(format!(
                    "invalid setting docker_config (default, {how}): {e}"
                ));
                None
            }
        }
    }

    /// skopeo from the setting, else the first on PATH.
    fn skopeo(&mut self) -> Option<PathBuf> {
        if self.map.contains_key("skopeo") {
            return self.scalar("skopeo", None, |s| {
                let p = PathBuf::from(s);
                if p.is_file() {
                    Ok(p)
                } else {
                    Err(Bad(Some("no such file".into())))
                }
            });
        }
        self.origins
            .insert("skopeo", "default, found on PATH".to_owned());
        let path = self.env("PATH").map(str::to_owned);
        let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
        match which::which_in("skopeo", path, cwd) {
            Ok(p) => Some(p),
            Err(_) => {
                self.problems.push(
                    "skopeo not found on PATH: install it (apt-get install skopeo) or set IMAGE_CLONER_SKOPEO to its path".to_owned(),
                );
                None
            }
        }
    }
}

fn parse_bool(s: &str) -> Result<bool, Bad> {
    match s.to_ascii_lowercase().as_str() {
        "true" | "yes" | "1" | "on" => Ok(true),
        "false" | "no" | "0" | "off" => Ok(false),
        _ => Err(Bad(None)),
    }
}

fn parse_duration(s: &str) -> Result<Duration, Bad> {
    match humantime::parse_duration(s) {
        Ok(d) if !d.is_zero() => Ok(d),
        Ok(_) => Err(Bad(Some("must be more than zero".into()))),
        Err(e) => Err(Bad(Some(e.to_string()))),
    }
}

fn existing_dir(s: &str) -> Result<PathBuf, Bad> {
    let p = PathBuf::from(s);
    if p.is_dir() {
        Ok(p)
    } else {
        Err(Bad(Some("no such directory".into())))
    }
}

/// A namespace name: an RFC 1123 label.
fn is_dns_label(s: &str) -> bool {
    let b = s.as_bytes();
    (1..=63).contains(&b.len())
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

impl Settings {
    /// What every skopeo run is given.
    pub fn skopeo_options(&self) -> crate::registry::skopeo::SkopeoOptions {
        crate::registry::skopeo::SkopeoOptions {
            program: self.skopeo.clone(),
            authfile: self.docker_config.as_ref().map(|c| c.path.clone()),
            insecure_registries: self.insecure_registries.clone(),
            cert_dir: self.cert_dir.clone(),
            tmp_dir: self.tmp_dir.clone(),
            retry_times: self.retry_times,
            copy_timeout: self.copy_timeout,
            inspect_timeout: self.inspect_timeout,
        }
    }

    /// The manifest HEAD client for the backup registry, with the docker config's credentials.
    pub fn manifest_head(
        &self,
    ) -> Result<
        crate::registry::manifest_head::ManifestHead,
        crate::registry::manifest_head::TlsSetupError,
    > {
        let (basic, deferred) = match &self.docker_config {
            Some(c) => crate::settings::docker_config::credentials_for_head(&c.path),
            None => (Vec::new(), Vec::new()),
        };
        crate::registry::manifest_head::ManifestHead::new(
            basic,
            deferred,
            self.insecure_registries.clone(),
            self.cert_dir.as_deref(),
            self.inspect_timeout,
        )
    }

    /// The mirror service these settings describe, reporting its copies to `observer`.
    pub fn mirror(
        &self,
        observer: std::sync::Arc<dyn crate::registry::mirror::CopyObserver>,
    ) -> crate::registry::mirror::Mirror {
        let head = match self.manifest_head() {
            Ok(head) => Some(head),
            Err(e) => {
                tracing::warn!(error = %e, "asking the backup registry with skopeo only");
                None
            }
        };
        let options = self.mirror_options();
        let client = crate::registry::client::Registries::new(
            crate::registry::skopeo::Skopeo::new(self.skopeo_options()),
            head,
            options.max_concurrent_checks(),
        );
        crate::registry::mirror::Mirror::new(std::sync::Arc::new(client), options, observer)
    }

    /// How the mirror names, pins and limits copies.
    pub fn mirror_options(&self) -> crate::registry::mirror::MirrorOptions {
        crate::registry::mirror::MirrorOptions::new(
            self.backup_registry.clone(),
            self.naming,
            self.pin,
            self.max_concurrent_reconciles,
        )
    }

    /// The effective settings as `(key, value, origin)` rows, credentials left out: the docker
    /// config is shown as its path and the registries it holds credentials for.
    pub fn describe(&self) -> Vec<(&'static str, String, String)> {
        let docker_config = match &self.docker_config {
            None => "(none: anonymous access)".to_owned(),
            Some(c) => {
                let mut who: Vec<String> = c.registries.clone();
                who.extend(c.helpers.iter().cloned());
                let who = if who.is_empty() {
                    "none".to_owned()
                } else {
                    who.join(", ")
                };
                format!(
                    "{} (credentials for: {who}; secrets redacted)",
                    c.path.display()
                )
            }
        };
        let opt = |p: &Option<PathBuf>| {
            p.as_ref()
                .map_or_else(|| "(none)".to_owned(), |p| p.display().to_string())
        };
        let rows = [
            ("backup_registry", self.backup_registry.to_string()),
            (
                "max_concurrent_reconciles",
                self.max_concurrent_reconciles.to_string(),
            ),
            (
                "namespaces_to_ignore",
                self.namespaces_to_ignore
                    .iter()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(","),
            ),
            (
                "namespaces",
                if self.namespaces.is_empty() {
                    "(all)".to_owned()
                } else {
                    self.namespaces
                        .iter()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(",")
                },
            ),
            ("naming", self.naming.to_string()),
            ("pin", self.pin.to_string()),
            ("docker_config", docker_config),
            ("skopeo", self.skopeo.display().to_string()),
            (
                "copy_timeout",
                humantime::format_duration(self.copy_timeout).to_string(),
            ),
            (
                "inspect_timeout",
                humantime::format_duration(self.inspect_timeout).to_string(),
            ),
            ("retry_times", self.retry_times.to_string()),
            ("insecure_registries", self.insecure_registries.join(",")),
            ("cert_dir", opt(&self.cert_dir)),
            ("tmp_dir", opt(&self.tmp_dir)),
            ("kubeconfig", opt(&self.kubeconfig)),
            (
                "context",
                self.context
                    .clone()
                    .unwrap_or_else(|| "(current)".to_owned()),
            ),
            ("bare_pods", self.bare_pods.to_string()),
            (
                "patch_gitops_managed",
                self.patch_gitops_managed.to_string(),
            ),
            (
                "shutdown_grace",
                humantime::format_duration(self.shutdown_grace).to_string(),
            ),
            ("metrics_address", self.metrics_address.to_string()),
            (
                "log_format",
                format!("{:?}", self.log_format).to_ascii_lowercase(),
            ),
            ("log_level", self.log_level.clone()),
        ];
        rows.into_iter()
            .map(|(k, v)| {
                (
                    k,
                    v,
                    self.origins
                        .get(k)
                        .cloned()
                        .unwrap_or_else(|| "default".to_owned()),
                )
            })
            .collect()
    }
}

impl fmt::Display for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (k, v, origin) in self.describe() {
            writeln!(f, "{k:<27} = {v:<40} # {origin}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        // A PATH where skopeo exists, so that tests do not depend on the machine.
        let dir = fake_skopeo_dir();
        let mut v: Vec<(String, String)> = vec![
            ("PATH".into(), dir),
            ("HOME".into(), "/nonexistent-home".into()),
        ];
        v.extend(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        v
    }

    fn fake_skopeo_dir() -> String {
        use std::os::unix::fs::PermissionsExt;
        use std::sync::OnceLock;
        static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
        let dir = DIR.get_or_init(|| {
            let d = tempfile::tempdir().unwrap();
            let p = d.path().join("skopeo");
            std::fs::write(&p, "").unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
            d
        });
        dir.path().display().to_string()
    }

    fn inputs(pairs: &[(&str, &str)]) -> Inputs {
        Inputs {
            config_file: None,
            env: env(pairs),
            flags: vec![],
        }
    }

    fn problems(i: &Inputs) -> Vec<String> {
        load(i).unwrap_err().problems
    }

    #[test]
    fn defaults_with_only_the_required_setting() {
        let s = load(&inputs(&[("BACKUP_REGISTRY", "quay.io/cargaona")]))
            .unwrap()
            .settings;
        assert_eq!(s.backup_registry.to_string(), "quay.io/cargaona");
        assert_eq!(s.max_concurrent_reconciles, 5);
        assert_eq!(
            s.namespaces_to_ignore.iter().collect::<Vec<_>>(),
            ["kube-system"]
        );
        assert_eq!(s.naming, Naming::Flat);
        assert_eq!(s.pin, Pin::Digest);
        assert!(s.docker_config.is_none());
        assert_eq!(s.copy_timeout, Duration::from_secs(1800));
        assert_eq!(s.log_format, LogFormat::Text);
        assert_eq!(
            s.origins["backup_registry"],
            "environment variable BACKUP_REGISTRY"
        );
    }

    #[test]
    fn original_configmap_names_work_unchanged() {
        let s = load(&inputs(&[
            ("BACKUP_REGISTRY", "quay.io/cargaona"),
            ("MAX_CONCURRENT_RECONCILES", "9"),
            ("NAMESPACES_TO_IGNORE", "monitoring, ci ,,"),
        ]))
        .unwrap()
        .settings;
        assert_eq!(s.max_concurrent_reconciles, 9);
        assert_eq!(
            s.namespaces_to_ignore.iter().collect::<Vec<_>>(),
            ["ci", "kube-system", "monitoring"]
        );
    }

    #[test]
    fn precedence_defaults_file_env_flags() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("config.toml");
        let mut f = std::fs::File::create(&file).unwrap();
        writeln!(f, "backup_registry = \"file.io/b\"\nnaming = \"nested\"\npin = \"tag\"\nretry_times = 7\nnamespaces_to_ignore = [\"a\", \"b\"]").unwrap();
        let mut i = inputs(&[
            ("IMAGE_CLONER_PIN", "digest"),
            ("BACKUP_REGISTRY", "bare.io/b"),
            ("IMAGE_CLONER_RETRY_TIMES", "2"),
        ]);
        i.config_file = Some(file);
        i.flags = vec![("retry_times", "1".into())];
        let s = load(&i).unwrap().settings;
        assert_eq!(s.naming, Naming::Nested, "file over default");
        assert_eq!(s.pin, Pin::Digest, "environment over file");
        assert_eq!(
            s.backup_registry.to_string(),
            "bare.io/b",
            "bare environment name over file"
        );
        assert_eq!(s.retry_times, 1, "flag over environment");
        assert_eq!(s.namespaces_to_ignore.len(), 3, "TOML arrays are lists");
        assert!(
            s.origins["naming"].contains("config.toml"),
            "{:?}",
            s.origins
        );
        assert_eq!(s.origins["retry_times"], "flag --retry-times");
    }

    #[test]
    fn prefixed_name_wins_over_bare_name() {
        let s = load(&inputs(&[
            ("BACKUP_REGISTRY", "bare.io/b"),
            ("IMAGE_CLONER_BACKUP_REGISTRY", "prefixed.io/b"),
        ]))
        .unwrap()
        .settings;
        assert_eq!(s.backup_registry.to_string(), "prefixed.io/b");
    }

    #[test]
    fn every_invalid_setting_is_named_with_value_origin_and_expectation() {
        let p = problems(&inputs(&[
            ("MAX_CONCURRENT_RECONCILES", "lots"),
            ("IMAGE_CLONER_NAMING", "fat"),
            ("IMAGE_CLONER_COPY_TIMEOUT", "soon"),
            ("IMAGE_CLONER_INSECURE_REGISTRIES", "ok.io,http://bad.io"),
            ("IMAGE_CLONER_LOG_FORMAT", "xml"),
            ("NAMESPACES_TO_IGNORE", "Bad_NS"),
            ("IMAGE_CLONER_BARE_PODS", "maybe"),
            ("IMAGE_CLONER_METRICS_ADDRESS", "localhost"),
            ("IMAGE_CLONER_KUBECONFIG", "/nonexistent/kubeconfig"),
        ]));
        let all = p.join("\n");
        assert!(
            all.contains(
                "missing setting backup_registry: set BACKUP_REGISTRY, IMAGE_CLONER_BACKUP_REGISTRY"
            ),
            "{all}"
        );
        assert!(all.contains(r#"invalid setting max_concurrent_reconciles = "lots" (from environment variable MAX_CONCURRENT_RECONCILES): expected a whole number from 1 to 100"#), "{all}");
        assert!(all.contains(r#"invalid setting naming = "fat" (from environment variable IMAGE_CLONER_NAMING): expected "flat" or "nested""#), "{all}");
        assert!(all.contains(r#"copy_timeout = "soon""#), "{all}");
        assert!(
            all.contains(r#"insecure_registries = "http://bad.io""#),
            "{all}"
        );
        assert!(all.contains(r#"log_format = "xml""#), "{all}");
        assert!(all.contains(r#"namespaces_to_ignore = "Bad_NS""#), "{all}");
        assert!(all.contains(r#"bare_pods = "maybe""#), "{all}");
        assert!(all.contains(r#"metrics_address = "localhost""#), "{all}");
        assert!(
            all.contains(r#"kubeconfig = "/nonexistent/kubeconfig""#),
            "{all}"
        );
        assert_eq!(p.len(), 10, "{all}");
    }

    #[test]
    fn typos_in_the_file_are_errors_and_in_the_environment_warnings() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(&file, "backup_registry = \"q.io/x\"\nnameing = \"flat\"\n").unwrap();
        let mut i = inputs(&[]);
        i.config_file = Some(file);
        let all = problems(&i).join("\n");
        assert!(all.contains("unknown setting \"nameing\""), "{all}");

        let loaded = load(&inputs(&[
            ("BACKUP_REGISTRY", "q.io/x"),
            ("IMAGE_CLONER_NAMEING", "flat"),
            ("IMAGE_CLONER_SERVICE_HOST", "10.0.0.1"),
            ("IMAGE_CLONER_PORT", "tcp://10.0.0.1:9090"),
            ("IMAGE_CLONER_PORT_9090_TCP_ADDR", "10.0.0.1"),
        ]))
        .unwrap();
        assert_eq!(
            loaded
                .warnings
                .iter()
                .filter(|w| w.contains("IMAGE_CLONER_NAMEING"))
                .count(),
            1
        );
        assert!(
            !loaded
                .warnings
                .iter()
                .any(|w| w.contains("SERVICE_HOST") || w.contains("_PORT")),
            "{:?}",
            loaded.warnings
        );
    }

    #[test]
    fn missing_explicit_config_file_is_an_error() {
        let mut i = inputs(&[("BACKUP_REGISTRY", "q.io/x")]);
        i.config_file = Some("/nonexistent/config.toml".into());
        assert!(problems(&i)[0].contains("/nonexistent/config.toml"));
    }

    #[test]
    fn broken_toml_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(&file, "backup_registry = \n").unwrap();
        let mut i = inputs(&[]);
        i.config_file = Some(file.clone());
        assert!(problems(&i)[0].contains(&file.display().to_string()));
    }

    #[test]
    fn docker_config_explicit_must_exist_default_may_not() {
        let p = problems(&inputs(&[
            ("BACKUP_REGISTRY", "q.io/x"),
            ("IMAGE_CLONER_DOCKER_CONFIG", "/nonexistent/c.json"),
        ]));
        assert!(
            p[0].contains("docker_config") && p[0].contains("/nonexistent/c.json"),
            "{p:?}"
        );

        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("config.json"),
            r#"{"auths":{"q.io":{"auth":"dTpzZWNyZXQ="}}}"#,
        )
        .unwrap();
        let d = dir.path().display().to_string();
        let s = load(&inputs(&[
            ("BACKUP_REGISTRY", "q.io/x"),
            ("DOCKER_CONFIG", &d),
        ]))
        .unwrap()
        .settings;
        assert_eq!(s.docker_config.as_ref().unwrap().registries, ["q.io"]);
        let shown = s.to_string();
        assert!(
            shown.contains("credentials for: q.io; secrets redacted"),
            "{shown}"
        );
        assert!(
            !shown.contains("dTpzZWNyZXQ=") && !shown.contains("secret\n"),
            "{shown}"
        );

        std::fs::write(dir.path().join("config.json"), "{").unwrap();
        let p = problems(&inputs(&[
            ("BACKUP_REGISTRY", "q.io/x"),
            ("DOCKER_CONFIG", &d),
        ]));
        assert!(
            p[0].contains("config.json") && p[0].contains("not valid JSON"),
            "{p:?}"
        );
    }

    #[test]
    fn skopeo_missing_is_named() {
        let mut i = inputs(&[("BACKUP_REGISTRY", "q.io/x")]);
        i.env.retain(|(k, _)| k != "PATH");
        i.env.push(("PATH".into(), "/nonexistent".into()));
        assert!(problems(&i)[0].contains("skopeo not found on PATH"));
        let p = problems(&inputs(&[
            ("BACKUP_REGISTRY", "q.io/x"),
            ("IMAGE_CLONER_SKOPEO", "/no/skopeo"),
        ]));
        assert!(p[0].contains(r#"skopeo = "/no/skopeo""#), "{p:?}");
    }

    #[test]
    fn describe_lists_every_setting() {
        let s = load(&inputs(&[("BACKUP_REGISTRY", "q.io/x")]))
            .unwrap()
            .settings;
        let keys: Vec<&str> = s.describe().iter().map(|r| r.0).collect();
        let specs: Vec<&str> = SPECS.iter().map(|s| s.key).collect();
        assert_eq!(keys, specs);
    }
}
