//! `image-cloner run`: the daemon, and `run --once`.
//!
//! The daemon's start-up order is what keeps its promises from the first reconcile: connect,
//! serve health, start the namespace watch (no workload is planned until its opt-out is
//! known), the admission webhooks when on (they need the mirror and the namespace cache), then
//! the controllers. It tells systemd READY once every kind's initial list is
//! cached, pings its watchdog from the loop, and on SIGTERM/SIGINT stops taking work and lets
//! running reconciles finish within the grace period.

use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt as _;
use tokio::sync::watch;

use crate::admission;
use crate::cluster::controller::{self, Daemon};
use crate::cluster::list;
use crate::cluster::namespaces;
use crate::cluster::once::{self, OnceSummary};
use crate::commands::error::CommandError;
use crate::commands::session::Session;
use crate::ops::health::{self, Health};
use crate::ops::metrics::Metrics;
use crate::reconcile::Context;
use crate::reconcile::context::Snapshot;
use crate::settings::Settings;
use crate::workload::Kind;

/// `run --once`: reconciles everything present, prints a summary; `Ok(false)` when a
/// reconcile failed.
pub async fn once(settings: &Settings) -> Result<bool, CommandError> {
    let session = Session::connect(settings, &Kind::wanted(settings.bare_pods)).await?;
    let opted_out = list::opted_out_namespaces(&session.client)
        .await
        .map_err(CommandError::list("namespaces"))?;
    let metrics = Arc::new(Metrics::new());
    let ctx = session.context(settings, Arc::new(Snapshot(opted_out)), &metrics);
    let summary = once::run_once(Arc::clone(&ctx), &session.kinds)
        .await
        .map_err(CommandError::list("workloads"))?;
    print!("{}", render_summary(&summary, &ctx));
    Ok(summary.failed.is_empty())
}

fn render_summary(summary: &OnceSummary, ctx: &Context) -> String {
    let stats = ctx.mirror.stats();
    let mut out = format!(
        "{} workload(s): {} patched ({} image(s)), {} cloned but not patched, {} invalid reference(s), {} failed; {} cop(y/ies) made, {} already in backup, {} API write(s)\n",
        summary.workloads,
        summary.patched,
        summary.images_patched,
        summary.cloned_only,
        summary.invalid,
        summary.failed.len(),
        stats.copies_succeeded,
        stats.already_in_backup,
        ctx.writes(),
    );
    for f in &summary.failed {
        out.push_str(&format!("failed: {f}\n"));
    }
    out
}

/// Resolves on SIGTERM or SIGINT.
async fn signal() -> Result<&'static str, CommandError> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).map_err(CommandError::Signal)?;
    let mut int = signal(SignalKind::interrupt()).map_err(CommandError::Signal)?;
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

/// Called as each kind's initial list is cached: READY once all are.
fn on_synced(health: Arc<Health>) -> Arc<dyn Fn(Kind) + Send + Sync> {
    Arc::new(move |kind: Kind| {
        tracing::info!(%kind, "initial list synced");
        if health.synced(kind) {
            tracing::info!("ready: every initial list is cached");
            notify(sd_notify::NotifyState::Ready);
        }
    })
}

/// The daemon, until SIGTERM/SIGINT.
pub async fn daemon(settings: &Settings) -> Result<bool, CommandError> {
    let session = Session::connect(settings, &Kind::wanted(settings.bare_pods)).await?;
    let metrics = Arc::new(Metrics::new());
    let health = Health::new(
        session.kinds.clone(),
        settings.skopeo.clone(),
        settings.docker_config.as_ref().map(|c| c.path.clone()),
        Arc::clone(&metrics),
    );
    let (address, server) = health::serve(settings.metrics_address, Arc::clone(&health)).await?;
    tracing::info!(%address, "serving /healthz, /readyz and /metrics");
    let (namespaces, ns_task) = namespaces::watch(session.client.clone());
    let announcements = namespaces.announcements();
    let ctx = session.context(settings, namespaces, &metrics);
    let webhooks = start_webhooks(settings, &ctx, &metrics).await?;
    let daemon = Daemon::new(Arc::clone(&ctx), announcements);
    let (stop_tx, mut stop_rx) = watch::channel(false);
    let shutdown = async move {
        let _ = stop_rx.wait_for(|stop| *stop).await;
    }
    .boxed()
    .shared();
    tracing::info!(kinds = ?session.kinds, "watching workloads");
    let controllers = controller::run(
        daemon,
        &session.kinds,
        shutdown,
        on_synced(Arc::clone(&health)),
    );
    let result = supervise(controllers, &health, &ctx, settings.shutdown_grace, stop_tx).await;
    ns_task.abort();
    server.abort();
    drop(webhooks);
    result.map(|()| true)
}

/// The admission webhooks, when either is on. Served from here on: they answer from the mirror
/// and the namespace cache, not from the controllers' caches.
async fn start_webhooks(
    settings: &Settings,
    ctx: &Arc<Context>,
    metrics: &Arc<Metrics>,
) -> Result<Option<admission::Running>, CommandError> {
    let w = &settings.webhooks;
    if !w.any() {
        return Ok(None);
    }
    let own = crate::cluster::client::own_namespace(std::env::var("POD_NAMESPACE").ok().as_deref())
        .unwrap_or_else(|| "image-cloner".to_owned());
    let observer = Arc::clone(metrics) as Arc<dyn admission::AdmissionObserver>;
    let running = admission::start(w, Arc::clone(ctx), observer, &own).await?;
    tracing::info!(
        address = %running.address,
        mutating = if w.mutating { "on" } else { "off" },
        validating = %w.validating,
        tls = %w.tls,
        "serving the admission webhooks (/mutate, /validate) over HTTPS"
    );
    Ok(Some(running))
}

/// Beats the heartbeat until a signal, then stops the controllers within `grace`.
async fn supervise(
    controllers: impl Future<Output = ()>,
    health: &Health,
    ctx: &Context,
    grace: Duration,
    stop: watch::Sender<bool>,
) -> Result<(), CommandError> {
    tokio::pin!(controllers);
    let mut ticker = tokio::time::interval(heartbeat_interval());
    let signalled = signal();
    tokio::pin!(signalled);
    loop {
        tokio::select! {
            () = &mut controllers => {
                tracing::warn!("all controllers ended");
                return Ok(());
            }
            _ = ticker.tick() => {
                health.beat();
                notify(sd_notify::NotifyState::Watchdog);
            }
            which = &mut signalled => {
                let which = which?;
                notify(sd_notify::NotifyState::Stopping);
                tracing::info!(signal = which, grace = ?grace, "stopping: no new work; letting running reconciles finish");
                let _ = stop.send(true);
                if tokio::time::timeout(grace, &mut controllers).await.is_err() {
                    tracing::warn!(
                        copies_running = ctx.mirror.flights_in_progress(),
                        "grace period over: abandoning running copies; no workload is patched to an unfinished copy"
                    );
                }
                return Ok(());
            }
        }
    }
}
