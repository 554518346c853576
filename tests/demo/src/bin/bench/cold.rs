//! One cold round: a fresh simulator with the un-patched Deployments, a fresh baseline registry
//! and a fresh backup registry; `xargs -P5 skopeo copy --all` of the images into the baseline,
//! then `image-cloner run --once` into the backup, each timed and costed.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use demo::cost::cpu;
use demo::{guard, secs};
use kube_sim::Sim;

use crate::{
    COLD_WORKLOADS, Round, baseline_copies, by_request, catalog_size, cloner_env, cost, floor,
    once_run, pinned_to, populate, settle_disk, start_registry,
};

/// `bench cold`: the cold rounds and their rows alone (a minute a round, for profiling).
pub fn only() -> bool {
    std::env::args().nth(1).as_deref() == Some("cold")
}

/// What every round uses.
pub struct Setup<'a> {
    pub cloner: &'a Path,
    pub recorder: &'a Path,
    pub real_skopeo: &'a Path,
    pub work: &'a Path,
    pub source: &'a str,
    pub images: &'a [String],
    pub baseline_home: &'a Path,
}

/// Round `round`, printed as it ends: its figures, and its simulator, backup registry and
/// kubeconfig (the last round's are the warm restart's cluster).
pub fn round(setup: &Setup<'_>, round: usize) -> Result<(Round, Sim, String, PathBuf)> {
    let sim = Sim::start(kube_sim::Options::default()).context("starting the simulator")?;
    let kubeconfig = setup.work.join(format!("kubeconfig-{round}"));
    sim.write_kubeconfig(&kubeconfig)?;
    populate(&sim, setup.source, setup.images)?;
    let baseline = start_registry(&format!("round {round} baseline"))?;
    let backup = start_registry(&format!("round {round} backup"))?;

    let load_start = cost::load_average();
    let recorded = |what: &str| cost::RecordedSkopeo {
        program: setup.recorder.to_owned(),
        real: setup.real_skopeo.to_owned(),
        log: cost::round_file(setup.work, what, round),
    };
    let baseline_skopeo = recorded("skopeo-baseline");
    let baseline_logs = cost::RegistryLogs::from_now(setup.source, &baseline)?;
    settle_disk()?;
    let before = cpu::this_process()?;
    let baseline_time = baseline_copies(
        setup.source,
        &baseline,
        setup.images,
        setup.baseline_home,
        &baseline_skopeo,
    )?;
    let baseline_cost = cost::SideCost::measure(
        cost::children_only(cpu::this_process()?.since(&before)),
        &baseline_skopeo,
        &baseline_logs,
    )?;
    guard().release_registry(&baseline);

    let cloner_skopeo = recorded("skopeo-cloner");
    let env = cloner_env(setup.source, &backup, &kubeconfig, &cloner_skopeo);
    let cloner_logs = cost::RegistryLogs::from_now(setup.source, &backup)?;
    let home = setup.work.join(format!("cold-home-{round}"));
    std::fs::create_dir_all(&home)?;
    settle_disk()?;
    let bench_before = cpu::this_process()?;
    let once = once_run(
        setup.cloner,
        &env,
        &home,
        &setup.work.join(format!("cold-{round}.out")),
        &setup.work.join(format!("cold-{round}.log")),
        &sim,
    )?;
    let simulator = cpu::this_process()?.since(&bench_before).own;
    let floor = floor::measure(setup.source, setup.images, &backup)?;
    let cost = cost::ColdCost {
        cloner: cost::SideCost::measure(once.cpu, &cloner_skopeo, &cloner_logs)?,
        baseline: baseline_cost,
        simulator,
        api: sim.faults().connections(),
        api_requests: cost::api_requests(&sim),
        load: (load_start, cost::load_average()),
        floor,
    };
    let r = Round {
        baseline: baseline_time,
        cost,
        pinned: pinned_to(&sim, &backup)?,
        backup_repos: catalog_size(&backup)?,
        once,
    };
    println!(
        "  round {round}: skopeo {}, image-cloner run --once {} (exit 0) → {:.2}×; {}/{COLD_WORKLOADS} Deployments pinned to the backup ({backup}), {} repositories in it",
        secs(r.baseline),
        secs(r.once.wall),
        r.ratio(),
        r.pinned,
        r.backup_repos
    );
    println!("    its summary: {}", r.once.summary);
    cost::print_round(&r.cost, r.once.copies);
    println!(
        "    simulator writes: {}",
        by_request(&r.once.writes_by_resource)
    );
    Ok((r, sim, backup, kubeconfig))
}
