//! End to end: the `image-cloner` binary against a Kubernetes API server, real registries and
//! the real skopeo. Each scenario asserts what a user would check: the workload's stored spec,
//! the Events on it, and that the exact image written into it resolves in the backup registry.
//!
//! Every scenario is a test of its own on each kind of cluster, so that a failing one can be
//! run alone: `cargo test --test e2e -- sim::left_alone_daemon` (or `envtest::…`,
//! `real_cluster::…`; without the prefix, on every kind). The kinds of cluster:
//!
//! - `sim::` — the simulator (`tests/kube-sim`), always; one per test, so its fault injection
//!   and request log belong to that test alone. The scenarios that need faults run only here.
//! - `envtest::` — the real kube-apiserver of envtest, when `KUBEBUILDER_ASSETS` is set; one
//!   shared by the tests that run side by side (`common::cluster::shared_envtest`).
//! - `real_cluster::` — a real cluster, when `IMAGE_CLONER_E2E_KUBECONFIG` names its kubeconfig;
//!   everything happens in namespaces named `e2e-*`, and the daemon is confined to them.
//!
//! On a shared cluster, scenarios keep apart by namespace (each uses its own `e2e-*` names, and
//! every daemon and command is confined to them), so they run in parallel. Each test has its
//! own registries.

#[path = "../common/mod.rs"]
mod common;

mod clusters;
mod daemon;
mod echo;
mod faults;
mod left_alone;
mod live;
mod once;
mod parked;
mod questions;
mod scale;

/// One `#[test]` per scenario and kind of cluster: `sim::<name>`, `envtest::<name>`,
/// `real_cluster::<name>`; the `simulator_only` ones only as `sim::<name>`.
macro_rules! scenarios {
    (
        everywhere: { $($name:ident => $scenario:path,)* }
        simulator_only: { $($sim_name:ident => $sim_scenario:path,)* }
    ) => {
        mod sim {
            $(#[test] fn $name() { crate::clusters::on_simulator($scenario) })*
            $(#[test] fn $sim_name() { crate::clusters::on_simulator($sim_scenario) })*
        }
        mod envtest {
            $(#[test] fn $name() { crate::clusters::on_envtest($scenario) })*
        }
        mod real_cluster {
            $(#[test] fn $name() { crate::clusters::on_real_cluster($scenario) })*
        }
    };
}

scenarios! {
    everywhere: {
        // Every kind is cloned and patched; a Job only cloned.
        every_kind => crate::once::every_kind,
        // Ignored, opted-out, outside the allow-list, GitOps-managed: run --once ...
        left_alone_once => crate::left_alone::left_alone_once,
        // ... and the daemon, from its first reconcile, with a slow namespace list.
        left_alone_daemon => crate::left_alone::left_alone_daemon,
        // A namespace opting out and back in while the daemon runs.
        namespace_opt_out_while_running => crate::live::namespace_opt_out_while_running,
        // restore while the daemon runs: it stays restored; --allow-repatch lets it patch again.
        restore_while_running => crate::live::restore_while_running,
        // A missing source image leaves the workload untouched.
        source_missing => crate::once::source_missing,
        // A converged cluster costs no copy and no write.
        converged_restart => crate::once::converged_restart,
        // plan writes nothing and run does what it said.
        plan_matches_run => crate::once::plan_matches_run,
        // restore gives back the exact original images.
        restore_round_trip => crate::once::restore_round_trip,
        // The daemon patches new workloads and waits out a backup outage.
        daemon_and_outage => crate::daemon::daemon_and_outage,
        // SIGTERM mid-copy: nothing patched past the grace period, finished within it.
        stopped_mid_copy => crate::daemon::stopped_mid_copy,
        // 2,000 workloads over 50 images: 50 copies, one write each.
        two_thousand_workloads => crate::scale::two_thousand_workloads,
        questions_per_image => crate::questions::questions_per_image_not_per_workload,
        // The echo of the daemon's own patch is not planned again; a later edit is.
        own_patch_echo => crate::echo::own_patch_echo_not_replanned,
    }
    simulator_only: {
        // An edit between the daemon's read and its write survives.
        concurrent_edit => crate::faults::concurrent_edit,
        // A dropped watch and a 410 Expired: no workload missed.
        watch_faults => crate::faults::watch_faults,
        // The namespace watch breaks while a copy runs: patched once namespaces are listed again.
        namespace_watch_broken_mid_copy => crate::faults::namespace_watch_broken_mid_copy,
        // The API server fails patches: retried with backoff, no hot loop.
        api_errors => crate::faults::api_errors,
        // The daemon's cold start, the first 1,100 workloads on one slow image: the others
        // are patched while its copy runs.
        clustered_cold_start => crate::parked::clustered_cold_start,
    }
}
