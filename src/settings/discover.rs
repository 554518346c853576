//! The settings whose default is found on the machine rather than written down: the docker
//! config (`$DOCKER_CONFIG`, `~/.docker/config.json`), skopeo (on `PATH`) and the cluster
//! configuration (`$KUBECONFIG`, `~/.kube/config`, the in-cluster service account).

use std::path::{Path, PathBuf};

use crate::settings::docker_config::DockerConfig;
use crate::settings::parse::{self, Bad};
use crate::settings::validate::Validator;

impl Validator<'_> {
    /// An explicit docker config must be readable and valid; the default one only if present.
    pub(super) fn docker_config(&mut self, warnings: &mut Vec<String>) -> Option<DockerConfig> {
        if !self.uses("docker_config") {
            return None;
        }
        if self.map.contains_key("docker_config") {
            return self.scalar("docker_config", None, |s| {
                DockerConfig::load(Path::new(s))
                    .map(Some)
                    .map_err(|e| Bad::because(e.to_string()))
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
            return None;
        };
        self.origins
            .insert("docker_config", format!("default, {how}"));
        match DockerConfig::load(&path) {
            Ok(c) => Some(c),
            Err(e) => {
                self.problems.push(format!(
                    "invalid setting docker_config (default, {how}): {e}"
                ));
                None
            }
        }
    }

    /// skopeo from the setting, else the first on PATH. The fallback `skopeo` is never run:
    /// either the command does not run skopeo (`restore`, `plan` without `--check-backup`: they
    /// start on a machine without it), or the setting was bad and the load fails.
    pub(super) fn skopeo(&mut self) -> PathBuf {
        let fallback = PathBuf::from("skopeo");
        if !self.uses("skopeo") {
            return fallback;
        }
        if self.map.contains_key("skopeo") {
            return self.scalar("skopeo", fallback, parse::existing_file);
        }
        self.origins
            .insert("skopeo", "default, found on PATH".to_owned());
        let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
        match which::which_in("skopeo", self.env.path.clone(), cwd) {
            Ok(p) => p,
            Err(_) => {
                self.problems.push(
                    "skopeo not found on PATH: install it (apt-get install skopeo) or set IMAGE_CLONER_SKOPEO to its path".to_owned(),
                );
                fallback
            }
        }
    }

    /// Where the cluster configuration comes from, as `check-config` shows it: the
    /// `kubeconfig` setting, else what kube infers, in its order ($KUBECONFIG, then
    /// ~/.kube/config, then the in-cluster service account).
    pub(super) fn kubeconfig_source(&mut self) -> String {
        if !self.uses("kubeconfig") {
            return format!("(not used by {})", self.task.command());
        }
        if let Some(path) = self
            .map
            .get("kubeconfig")
            .and_then(|v| v.clone().into_string().ok())
        {
            return path.trim().to_owned();
        }
        if let Some(paths) = self.env("KUBECONFIG") {
            return format!("$KUBECONFIG = {paths}");
        }
        if let Some(home) = self.env("HOME") {
            let path = Path::new(home).join(".kube/config");
            if path.is_file() {
                return format!("~/.kube/config = {}", path.display());
            }
        }
        if self.env("KUBERNETES_SERVICE_HOST").is_some() {
            return "in-cluster service account (KUBERNETES_SERVICE_HOST is set)".to_owned();
        }
        "(none found: no $KUBECONFIG, no ~/.kube/config, not in a pod)".to_owned()
    }
}
