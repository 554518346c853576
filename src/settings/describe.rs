//! What `check-config` prints: the effective settings, where each came from, credentials left
//! out.

use std::fmt;
use std::path::PathBuf;

use crate::settings::Settings;

impl Settings {
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
