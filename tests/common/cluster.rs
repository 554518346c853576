//! The Kubernetes API servers the end-to-end tests run against: the real one from
//! `../shared/envtest` (when `KUBEBUILDER_ASSETS` is set), the project's simulator, or a real
//! cluster named by `IMAGE_CLONER_E2E_KUBECONFIG`.

use std::path::PathBuf;

/// The real API server of `../shared/envtest` (shared with the simulator's fidelity tests).
pub type Envtest = kube_sim::envtest::Envtest;

/// A real cluster the operator points the suite at; nothing is started or stopped.
pub fn real_cluster() -> Option<PathBuf> {
    std::env::var_os("IMAGE_CLONER_E2E_KUBECONFIG").map(PathBuf::from)
}
