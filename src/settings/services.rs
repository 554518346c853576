//! The services the settings configure: what every skopeo run is given, the manifest HEAD
//! clients (with the docker config's credentials, and without any) and the mirror.

use crate::settings::Settings;

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

    /// Whether the backup registry is asked over verified TLS (it is not one of
    /// `insecure_registries`): then the system's CA certificates are needed from the first
    /// copy on, and worth reading ahead (`preload_system_roots`).
    pub fn backup_verifies_tls(&self) -> bool {
        !crate::registry::is_insecure(&self.insecure_registries, self.backup_registry.domain())
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

    /// A manifest HEAD client holding no credentials: asks what a node without a pull secret
    /// would be answered.
    pub fn anonymous_head(
        &self,
    ) -> Result<
        crate::registry::manifest_head::ManifestHead,
        crate::registry::manifest_head::TlsSetupError,
    > {
        crate::registry::manifest_head::ManifestHead::new(
            Vec::new(),
            Vec::new(),
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
        self.gated_mirror(observer, std::sync::Arc::new(crate::registry::mirror::Open))
    }

    /// The same, starting copies only when `gate` allows (leader election).
    pub fn gated_mirror(
        &self,
        observer: std::sync::Arc<dyn crate::registry::mirror::CopyObserver>,
        gate: std::sync::Arc<dyn crate::registry::mirror::CopyGate>,
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
        crate::registry::mirror::Mirror::gated(std::sync::Arc::new(client), options, observer, gate)
    }

    /// How the mirror names, pins and limits copies.
    pub fn mirror_options(&self) -> crate::registry::mirror::MirrorOptions {
        let mut options = crate::registry::mirror::MirrorOptions::new(
            self.backup_registry.clone(),
            self.naming,
            self.pin,
            self.max_concurrent_reconciles,
        );
        options.pull_budget_reserve = self.pull_budget_reserve;
        options
    }
}
