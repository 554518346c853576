//! `image-cloner run`: the daemon, and `run --once`.
//!
//! The daemon's start-up order is what keeps its promises from the first reconcile: connect,
//! serve health, start the namespace watch (no workload is planned until its opt-out is
//! known), say how pods will pull the copies and keep the pull secrets current, the admission
//! webhooks when on (they need the mirror and the namespace cache), then the controllers, with
//! the audit and the rollout guard beside them (the audit waits for the controllers' caches).
//! It tells systemd READY once every kind's initial list is cached, pings its watchdog from the
//! loop, and on SIGTERM/SIGINT stops taking work and lets running reconciles finish within the
//! grace period. With leader election on, it joins the election before the controllers start
//! (they reconcile nothing until it leads) and releases the Lease once they have stopped.

use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt as _;
use tokio::sync::watch;

use crate::admission;
use crate::audit::guard::Guard;
use crate::audit::{AuditObserver, Auditor, Cached};
use crate::cluster::controller::{self, Daemon};
use crate::cluster::list;
use crate::cluster::namespaces;
use crate::cluster::once::{self, OnceSummary};
use crate::cluster::parking::ParkingLot;
use crate::commands::error::CommandError;
use crate::commands::session::Session;
use crate::leadership::{Leadership, LeadershipObserver as _, Validity};
use crate::ops::health::{self, Health};
use crate::ops::metrics::Metrics;
use crate::pullsecret::{self, PullSecrets};
use crate::reconcile::Context;
use crate::reconcile::context::Snapshot;
use crate::reconcile::error::with_causes;
use crate::reconcile::guard::{Unguarded, WriteGuard};
use crate::registry::manifest_head::preload_system_roots;
use crate::registry::skopeo::clean_at_start;
use crate::settings::Settings;
use crate::workload::Kind;

/// `run --once`: reconciles everything present, prints a summary; `Ok(false)` when a
/// reconcile failed.
pub async fn once(settings: &Settings) -> Result<bool, CommandError> {
    if settings.backup_verifies_tls() {
        preload_system_roots();
    }
    clean_at_start(settings.tmp_dir.as_deref());
    if settings.leader_election {
        tracing::warn!(
            "run --once does not take part in leader election: it copies and writes whether or not a daemon leads"
        );
    }
    let session = Session::connect(settings, &Kind::wanted(settings.bare_pods)).await?;
    let opted_out = list::opted_out_namespaces(&session.client)
        .await
        .map_err(CommandError::list("namespaces"))?;
    let metrics = Arc::new(Metrics::new());
    let pull = session.pull_secrets(settings, &metrics);
    // Beside the run, as in the daemon: the probe's round trip to the backup registry does
    // not hold the first copies back; its warnings still come before the summary.
    let warnings = tokio::spawn({
        let pull = Arc::clone(&pull);
        async move { warn_about_pulls(&pull).await }
    });
    let ctx = session.context(settings, Arc::new(Snapshot(opted_out)), &metrics, pull);
    let summary = once::run_once(Arc::clone(&ctx), &session.kinds).await;
    let _ = warnings.await;
    let summary = summary.map_err(CommandError::list("workloads"))?;
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

/// The start-up warnings about how pods will pull the copies.
async fn warn_about_pulls(pull: &PullSecrets) {
    for warning in pull.startup_warnings().await {
        tracing::warn!("{warning}");
    }
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

/// Called as each kind's initial list is cached: READY once all are (and `all_synced` set).
fn on_synced(
    health: Arc<Health>,
    all_synced: watch::Sender<bool>,
) -> Arc<dyn Fn(Kind) + Send + Sync> {
    Arc::new(move |kind: Kind| {
        tracing::info!(%kind, "initial list synced");
        if health.synced(kind) {
            tracing::info!("ready: every initial list is cached");
            notify(sd_notify::NotifyState::Ready);
            let _ = all_synced.send(true);
        }
    })
}

/// How often readiness asks the API server whether it answers.
const CLUSTER_PROBE_EVERY: Duration = Duration::from_secs(5);
const CLUSTER_PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// Keeps `/readyz` honest about the cluster: the watches retry quietly while the API server is
/// gone, and a resumed watch says nothing until something changes, so readiness asks the
/// server itself (`/version`, the cheapest call).
async fn probe_cluster(client: kube::Client, health: Arc<Health>) {
    let mut every = tokio::time::interval(CLUSTER_PROBE_EVERY);
    loop {
        every.tick().await;
        let outcome =
            match tokio::time::timeout(CLUSTER_PROBE_TIMEOUT, client.apiserver_version()).await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(e)) => Err(with_causes(&e)),
                Err(_) => Err(format!(
                    "no answer within {}",
                    humantime::format_duration(CLUSTER_PROBE_TIMEOUT)
                )),
            };
        health.cluster_probed(outcome);
    }
}

/// The audit of the backup copies in use (once the caches are filled, then every
/// `audit_interval`) and the rollout guard, in tasks of their own; aborted on return.
fn start_protection(
    settings: &Settings,
    daemon: &Arc<Daemon>,
    metrics: &Arc<Metrics>,
    synced: watch::Receiver<bool>,
) -> [tokio::task::JoinHandle<()>; 2] {
    let auditor = Auditor::new(
        Arc::clone(&daemon.ctx),
        Arc::clone(daemon) as Arc<dyn Cached>,
        Arc::clone(metrics) as Arc<dyn AuditObserver>,
        settings.on_backup_missing,
    );
    let guard = Guard::new(
        Arc::clone(&daemon.ctx),
        settings.rollout_guard_after,
        Arc::clone(metrics) as Arc<dyn AuditObserver>,
    );
    [
        tokio::spawn(auditor.run(settings.audit_interval, synced)),
        tokio::spawn(guard.run()),
    ]
}

/// The daemon, until SIGTERM/SIGINT.
pub async fn daemon(settings: &Settings) -> Result<bool, CommandError> {
    if settings.backup_verifies_tls() {
        preload_system_roots();
    }
    clean_at_start(settings.tmp_dir.as_deref());
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
    let probe = tokio::spawn(probe_cluster(session.client.clone(), Arc::clone(&health)));
    let (namespaces, ns_task) = namespaces::watch(session.client.clone());
    let announcements = namespaces.announcements();
    let validity = settings.lease().map(|lease| Leadership::guard(&lease));
    let guard: Arc<dyn WriteGuard> = match &validity {
        Some(v) => Arc::clone(v) as _,
        None => Arc::new(Unguarded),
    };
    let pull = session.pull_secrets(settings, &metrics);
    // In the background: an unreachable registry must not hold the start-up.
    let warnings = tokio::spawn({
        let pull = Arc::clone(&pull);
        async move { warn_about_pulls(&pull).await }
    });
    let refresh = tokio::spawn(pullsecret::refresh::keep_current(
        Arc::clone(&pull),
        Arc::clone(&guard),
    ));
    let parking = ParkingLot::observed(Arc::clone(&metrics) as _);
    let ctx = session
        .guarded_context(settings, namespaces, &metrics, pull, guard)
        .with_parking(Arc::new(parking.clone()))
        .reading_versions();
    let ctx = Arc::new(ctx);
    let webhooks = start_webhooks(settings, &ctx, &metrics).await?;
    let daemon = Daemon::new(Arc::clone(&ctx), announcements, parking.clone());
    let leadership = elect(&session, settings, validity, &metrics, &daemon).await?;
    let (synced_tx, synced_rx) = watch::channel(false);
    let protection = start_protection(settings, &daemon, &metrics, synced_rx);
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
        on_synced(Arc::clone(&health), synced_tx),
    );
    let stopping = Stopping {
        ctx: &ctx,
        parking: &parking,
        grace: settings.shutdown_grace,
        stop: stop_tx,
    };
    let result = supervise(controllers, &health, stopping).await;
    protection.iter().for_each(tokio::task::JoinHandle::abort);
    if let Some(leadership) = leadership {
        leadership.step_down().await;
    }
    ns_task.abort();
    probe.abort();
    refresh.abort();
    warnings.abort();
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

/// Joins the leader election when it is on; without it, this daemon always leads.
async fn elect(
    session: &Session,
    settings: &Settings,
    validity: Option<Arc<Validity>>,
    metrics: &Arc<Metrics>,
    daemon: &Daemon,
) -> Result<Option<Leadership>, CommandError> {
    let (Some(lease), Some(validity)) = (settings.lease(), validity) else {
        metrics.leading(true);
        return Ok(None);
    };
    let leadership = Leadership::join(
        session.client.clone(),
        &lease,
        &session.identity,
        validity,
        Arc::clone(metrics) as _,
        daemon.reconcile_everything(),
    )
    .await?;
    Ok(Some(leadership))
}

/// Beats the heartbeat until a signal, then stops the controllers within `grace`.
async fn supervise(
    controllers: impl Future<Output = ()>,
    health: &Health,
    stopping: Stopping<'_>,
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
                tracing::info!(signal = which, grace = ?stopping.grace, "stopping: no new work; letting running reconciles finish");
                stopping.begin(controllers).await;
                return Ok(());
            }
        }
    }
}

/// What a graceful stop lets finish, and for how long.
struct Stopping<'a> {
    ctx: &'a Context,
    parking: &'a ParkingLot,
    grace: Duration,
    stop: watch::Sender<bool>,
}

impl Stopping<'_> {
    /// The controllers stop taking work and finish their running reconciles; workloads parked
    /// on copies are reconciled by their waiting tasks as the copies end; all within the grace.
    async fn begin(self, controllers: impl Future<Output = ()>) {
        self.parking.stopping();
        let _ = self.stop.send(true);
        let running = futures::future::join(controllers, self.parking.idle());
        if tokio::time::timeout(self.grace, running).await.is_err() {
            tracing::warn!(
                copies_running = self.ctx.mirror.flights_in_progress(),
                workloads_waiting = self.parking.waiting(),
                "grace period over: abandoning running copies; no workload is patched to an unfinished copy"
            );
        }
    }
}
