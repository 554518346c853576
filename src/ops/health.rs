//! `/healthz`, `/readyz` and `/metrics` on one small HTTP listener.
//!
//! - `/healthz`: the process and its reconcile loop are alive (the loop's heartbeat is recent).
//! - `/readyz`: the initial lists of every watched kind are in the caches, skopeo is still an
//!   executable file, and the docker config (if any) is still readable.
//! - `/metrics`: the Prometheus text exposition.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use thiserror::Error;

use crate::ops::metrics::Metrics;
use crate::workload::Kind;

/// A heartbeat older than this means the loop is stuck.
pub const HEARTBEAT_MAX_AGE: Duration = Duration::from_secs(60);

#[derive(Debug, Error)]
pub enum HealthError {
    #[error(
        "cannot listen on {address} for /healthz, /readyz and /metrics: {source} (set metrics_address)"
    )]
    Listen {
        address: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// What the probes report on; shared with the daemon, which updates it.
pub struct Health {
    expected: BTreeSet<Kind>,
    synced: Mutex<BTreeSet<Kind>>,
    heartbeat: AtomicU64,
    skopeo: PathBuf,
    docker_config: Option<PathBuf>,
    /// Why the API server could not be reached at the last probe; `None` while it answers.
    cluster: Mutex<Option<String>>,
    pub metrics: Arc<Metrics>,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

impl Health {
    pub fn new(
        expected: BTreeSet<Kind>,
        skopeo: PathBuf,
        docker_config: Option<PathBuf>,
        metrics: Arc<Metrics>,
    ) -> Arc<Self> {
        Arc::new(Health {
            expected,
            synced: Mutex::default(),
            heartbeat: AtomicU64::new(now()),
            skopeo,
            docker_config,
            cluster: Mutex::new(None),
            metrics,
        })
    }

    /// Records that a kind's initial list is cached; true once every kind is.
    pub fn synced(&self, kind: Kind) -> bool {
        let mut synced = self.synced.lock().unwrap_or_else(PoisonError::into_inner);
        synced.insert(kind);
        self.expected.is_subset(&synced)
    }

    /// The outcome of the last probe of the API server (`Err` with its cause).
    pub fn cluster_probed(&self, outcome: Result<(), String>) {
        let mut cluster = self.cluster.lock().unwrap_or_else(PoisonError::into_inner);
        match (&*cluster, &outcome) {
            (None, Err(e)) => {
                tracing::warn!(error = %e, "the API server cannot be reached: not ready")
            }
            (Some(_), Ok(())) => tracing::info!("the API server answers again: ready"),
            _ => {}
        }
        *cluster = outcome.err();
    }

    pub fn beat(&self) {
        self.heartbeat.store(now(), Ordering::Relaxed);
    }

    pub fn alive(&self) -> Result<(), String> {
        let age = now().saturating_sub(self.heartbeat.load(Ordering::Relaxed));
        if age <= HEARTBEAT_MAX_AGE.as_secs() {
            Ok(())
        } else {
            Err(format!("reconcile loop silent for {age} s"))
        }
    }

    /// Every reason not to be ready, or none.
    pub fn not_ready(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let synced = self
            .synced
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let missing: Vec<String> = self
            .expected
            .difference(&synced)
            .map(ToString::to_string)
            .collect();
        if !missing.is_empty() {
            problems.push(format!(
                "initial list not synced yet: {}",
                missing.join(", ")
            ));
        }
        match std::fs::metadata(&self.skopeo) {
            Ok(m) if m.is_file() && m.permissions().mode() & 0o111 != 0 => {}
            Ok(_) => problems.push(format!(
                "skopeo {} is not executable",
                self.skopeo.display()
            )),
            Err(e) => problems.push(format!("skopeo {}: {e}", self.skopeo.display())),
        }
        if let Some(path) = &self.docker_config
            && let Err(e) = std::fs::File::open(path)
        {
            problems.push(format!("docker config {}: {e}", path.display()));
        }
        if let Some(e) = &*self.cluster.lock().unwrap_or_else(PoisonError::into_inner) {
            problems.push(format!("the API server cannot be reached: {e}"));
        }
        problems
    }
}

async fn healthz(State(h): State<Arc<Health>>) -> impl IntoResponse {
    match h.alive() {
        Ok(()) => (StatusCode::OK, "ok\n".to_owned()),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("{e}\n")),
    }
}

async fn readyz(State(h): State<Arc<Health>>) -> impl IntoResponse {
    let problems = h.not_ready();
    if problems.is_empty() {
        (StatusCode::OK, "ok\n".to_owned())
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{}\n", problems.join("\n")),
        )
    }
}

async fn metrics(State(h): State<Arc<Health>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        h.metrics.encode(),
    )
}

pub fn router(health: Arc<Health>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(health)
}

/// Binds the listener (so a bad address fails at start, by name) and serves in the background.
pub async fn serve(
    address: SocketAddr,
    health: Arc<Health>,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>), HealthError> {
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .map_err(|source| HealthError::Listen { address, source })?;
    let bound = listener.local_addr().unwrap_or(address);
    let app = router(health);
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "health and metrics listener stopped");
        }
    });
    Ok((bound, task))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_once_every_kind_is_synced_and_skopeo_is_there() {
        let expected = BTreeSet::from([Kind::Deployment, Kind::Job]);
        let h = Health::new(expected, "/bin/sh".into(), None, Arc::new(Metrics::new()));
        assert!(h.not_ready()[0].contains("Deployment, Job"));
        assert!(!h.synced(Kind::Deployment));
        assert!(h.synced(Kind::Job));
        assert!(h.not_ready().is_empty(), "{:?}", h.not_ready());
        assert!(h.alive().is_ok());

        let h = Health::new(
            BTreeSet::new(),
            "/nonexistent/skopeo".into(),
            Some("/nonexistent/config.json".into()),
            Arc::new(Metrics::new()),
        );
        h.cluster_probed(Err("tcp connect error: Connection refused".into()));
        let problems = h.not_ready().join("\n");
        assert!(
            problems.contains("skopeo /nonexistent/skopeo"),
            "{problems}"
        );
        assert!(
            problems.contains("the API server cannot be reached: tcp connect error"),
            "{problems}"
        );
        h.cluster_probed(Ok(()));
        assert!(!h.not_ready().join("\n").contains("API server"));
        assert!(
            problems.contains("docker config /nonexistent/config.json"),
            "{problems}"
        );
    }
}
