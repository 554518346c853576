//! The commands that talk to a cluster — `run`, `plan`, `restore` — put together from the
//! library's parts. `main.rs` only parses, loads settings and calls these.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use kube::Client;
use kube::api::{Api, ListParams};
use kube::runtime::events::{Recorder, Reporter};
use thiserror::Error;
use tokio::sync::watch;

use crate::cluster::client::{self as cluster, ClusterError};
use crate::cluster::controller::{self, Daemon, OnceSummary};
use crate::commands::plan::{self as plan_command, PlanRow};
use crate::commands::restore::{self as restore_command, RestoreRow};
use crate::ops::health::{self, Health, HealthError};
use crate::ops::metrics::Metrics;
use crate::reconcile::plan::{Kind, Policy};
use crate::reconcile::{Context, Namespaces};
use crate::settings::Settings;
use crate::workload::partial::{CronJob, DaemonSet, Deployment, Job, Pod, ReplicaSet, StatefulSet};
use crate::workload::{self, WorkloadKind};

#[derive(Debug, Error)]
pub enum AppError {
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    #[error("listing {what}: {source}")]
    List {
        what: String,
        #[source]
        source: kube::Error,
    },
    #[error("waiting for a signal: {0}")]
    Signal(#[source] std::io::Error),
    #[error(transparent)]
    Health(#[from] HealthError),
}

/// Everything the cluster commands share.
pub struct Setup {
    pub client: Client,
    pub kinds: BTreeSet<Kind>,
    pub ctx: Arc<Context>,
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

/// Connects, finds the served kinds (warning once for each missing one), and builds the
/// shared context with a snapshot of the opted-out namespaces.
pub async fn setup(settings: &Settings, kinds: &[Kind]) -> Result<Setup, AppError> {
    let client =
        cluster::client(settings.kubeconfig.as_deref(), settings.context.as_deref()).await?;
    let (served, warnings) = cluster::served_kinds(&client, kinds).await?;
    for w in warnings {
        tracing::warn!("{w}");
    }
    let opted_out = controller::opted_out_namespaces(&client)
        .await
        .map_err(|source| AppError::List {
            what: "namespaces".into(),
            source,
        })?;
    let own = cluster::own_namespace(std::env::var("POD_NAMESPACE").ok().as_deref());
    let metrics = Arc::new(Metrics::new());
    let mirror = settings
        .mirror()
        .with_observer(Arc::clone(&metrics) as Arc<dyn crate::registry::mirror::CopyObserver>);
    let instance = std::env::var("POD_NAME")
        .or_else(|_| std::env::var("HOSTNAME"))
        .ok();
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: "image-cloner".into(),
            instance,
        },
    );
    let ctx = Arc::new(Context::new(
        client.clone(),
        mirror,
        policy(settings, own),
        recorder,
        Namespaces::Snapshot(Arc::new(opted_out)),
        metrics,
    ));
    Ok(Setup {
        client,
        kinds: served,
        ctx,
    })
}

/// `run --once`.
pub async fn run_once(setup: &Setup) -> Result<OnceSummary, AppError> {
    controller::run_once(Arc::clone(&setup.ctx), &setup.kinds)
        .await
        .map_err(|source| AppError::List {
            what: "workloads".into(),
            source,
        })
}

/// Resolves on SIGTERM or SIGINT.
async fn signal() -> Result<&'static str, AppError> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).map_err(AppError::Signal)?;
    let mut int = signal(SignalKind::interrupt()).map_err(AppError::Signal)?;
    Ok(tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    })
}

/// How often the daemon's loop proves it is alive (to `/healthz` and systemd's watchdog).
fn heartbeat_interval() -> Duration {
    // systemd sets WATCHDOG_USEC; ping at a third of it, and at least every 10 s.
    let from_systemd = std::env::var("WATCHDOG_USEC")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .map(|us| Duration::from_micros(us / 3));
    from_systemd
        .unwrap_or(Duration::from_secs(10))
        .min(Duration::from_secs(10))
        .max(Duration::from_millis(100))
}

fn notify(state: sd_notify::NotifyState<'_>) {
    if let Err(e) = sd_notify::notify(&[state]) {
        tracing::warn!(error = %e, "could not notify systemd");
    }
}

/// The daemon: serves health and metrics, runs until SIGTERM/SIGINT, then stops taking work and
/// lets running reconciles finish within the grace period. Tells systemd READY once every
/// kind's initial list is cached, pings its watchdog from the loop, and says STOPPING.
pub async fn run_daemon(setup: &Setup, settings: &Settings) -> Result<(), AppError> {
    let health = Health::new(
        setup.kinds.clone(),
        settings.skopeo.clone(),
        settings.docker_config.as_ref().map(|c| c.path.clone()),
        Arc::clone(&setup.ctx.metrics),
    );
    let (address, server) = health::serve(settings.metrics_address, Arc::clone(&health)).await?;
    tracing::info!(%address, "serving /healthz, /readyz and /metrics");
    let (namespaces, ns_task) = controller::watch_namespaces(setup.client.clone());
    controller::use_namespaces(&setup.ctx, Namespaces::Store(namespaces));
    let daemon = Daemon::new(Arc::clone(&setup.ctx));
    let (stop_tx, mut stop_rx) = watch::channel(false);
    let shutdown = async move {
        let _ = stop_rx.wait_for(|stop| *stop).await;
    }
    .boxed()
    .shared();
    let h = Arc::clone(&health);
    let synced: Arc<dyn Fn(Kind) + Send + Sync> = Arc::new(move |kind: Kind| {
        tracing::info!(%kind, "initial list synced");
        if h.synced(kind) {
            tracing::info!("ready: every initial list is cached");
            notify(sd_notify::NotifyState::Ready);
        }
    });
    tracing::info!(kinds = ?setup.kinds, "watching workloads");
    let controllers = controller::run(daemon, &setup.kinds, shutdown, synced);
    tokio::pin!(controllers);
    let mut ticker = tokio::time::interval(heartbeat_interval());
    let stop = signal();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            () = &mut controllers => {
                tracing::warn!("all controllers ended");
                break;
            }
            _ = ticker.tick() => {
                health.beat();
                notify(sd_notify::NotifyState::Watchdog);
            }
            which = &mut stop => {
                let which = which?;
                let grace = settings.shutdown_grace;
                notify(sd_notify::NotifyState::Stopping);
                tracing::info!(signal = which, grace = ?grace, "stopping: no new work; letting running reconciles finish");
                let _ = stop_tx.send(true);
                if tokio::time::timeout(grace, &mut controllers).await.is_err() {
                    tracing::warn!(
                        copies_running = setup.ctx.mirror.flights_in_progress(),
                        "grace period over: abandoning running copies; no workload is patched to an unfinished copy"
                    );
                }
                break;
            }
        }
    }
    ns_task.abort();
    server.abort();
    Ok(())
}

async fn plan_kind<K: WorkloadKind>(
    setup: &Setup,
    rows: &mut Vec<PlanRow>,
    opted_out: &BTreeSet<String>,
) -> Result<(), AppError> {
    let objects = controller::list_all::<K>(&setup.client)
        .await
        .map_err(|source| AppError::List {
            what: format!("{}s", K::KIND),
            source,
        })?;
    for obj in objects.iter().filter(|o| !o.left_to_owner()) {
        let ns = kube::ResourceExt::namespace(obj).unwrap_or_default();
        let w = workload::view(obj, opted_out.contains(&ns));
        rows.extend(plan_command::rows(&w, &setup.ctx.policy));
    }
    Ok(())
}

/// `plan`: the rows, sorted by namespace, kind, name, container.
pub async fn plan(setup: &Setup, check_backup: bool) -> Result<Vec<PlanRow>, AppError> {
    let opted_out = controller::opted_out_namespaces(&setup.client)
        .await
        .map_err(|source| AppError::List {
            what: "namespaces".into(),
            source,
        })?;
    let mut rows = Vec::new();
    for kind in &setup.kinds {
        match kind {
            Kind::Deployment => plan_kind::<Deployment>(setup, &mut rows, &opted_out).await?,
            Kind::StatefulSet => plan_kind::<StatefulSet>(setup, &mut rows, &opted_out).await?,
            Kind::DaemonSet => plan_kind::<DaemonSet>(setup, &mut rows, &opted_out).await?,
            Kind::ReplicaSet => plan_kind::<ReplicaSet>(setup, &mut rows, &opted_out).await?,
            Kind::CronJob => plan_kind::<CronJob>(setup, &mut rows, &opted_out).await?,
            Kind::Job => plan_kind::<Job>(setup, &mut rows, &opted_out).await?,
            Kind::Pod => plan_kind::<Pod>(setup, &mut rows, &opted_out).await?,
        }
    }
    rows.sort_by(|a, b| {
        (&a.namespace, &a.kind, &a.name, &a.container).cmp(&(
            &b.namespace,
            &b.kind,
            &b.name,
            &b.container,
        ))
    });
    if check_backup {
        plan_command::check_backup(&mut rows, &setup.ctx.mirror).await;
    }
    Ok(rows)
}

/// Which workloads `restore` touches.
#[derive(Debug, Clone, Default)]
pub struct RestoreFilter {
    pub namespace: Option<String>,
    pub selector: Option<String>,
    pub dry_run: bool,
}

async fn restore_kind<K: WorkloadKind>(
    setup: &Setup,
    filter: &RestoreFilter,
    rows: &mut Vec<RestoreRow>,
) -> Result<(), AppError> {
    let api: Api<K> = match &filter.namespace {
        Some(ns) => Api::namespaced(setup.client.clone(), ns),
        None => Api::all(setup.client.clone()),
    };
    let mut params = ListParams::default();
    if let Some(sel) = &filter.selector {
        params = params.labels(sel);
    }
    let list = api.list(&params).await.map_err(|source| AppError::List {
        what: format!("{}s", K::KIND),
        source,
    })?;
    for obj in list.items {
        let w = workload::view(&obj, false);
        let Some((mut row, patch)) = restore_command::plan_row(&w) else {
            continue;
        };
        if !filter.dry_run
            && let Err(e) = setup.ctx.write::<K>(&w.namespace, &w.name, &patch).await
        {
            row.error = Some(if matches!(&e, kube::Error::Api(s) if s.code == 422) {
                format!("the workload changed while restoring; run restore again ({e})")
            } else {
                e.to_string()
            });
        }
        rows.push(row);
    }
    Ok(())
}

/// `restore`.
pub async fn restore(setup: &Setup, filter: &RestoreFilter) -> Result<Vec<RestoreRow>, AppError> {
    let mut rows = Vec::new();
    for kind in &setup.kinds {
        match kind {
            Kind::Deployment => restore_kind::<Deployment>(setup, filter, &mut rows).await?,
            Kind::StatefulSet => restore_kind::<StatefulSet>(setup, filter, &mut rows).await?,
            Kind::DaemonSet => restore_kind::<DaemonSet>(setup, filter, &mut rows).await?,
            Kind::ReplicaSet => restore_kind::<ReplicaSet>(setup, filter, &mut rows).await?,
            Kind::CronJob => restore_kind::<CronJob>(setup, filter, &mut rows).await?,
            Kind::Job => restore_kind::<Job>(setup, filter, &mut rows).await?,
            Kind::Pod => restore_kind::<Pod>(setup, filter, &mut rows).await?,
        }
    }
    Ok(rows)
}
