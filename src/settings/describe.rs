//! What `check-config` prints: the effective settings, where each came from, credentials left
//! out.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::settings::{SPECS, Settings};

/// Shown for a key of [`SPECS`] that [`Settings::describe`] does not know (a test holds there
/// is none).
pub(super) const UNKNOWN: &str = "(not described)";

fn path_or_none(p: &Option<PathBuf>) -> String {
    p.as_ref()
        .map_or_else(|| "(none)".to_owned(), |p| p.display().to_string())
}

fn duration(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

impl Settings {
    /// The effective settings as `(key, value, origin)` rows, in the order of [`SPECS`],
    /// credentials left out.
    pub fn describe(&self) -> Vec<(&'static str, String, String)> {
        SPECS
            .iter()
            .map(|spec| {
                let origin = self
                    .origins
                    .get(spec.key)
                    .cloned()
                    .unwrap_or_else(|| "default".to_owned());
                (spec.key, self.shown(spec.key), origin)
            })
            .collect()
    }

    /// One setting's effective value, as `check-config` shows it.
    fn shown(&self, key: &str) -> String {
        match key {
            "backup_registry" => self.backup_registry.to_string(),
            "max_concurrent_reconciles" => self.max_concurrent_reconciles.to_string(),
            "namespaces_to_ignore" => join(&self.namespaces_to_ignore),
            "namespaces" if self.namespaces.is_empty() => "(all)".to_owned(),
            "namespaces" => join(&self.namespaces),
            "naming" => self.naming.to_string(),
            "pin" => self.pin.to_string(),
            "docker_config" => self.docker_config_shown(),
            "skopeo" => self.skopeo.display().to_string(),
            "copy_timeout" => duration(self.copy_timeout),
            "inspect_timeout" => duration(self.inspect_timeout),
            "retry_times" => self.retry_times.to_string(),
            "insecure_registries" => self.insecure_registries.join(","),
            "cert_dir" => path_or_none(&self.cert_dir),
            "tmp_dir" => path_or_none(&self.tmp_dir),
            "kubeconfig" => self.kubeconfig_source.clone(),
            "context" => self
                .context
                .clone()
                .unwrap_or_else(|| "(current)".to_owned()),
            "bare_pods" => self.bare_pods.to_string(),
            "patch_gitops_managed" => self.patch_gitops_managed.to_string(),
            "shutdown_grace" => duration(self.shutdown_grace),
            "metrics_address" => self.metrics_address.to_string(),
            "log_format" => format!("{:?}", self.log_format).to_ascii_lowercase(),
            "log_level" => self.log_level.clone(),
            "source_include" | "source_exclude" | "copy_private_sources" => self.sources_shown(key),
            "pull_budget_reserve" => self.pull_budget_reserve.to_string(),
            "pull_secret" => self
                .pull_secret
                .clone()
                .unwrap_or_else(|| "(none: no pull secret is provisioned)".to_owned()),
            "pull_check" => if self.pull_check { "on" } else { "off" }.to_owned(),
            _ => UNKNOWN.to_owned(),
        }
    }

    /// The source-registry policy's settings.
    fn sources_shown(&self, key: &str) -> String {
        use crate::source_policy::PrivateSources;
        let globs = |g: &[crate::source_policy::Glob], empty: &str| match g {
            [] => empty.to_owned(),
            g => g
                .iter()
                .map(|g| g.to_string())
                .collect::<Vec<_>>()
                .join(","),
        };
        match (key, &self.sources.private) {
            ("source_include", _) => globs(&self.sources.filter.include, "(every source)"),
            ("source_exclude", _) => globs(&self.sources.filter.exclude, "(none)"),
            (_, PrivateSources::None) => "false".to_owned(),
            (_, PrivateSources::All) => "true".to_owned(),
            (_, PrivateSources::Registries(r)) => r.join(","),
        }
    }

    /// The docker config as its path and the registries it holds credentials for.
    fn docker_config_shown(&self) -> String {
        let Some(c) = &self.docker_config else {
            return "(none: anonymous access)".to_owned();
        };
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
}

fn join<'a>(items: impl IntoIterator<Item = &'a String>) -> String {
    items
        .into_iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(",")
}

impl fmt::Display for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (k, v, origin) in self.describe() {
            writeln!(f, "{k:<27} = {v:<40} # {origin}")?;
        }
        Ok(())
    }
}
