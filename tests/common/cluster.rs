//! The Kubernetes API servers the end-to-end tests run against: the real one of envtest (when
//! `KUBEBUILDER_ASSETS` is set), the project's simulator, or a real cluster named by
//! `IMAGE_CLONER_E2E_KUBECONFIG`.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError, Weak};

/// The real API server of envtest (shared with the simulator's fidelity tests).
pub type Envtest = kube_sim::envtest::Envtest;

/// The envtest every test of this binary that runs meanwhile shares: started by the first test
/// that asks, stopped — its processes ended and its temp dir removed, by `Envtest`'s drop — as
/// soon as the last test holding it ends, also when that test panics. Tests running side by side
/// (libtest's threads) take it over from each other, so a run of the whole suite starts it once;
/// scenarios keep apart by namespace. `None` when `KUBEBUILDER_ASSETS` is not set.
///
/// Not a plain `static`: statics are never dropped, and nothing would stop etcd and
/// kube-apiserver when the test binary exits.
pub fn shared_envtest() -> Option<Arc<Envtest>> {
    static SHARED: Mutex<Weak<Envtest>> = Mutex::new(Weak::new());
    let mut shared = SHARED.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(running) = shared.upgrade() {
        return Some(running);
    }
    let started = std::time::Instant::now();
    let envtest = Arc::new(Envtest::start()?);
    eprintln!("envtest: started in {:?}", started.elapsed());
    *shared = Arc::downgrade(&envtest);
    Some(envtest)
}

/// A real cluster the operator points the suite at; nothing is started or stopped.
pub fn real_cluster() -> Option<PathBuf> {
    std::env::var_os("IMAGE_CLONER_E2E_KUBECONFIG").map(PathBuf::from)
}
