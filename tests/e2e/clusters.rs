//! Where a scenario runs: a fresh simulator, the shared envtest, or a real cluster.

use std::time::Instant;

use crate::common::cluster::{real_cluster, shared_envtest};
use crate::common::e2e::Env;

/// A scenario: it creates what it needs in its own namespaces and asserts.
pub type Scenario = fn(&Env);

/// On a simulator of its own (and registries of its own).
pub fn on_simulator(scenario: Scenario) {
    let dir = tempfile::tempdir().expect("temp dir");
    let started = Instant::now();
    let env = Env::on_simulator(dir.path());
    eprintln!("kube-sim environment ready in {:?}", started.elapsed());
    scenario(&env);
}

/// On envtest's real API server, shared with the tests running meanwhile; skipped (loudly)
/// without `KUBEBUILDER_ASSETS`.
pub fn on_envtest(scenario: Scenario) {
    let Some(envtest) = shared_envtest() else {
        return;
    };
    let started = Instant::now();
    let env = Env::on_envtest(envtest);
    eprintln!("envtest environment ready in {:?}", started.elapsed());
    scenario(&env);
}

/// On the real cluster named by `IMAGE_CLONER_E2E_KUBECONFIG`; skipped (loudly) without it.
pub fn on_real_cluster(scenario: Scenario) {
    let Some(kubeconfig) = real_cluster() else {
        eprintln!(
            "SKIPPED: set IMAGE_CLONER_E2E_KUBECONFIG to run the end-to-end suite on a real cluster"
        );
        return;
    };
    scenario(&Env::on_real_cluster(&kubeconfig));
}
