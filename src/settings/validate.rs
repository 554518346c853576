//! Turns the merged raw values into a typed [`Settings`], recording one problem per bad
//! setting (named, with its value, origin and what is expected) instead of stopping at the
//! first.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use config::{Map, Value, ValueKind};

use crate::image::naming::{BackupRegistry, Naming, Pin};
use crate::image::reference::valid_domain;
use crate::settings::docker_config::DockerConfig;
use crate::settings::spec::Spec;
use crate::settings::{ALWAYS_IGNORED_NAMESPACE, LogFormat, Settings};

/// Turns raw values into typed ones, recording one problem per bad setting.
pub(super) struct Validator<'a> {
    pub(super) map: Map<String, Value>,
    pub(super) env: &'a [(String, String)],
    pub(super) problems: Vec<String>,
    pub(super) origins: BTreeMap<&'static str, String>,
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

    pub(super) fn settings(&mut self, warnings: &mut Vec<String>) -> Option<Settings> {
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
