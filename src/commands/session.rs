//! What the cluster commands (`run`, `plan`, `restore`) share: the connection, the kinds the
//! server serves, and the reconcile context built from the settings.

use std::collections::BTreeSet;
use std::sync::Arc;

use kube::Client;
use kube::runtime::events::Reporter;

use crate::cluster::client::{self, ClusterError};
use crate::leadership::identity;
use crate::ops::metrics::Metrics;
use crate::pullsecret::{PullOptions, PullSecrets};
use crate::reconcile::Context;
use crate::reconcile::api::WorkloadApi;
use crate::reconcile::context::NamespaceOptOuts;
use crate::reconcile::guard::{self, Unguarded, WriteGuard};
use crate::reconcile::plan::Policy;
use crate::reconcile::pull::PullGate;
use crate::reconcile::writer::Writer;
use crate::registry::mirror::{CopyObserver, Mirror};
use crate::settings::Settings;
use futures::future::BoxFuture;

use crate::cluster::list;
use crate::commands::error::CommandError;
use crate::workload::{self, Kind, KindVisitor, Workload, WorkloadKind, dispatch};

/// A connection to the cluster and the kinds it serves among those asked for.
pub struct Session {
    pub client: Client,
    /// Where reconciles' patches and Events go.
    pub writer: Writer,
    pub kinds: BTreeSet<Kind>,
    /// This process among the replicas: its Lease holder identity, in its user agent too.
    pub identity: String,
}

impl Session {
    /// Connects and finds the served kinds, warning once for each missing one.
    pub async fn connect(settings: &Settings, kinds: &[Kind]) -> Result<Session, ClusterError> {
        let identity = identity::identity();
        Session::connect_to(
            settings.kubeconfig.as_deref(),
            settings.context.as_deref(),
            &settings.kubeconfig_source,
            kinds,
            identity,
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
        identity: String,
    ) -> Result<Session, ClusterError> {
        let config = client::config(kubeconfig, context, &identity::user_agent(&identity)).await?;
        let server = config.cluster_url.to_string();
        let client = Client::try_from(config.clone())
            .map_err(|e| ClusterError::Client(e).at(&server, source))?;
        let writer =
            Writer::for_config(&config).map_err(|e| ClusterError::Client(e).at(&server, source))?;
        let (served, warnings) = client::served_kinds(&client, kinds)
            .await
            .map_err(|e| e.at(&server, source))?;
        for w in warnings {
            tracing::warn!("{w}");
        }
        Ok(Session {
            client,
            writer,
            kinds: served,
            identity,
        })
    }

    /// Planning's view of every workload of the served kinds (those left to their owner
    /// excepted), each namespace's opt-out applied: what `plan` and `status` read.
    pub async fn workload_views(&self) -> Result<Vec<Workload>, CommandError> {
        let opted_out = list::opted_out_namespaces(&self.client)
            .await
            .map_err(CommandError::list("namespaces"))?;
        let mut views = Vec::new();
        for kind in &self.kinds {
            let visitor = ListViews {
                client: &self.client,
                opted_out: &opted_out,
                views: &mut views,
            };
            dispatch(*kind, visitor).await?;
        }
        Ok(views)
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
        Arc::new(self.guarded_context(settings, namespaces, metrics, pull, Arc::new(Unguarded)))
    }

    /// The same, every write (patch, Event, copy) made only while `guard` allows it.
    pub fn guarded_context(
        &self,
        settings: &Settings,
        namespaces: Arc<dyn NamespaceOptOuts>,
        metrics: &Arc<Metrics>,
        pull: Arc<dyn PullGate>,
        guard: Arc<dyn WriteGuard>,
    ) -> Context {
        let mirror = settings.gated_mirror(
            Arc::clone(metrics) as Arc<dyn CopyObserver>,
            guard::copy_gate(Arc::clone(&guard)),
        );
        let instance = std::env::var("POD_NAME")
            .or_else(|_| std::env::var("HOSTNAME"))
            .ok();
        let reporter = Reporter {
            controller: "image-cloner".into(),
            instance,
        };
        let api = WorkloadApi::new(self.client.clone(), reporter, Arc::clone(metrics) as _)
            .writing_through(self.writer.clone())
            .guarded(guard);
        let own = client::own_namespace(std::env::var("POD_NAMESPACE").ok().as_deref());
        Context::new(
            mirror,
            policy(settings, own),
            api,
            namespaces,
            Arc::clone(metrics) as _,
        )
        .with_pull(pull)
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
        refs: Default::default(),
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

/// Lists one kind and appends planning's views of its workloads.
struct ListViews<'a> {
    client: &'a Client,
    opted_out: &'a BTreeSet<String>,
    views: &'a mut Vec<Workload>,
}

impl<'a> KindVisitor for ListViews<'a> {
    type Output = BoxFuture<'a, Result<(), CommandError>>;
    fn visit<K: WorkloadKind>(self) -> Self::Output {
        Box::pin(async move {
            let objects = list::list::<K>(self.client, None, None)
                .await
                .map_err(CommandError::list(format!("{}s", K::KIND)))?;
            for obj in objects.iter().filter(|o| !o.left_to_owner()) {
                let ns = kube::ResourceExt::namespace(obj).unwrap_or_default();
                self.views
                    .push(workload::view(obj, self.opted_out.contains(&ns)));
            }
            Ok(())
        })
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
        let Err(e) =
            Session::connect_to(Some(&path), None, &source, Kind::ALL, "test".to_owned()).await
        else {
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
