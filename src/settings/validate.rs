//! Turns the merged raw values into a typed [`Settings`], recording one problem per bad
//! setting (named, with its value, origin and what is expected) instead of stopping at the
//! first. A bad value is replaced by the default so that every other setting is still checked;
//! any problem fails the load, so the default is never used.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use config::{Map, Value, ValueKind};

use crate::image::naming::{BackupRegistry, Naming, Pin};
use crate::image::reference::valid_domain;
use crate::settings::environment::Environment;
use crate::settings::parse::{self, Bad};
use crate::settings::spec::{Kind, Spec, Task};
use crate::settings::{ALWAYS_IGNORED_NAMESPACE, LogFormat, Settings, log_filter};

mod sources;

/// Turns raw values into typed ones, recording one problem per bad setting.
pub(super) struct Validator<'a> {
    pub(super) map: Map<String, Value>,
    pub(super) env: &'a Environment,
    /// Only the settings this command uses are read.
    pub(super) task: Task,
    pub(super) problems: Vec<String>,
    pub(super) origins: BTreeMap<&'static str, String>,
}

/// Stands in for `backup_registry` in a command that never reads it (`restore`), so that
/// restore starts without one. The `.invalid` top-level domain (RFC 2606) never resolves: a
/// code path that used it by mistake would fail to connect, never copy somewhere.
pub(super) const UNUSED_BACKUP_REGISTRY: &str = "backup-registry.invalid";

/// A setting's raw value, as text.
enum Given {
    Unset,
    /// Of a TOML type the setting cannot take (already reported).
    Bad,
    /// The text and where it came from.
    Text(String, String),
}

fn kind_of(key: &str) -> Kind {
    Spec::find(key).map_or(Kind::Text, |s| s.kind)
}

impl Validator<'_> {
    pub(super) fn env(&self, name: &str) -> Option<&str> {
        self.env
            .text
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

    /// False (and the origin says so) for a setting this command does not use: its value is
    /// not read, so nothing about it can stop the command.
    pub(super) fn uses(&mut self, key: &'static str) -> bool {
        let used = Spec::find(key).is_some_and(|s| s.used_by(self.task));
        if !used {
            self.origins
                .insert(key, format!("not used by {}", self.task.command()));
        }
        used
    }

    /// `shown` is the value as the user wrote it (a string quoted).
    fn report(&mut self, key: &'static str, shown: &str, origin: &str, detail: Option<String>) {
        let expected = Spec::find(key).map_or("", |s| s.expected);
        let detail = detail.map(|d| format!(" ({d})")).unwrap_or_default();
        self.problems.push(format!(
            "invalid setting {key} = {shown} (from {origin}): expected {expected}{detail}"
        ));
    }

    fn missing(&mut self, key: &'static str) {
        if self.env.broken.contains(key) {
            return; // its environment variable was not UTF-8, and that was reported
        }
        let spec = Spec::find(key);
        let (env, flag) = spec.map_or((String::new(), String::new()), |s| (s.env_name(), s.flag()));
        let bare = spec
            .and_then(Spec::bare_env_name)
            .map(|name| format!("{name}, "))
            .unwrap_or_default();
        self.problems.push(format!(
            "missing setting {key}: set {bare}{env}, `{key} = ...` in the config file, or {flag}; expected {}",
            spec.map_or("", |s| s.expected)
        ));
    }

    /// The value of `key` as text, when its TOML type is one the setting takes: a string, an
    /// integer for a number, a boolean for a boolean (the environment and flags give text).
    fn text(&mut self, key: &'static str) -> Given {
        if !self.uses(key) {
            return Given::Unset;
        }
        let Some((v, origin)) = self.raw(key) else {
            self.origins.insert(key, "default".to_owned());
            return Given::Unset;
        };
        let kind = kind_of(key);
        let text = match (&v.kind, kind) {
            (ValueKind::String(s), _) => Some(s.clone()),
            (
                ValueKind::I64(_) | ValueKind::I128(_) | ValueKind::U64(_) | ValueKind::U128(_),
                Kind::Number { .. },
            ) => Some(v.kind.to_string()),
            (ValueKind::Boolean(b), Kind::Bool) => Some(b.to_string()),
            _ => None,
        };
        match text {
            Some(t) => Given::Text(t, origin),
            None => {
                let detail = format!("{}, not {}", kind.toml_type(), parse::toml_type(&v));
                self.report(key, &parse::shown(&v), &origin, Some(detail));
                Given::Bad
            }
        }
    }

    /// A setting through `parse`, its value trimmed.
    fn parsed<T>(
        &mut self,
        key: &'static str,
        parse: impl Fn(&str) -> Result<T, Bad>,
    ) -> Parsed<T> {
        match self.text(key) {
            Given::Unset => Parsed::Unset,
            Given::Bad => Parsed::Bad,
            Given::Text(s, origin) => match parse(s.trim()) {
                Ok(t) => Parsed::Ok(t),
                Err(Bad(detail)) => {
                    self.report(key, &format!("{s:?}"), &origin, detail);
                    Parsed::Bad
                }
            },
        }
    }

    /// A setting without a default: missing is a problem.
    fn required<T>(
        &mut self,
        key: &'static str,
        parse: impl Fn(&str) -> Result<T, Bad>,
    ) -> Option<T> {
        match self.parsed(key, parse) {
            Parsed::Ok(t) => Some(t),
            Parsed::Bad => None,
            Parsed::Unset => {
                self.missing(key);
                None
            }
        }
    }

    /// A setting with a default, which also stands in for a bad value (reported).
    pub(super) fn scalar<T>(
        &mut self,
        key: &'static str,
        default: T,
        parse: impl Fn(&str) -> Result<T, Bad>,
    ) -> T {
        match self.parsed(key, parse) {
            Parsed::Ok(t) => t,
            Parsed::Bad | Parsed::Unset => default,
        }
    }

    fn number<T: TryFrom<u64>>(&mut self, key: &'static str, default: T) -> T {
        let (min, max) = match kind_of(key) {
            Kind::Number { min, max } => (min, max),
            _ => (0, u64::MAX),
        };
        self.scalar(key, default, |s| {
            parse::number(s, min, max).and_then(|n| T::try_from(n).map_err(|_| Bad(None)))
        })
    }

    fn duration(&mut self, key: &'static str, default: Duration) -> Duration {
        let (min, max) = match kind_of(key) {
            Kind::Duration { min, max } => (min, max),
            _ => (Duration::ZERO, Duration::MAX),
        };
        self.scalar(key, default, |s| parse::duration(s, min, max))
    }

    fn boolean(&mut self, key: &'static str, default: bool) -> bool {
        self.scalar(key, default, parse::boolean)
    }

    /// A list setting: a TOML array of strings, or a comma-separated string (all the
    /// environment and flags can give). Empty items are dropped.
    fn list(&mut self, key: &'static str, check: impl Fn(&str) -> bool) -> Vec<String> {
        if !self.uses(key) {
            return Vec::new();
        }
        let Some((v, origin)) = self.raw(key) else {
            self.origins.insert(key, "default".to_owned());
            return Vec::new();
        };
        let items: Vec<&str> = match &v.kind {
            ValueKind::String(s) => s.split(',').collect(),
            ValueKind::Array(a) => match a.iter().find(|x| !matches!(x.kind, ValueKind::String(_)))
            {
                None => a
                    .iter()
                    .filter_map(|x| match &x.kind {
                        ValueKind::String(s) => Some(s.as_str()),
                        _ => None,
                    })
                    .collect(),
                Some(odd) => {
                    let detail = format!(
                        "{}, not an array holding {}",
                        Kind::List.toml_type(),
                        parse::toml_type(odd)
                    );
                    self.report(key, &parse::shown(&v), &origin, Some(detail));
                    return Vec::new();
                }
            },
            _ => {
                let detail = format!("{}, not {}", Kind::List.toml_type(), parse::toml_type(&v));
                self.report(key, &parse::shown(&v), &origin, Some(detail));
                return Vec::new();
            }
        };
        let items: Vec<String> = items
            .iter()
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect();
        if let Some(bad) = items.iter().find(|s| !check(s)) {
            self.report(
                key,
                &format!("{bad:?}"),
                &origin,
                Some("this item is not valid".into()),
            );
        }
        items
    }

    pub(super) fn settings(&mut self, warnings: &mut Vec<String>) -> Option<Settings> {
        let backup_registry = if self.uses("backup_registry") {
            self.required("backup_registry", |s| {
                // Its bare "expected …" would repeat the setting's own.
                BackupRegistry::parse(s).map_err(|e| match e.starts_with("expected ") {
                    true => Bad(None),
                    false => Bad::because(e),
                })
            })
        } else {
            BackupRegistry::parse(UNUSED_BACKUP_REGISTRY).ok()
        };
        // Every field is evaluated in this order, so each one's problems are reported;
        // `backup_registry?` comes last, or a missing registry would hide the rest.
        let settings = Settings {
            max_concurrent_reconciles: self.number("max_concurrent_reconciles", 5),
            namespaces_to_ignore: self.namespaces_to_ignore(),
            namespaces: self
                .list("namespaces", parse::is_dns_label)
                .into_iter()
                .collect(),
            naming: self.scalar("naming", Naming::Flat, |s| {
                s.parse().map_err(|()| Bad(None))
            }),
            pin: self.scalar("pin", Pin::Digest, |s| s.parse().map_err(|()| Bad(None))),
            docker_config: self.docker_config(warnings),
            skopeo: self.skopeo(),
            copy_timeout: self.duration("copy_timeout", Duration::from_secs(30 * 60)),
            inspect_timeout: self.duration("inspect_timeout", Duration::from_secs(60)),
            retry_times: self.number("retry_times", 3),
            insecure_registries: self.list("insecure_registries", |s| {
                valid_domain(s) && !s.contains("://")
            }),
            cert_dir: self.scalar("cert_dir", None, |s| parse::existing_dir(s).map(Some)),
            tmp_dir: self.scalar("tmp_dir", None, |s| parse::existing_dir(s).map(Some)),
            kubeconfig: self.scalar("kubeconfig", None, |s| parse::existing_file(s).map(Some)),
            kubeconfig_source: self.kubeconfig_source(),
            context: self.scalar("context", None, |s| Ok(Some(s.to_owned()))),
            bare_pods: self.boolean("bare_pods", false),
            patch_gitops_managed: self.boolean("patch_gitops_managed", false),
            shutdown_grace: self.duration("shutdown_grace", Duration::from_secs(30)),
            metrics_address: self.scalar(
                "metrics_address",
                std::net::SocketAddr::from(([127, 0, 0, 1], 9090)),
                |s| s.parse().map_err(|_| Bad(None)),
            ),
            log_format: self.scalar("log_format", LogFormat::Text, |s| match s {
                "text" => Ok(LogFormat::Text),
                "json" => Ok(LogFormat::Json),
                _ => Err(Bad(None)),
            }),
            log_level: self.scalar("log_level", "info".to_owned(), |s| {
                log_filter::parse(s).map_err(Bad::because)
            }),
            sources: self.source_policy(),
            pull_budget_reserve: self.number("pull_budget_reserve", 5),
            pull_secret: self.scalar("pull_secret", None, parse::optional_dns_subdomain),
            pull_check: self.scalar("pull_check", true, |s| match s {
                "on" => Ok(true),
                "off" => Ok(false),
                _ => Err(Bad(None)),
            }),
            backup_registry: backup_registry?,
            origins: std::mem::take(&mut self.origins),
        };
        Some(settings)
    }

    fn namespaces_to_ignore(&mut self) -> BTreeSet<String> {
        let mut ignored: BTreeSet<String> = self
            .list("namespaces_to_ignore", parse::is_dns_label)
            .into_iter()
            .collect();
        ignored.insert(ALWAYS_IGNORED_NAMESPACE.to_owned());
        ignored
    }
}

/// A setting's value through its parser (reported when bad).
enum Parsed<T> {
    Unset,
    Bad,
    Ok(T),
}
