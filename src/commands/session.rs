//! What the cluster commands (`run`, `plan`, `restore`) share: the connection, the kinds the
//! server serves, and the reconcile context built from the settings.

use std::collections::BTreeSet;
use std::sync::Arc;

use kube::Client;
use kube::runtime::events::{Recorder, Reporter};

use crate::cluster::client::{self, ClusterError};
use crate::leadership::identity;
use crate::ops::metrics::Metrics;
use crate::reconcile::Context;
use crate::reconcile::api::WorkloadApi;
use crate::reconcile::context::NamespaceOptOuts;
use crate::reconcile::guard::{self, Unguarded, WriteGuard};
use crate::reconcile::plan::Policy;
use crate::registry::mirror::{CopyObserver, Mirror};
use crate::settings::Settings;
use crate::workload::Kind;

/// A connection to the cluster and the kinds it serves among those asked for.
pub struct Session {
    pub client: Client,
    pub kinds: BTreeSet<Kind>,
    /// This process among the replicas: its Lease holder identity, in its user agent too.
    pub identity: String,
}

impl Session {
    /// Connects and finds the served kinds, warning once for each missing one.
    pub async fn connect(settings: &Settings, kinds: &[Kind]) -> Result<Session, ClusterError> {
        let identity = identity::identity();
        let client = client::client(
            settings.kubeconfig.as_deref(),
            settings.context.as_deref(),
            &identity::user_agent(&identity),
        )
        .await?;
        let (served, warnings) = client::served_kinds(&client, kinds).await?;
        for w in warnings {
            tracing::warn!("{w}");
        }
        Ok(Session {
            client,
            kinds: served,
            identity,
        })
    }

    /// The reconcile context: the mirror, the policy, the API calls and the namespace
    /// opt-outs, all reporting to `metrics`.
    pub fn context(
        &self,
        settings: &Settings,
        namespaces: Arc<dyn NamespaceOptOuts>,
        metrics: &Arc<Metrics>,
    ) -> Arc<Context> {
        self.guarded_context(settings, namespaces, metrics, Arc::new(Unguarded))
    }

    /// The same, every write (patch, Event, copy) made only while `guard` allows it.
    pub fn guarded_context(
        &self,
        settings: &Settings,
        namespaces: Arc<dyn NamespaceOptOuts>,
        metrics: &Arc<Metrics>,
        guard: Arc<dyn WriteGuard>,
    ) -> Arc<Context> {
        let mirror = settings.gated_mirror(
            Arc::clone(metrics) as Arc<dyn CopyObserver>,
            guard::copy_gate(Arc::clone(&guard)),
        );
        let instance = std::env::var("POD_NAME")
            .or_else(|_| std::env::var("HOSTNAME"))
            .ok();
        let recorder = Recorder::new(
            self.client.clone(),
            Reporter {
                controller: "image-cloner".into(),
                instance,
            },
        );
        let api = WorkloadApi::new(self.client.clone(), recorder, Arc::clone(metrics) as _)
            .guarded(guard);
        let own = client::own_namespace(std::env::var("POD_NAMESPACE").ok().as_deref());
        Arc::new(Context::new(
            mirror,
            policy(settings, own),
            api,
            namespaces,
            Arc::clone(metrics) as _,
        ))
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
    }
}
