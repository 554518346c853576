//! What the cluster commands (`run`, `plan`, `restore`) share: the connection, the kinds the
//! server serves, and the reconcile context built from the settings.

use std::collections::BTreeSet;
use std::sync::Arc;

use kube::Client;
use kube::runtime::events::Reporter;

use crate::cluster::client::{self, ClusterError};
use crate::ops::metrics::Metrics;
use crate::pullsecret::{PullOptions, PullSecrets};
use crate::reconcile::Context;
use crate::reconcile::api::WorkloadApi;
use crate::reconcile::context::NamespaceOptOuts;
use crate::reconcile::plan::Policy;
use crate::reconcile::pull::PullGate;
use crate::registry::mirror::{CopyObserver, Mirror};
use crate::settings::Settings;
use crate::workload::Kind;

/// A connection to the cluster and the kinds it serves among those asked for.
pub struct Session {
    pub client: Client,
    pub kinds: BTreeSet<Kind>,
}

impl Session {
    /// Connects and finds the served kinds, warning once for each missing one.
    pub async fn connect(settings: &Settings, kinds: &[Kind]) -> Result<Session, ClusterError> {
        Session::connect_to(
            settings.kubeconfig.as_deref(),
            settings.context.as_deref(),
            &settings.kubeconfig_source,
            kinds,
        )
        .await
    }

    /// [`Session::connect`] with the cluster configuration given: a failure once the
    /// configuration is read names the API server and `source` (where it came from).
    pub async fn connect_to(
        kubeconfig: Option<&std::path::Path>,
        context: Option<&str>,
        source: &str,
        kinds: &[Kind],
    ) -> Result<Session, ClusterError> {
        let config = client::config(kubeconfig, context).await?;
        let server = config.cluster_url.to_string();
        let client =
            Client::try_from(config).map_err(|e| ClusterError::Client(e).at(&server, source))?;
        let (served, warnings) = client::served_kinds(&client, kinds)
            .await
            .map_err(|e| e.at(&server, source))?;
        for w in warnings {
            tracing::warn!("{w}");
        }
        Ok(Session {
            client,
            kinds: served,
        })
    }

    /// The pull gate (pull secrets and the anonymous pull check), reporting to `metrics`.
    pub fn pull_secrets(&self, settings: &Settings, metrics: &Arc<Metrics>) -> Arc<PullSecrets> {
        let anonymous = match settings.anonymous_head() {
            Ok(head) => Some(head),
            Err(e) => {
                tracing::warn!(error = %e, "cannot ask the backup registry for anonymous pulls");
                None
            }
        };
        Arc::new(PullSecrets::new(
            pull_options(settings),
            self.client.clone(),
            anonymous,
            Arc::clone(metrics) as _,
            Arc::clone(metrics) as _,
        ))
    }

    /// The reconcile context: the mirror, the policy, the API calls, the namespace opt-outs
    /// and the pull gate, all reporting to `metrics`.
    pub fn context(
        &self,
        settings: &Settings,
        namespaces: Arc<dyn NamespaceOptOuts>,
        metrics: &Arc<Metrics>,
        pull: Arc<dyn PullGate>,
    ) -> Arc<Context> {
        let mirror = mirror(settings, metrics);
        let instance = std::env::var("POD_NAME")
            .or_else(|_| std::env::var("HOSTNAME"))
            .ok();
        let reporter = Reporter {
            controller: "image-cloner".into(),
            instance,
        };
        let api = WorkloadApi::new(self.client.clone(), reporter, Arc::clone(metrics) as _);
        let own = client::own_namespace(std::env::var("POD_NAMESPACE").ok().as_deref());
        Arc::new(
            Context::new(
                mirror,
                policy(settings, own),
                api,
                namespaces,
                Arc::clone(metrics) as _,
            )
            .with_pull(pull),
        )
    }
}

/// The mirror the settings describe, its copies counted in `metrics`.
pub fn mirror(settings: &Settings, metrics: &Arc<Metrics>) -> Mirror {
    settings.mirror(Arc::clone(metrics) as Arc<dyn CopyObserver>)
}

/// The planning policy from the settings, with the daemon's own namespace ignored.
pub fn policy(settings: &Settings, own_namespace: Option<String>) -> Policy {
    let mut ignored = settings.namespaces_to_ignore.clone();
    ignored.extend(own_namespace);
    Policy {
        backup: settings.backup_registry.clone(),
        naming: settings.naming,
        ignored_namespaces: ignored,
        patch_gitops_managed: settings.patch_gitops_managed,
        only_namespaces: settings.namespaces.clone(),
        sources: settings.sources.clone(),
    }
}

/// What the settings say about how pods pull the copies.
pub fn pull_options(settings: &Settings) -> PullOptions {
    PullOptions {
        secret: settings.pull_secret.clone(),
        check: settings.pull_check,
        docker_config: settings.docker_config.as_ref().map(|c| c.path.clone()),
        backup: settings.backup_registry.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reconcile::error::with_causes;

    /// Found by make reliability: "asking the API server which apps/v1 resources it serves:
    /// ... Connection refused" did not say which server, nor which kubeconfig.
    #[tokio::test]
    async fn a_failure_to_connect_names_the_server_and_the_kubeconfig() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let path = dir.path().join("kubeconfig");
        let kubeconfig = "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:1\nusers:\n- name: u\n  user:\n    token: t\ncontexts:\n- name: x\n  context:\n    cluster: c\n    user: u\ncurrent-context: x\n";
        std::fs::write(&path, kubeconfig).expect("write the kubeconfig");
        let source = path.display().to_string();
        let Err(e) = Session::connect_to(Some(&path), None, &source, Kind::ALL).await else {
            panic!("nothing listens on 127.0.0.1:1");
        };
        let text = with_causes(&e);
        assert!(
            text.starts_with(&format!(
                "API server https://127.0.0.1:1/ (from {source}): "
            )),
            "{text}"
        );
        assert!(text.contains("Connection refused"), "{text}");
    }
}
