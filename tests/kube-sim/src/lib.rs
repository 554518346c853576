//! A Kubernetes API server simulator for image-cloner's tests, benchmarks and demo: the real
//! REST wire protocol (JSON, and protobuf bodies of the types kubectl's typed commands send)
//! over HTTPS with a bearer token, the resources image-cloner and kubectl use, watches with
//! bookmarks and 410s, and what a real server cannot offer — fault injection and request
//! counters. `README.md` lists what it reproduces and what not.

mod access_review;
mod admission;
mod discovery;
pub mod envtest;
mod events;
pub mod faults;
pub mod fixtures;
mod partial;
pub mod protobuf;
pub mod resources;
pub mod seed;
mod selector;
mod server;
pub mod status;
pub mod store;
mod strategic;
mod table;
mod tls;
mod validation;
mod wire;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

pub use faults::{FailRule, Faults, Interference, LatencyRule, RequestRecord};
pub use status::ApiError;
pub use store::Store;

#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("listening on {address}: {source}")]
    Listen {
        address: SocketAddr,
        source: std::io::Error,
    },
    #[error("only loopback addresses may be used, not {0}")]
    NotLoopback(SocketAddr),
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error(transparent)]
    Seed(#[from] seed::SeedError),
    #[error("writing the kubeconfig {path}: {source}")]
    WriteKubeconfig {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("starting the simulator's runtime: {0}")]
    Runtime(std::io::Error),
}

/// How to run the simulator.
#[derive(Debug, Clone)]
pub struct Options {
    /// Loopback address; port 0 picks a free port.
    pub listen: SocketAddr,
    /// How many changes the watch history keeps: a watch from an older resourceVersion gets
    /// 410 Expired.
    pub history: usize,
    /// How often watches that allow bookmarks get one.
    pub bookmark_interval: Duration,
    /// Objects to load before listening.
    pub seed: Option<PathBuf>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            history: 50_000,
            bookmark_interval: Duration::from_secs(5),
            seed: None,
        }
    }
}

/// A running simulator. Dropping it stops the server (and its runtime, for one started with
/// [`Sim::start`]).
pub struct Sim {
    store: Arc<Store>,
    faults: Arc<Faults>,
    address: SocketAddr,
    token: String,
    ca_pem: String,
    shutdown: watch::Sender<bool>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Sim {
    /// Starts on the current Tokio runtime.
    pub async fn serve(options: Options) -> Result<Sim, SimError> {
        if !options.listen.ip().is_loopback() {
            return Err(SimError::NotLoopback(options.listen));
        }
        let store = Arc::new(Store::new(options.history));
        if let Some(dir) = &options.seed {
            seed::load(&store, dir)?;
        }
        let certs = tls::generate()?;
        let listener =
            TcpListener::bind(options.listen)
                .await
                .map_err(|source| SimError::Listen {
                    address: options.listen,
                    source,
                })?;
        let address = listener.local_addr().map_err(|source| SimError::Listen {
            address: options.listen,
            source,
        })?;
        let token = uuid::Uuid::new_v4().simple().to_string();
        let faults = Arc::new(Faults::default());
        let shared = Arc::new(server::Shared {
            store: Arc::clone(&store),
            faults: Arc::clone(&faults),
            token: token.clone(),
            address: address.to_string(),
            bookmark_interval: options.bookmark_interval,
            namespace_finalize_delay: Duration::from_millis(500),
        });
        let (shutdown, stop) = watch::channel(false);
        tokio::spawn(server::serve(
            listener,
            TlsAcceptor::from(certs.config),
            shared,
            stop,
        ));
        Ok(Sim {
            store,
            faults,
            address,
            token,
            ca_pem: certs.ca_pem,
            shutdown,
            runtime: None,
        })
    }

    /// Starts on a runtime of its own (two worker threads), for synchronous tests.
    pub fn start(options: Options) -> Result<Sim, SimError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("kube-sim")
            .enable_all()
            .build()
            .map_err(SimError::Runtime)?;
        // From a thread of its own, so that this also works from inside another runtime.
        let mut sim = std::thread::scope(|scope| {
            scope
                .spawn(|| runtime.block_on(Sim::serve(options)))
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })?;
        sim.runtime = Some(runtime);
        Ok(sim)
    }

    pub fn url(&self) -> String {
        format!("https://{}", self.address)
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    pub fn token(&self) -> &str {
        &self.token
    }

    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    pub fn kubeconfig(&self) -> String {
        tls::kubeconfig(&self.url(), &self.ca_pem, &self.token)
    }

    /// Writes the kubeconfig atomically (a script waiting for the file never reads half of it).
    pub fn write_kubeconfig(&self, path: &Path) -> Result<(), SimError> {
        let err = |source| SimError::WriteKubeconfig {
            path: path.to_owned(),
            source,
        };
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, self.kubeconfig()).map_err(err)?;
        std::fs::rename(&tmp, path).map_err(err)
    }

    /// The objects, for direct inspection and for faults that act on the store (dropping
    /// watches, expiring resourceVersions).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Failures, latency, interference, counters and the request log.
    pub fn faults(&self) -> &Faults {
        &self.faults
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
        self.store.drop_watches();
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}
