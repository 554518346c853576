//! One cold round: a fresh simulator with the un-patched Deployments, a fresh baseline registry
//! and a fresh backup registry; `xargs -P5 skopeo copy --all` of the images into the baseline,
//! then `image-cloner run --once` (or, in the daemon's round, `image-cloner run`) into the
//! backup, each timed and costed.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, Result};
use demo::cost::copy_slots::{self, SlotUse};
use demo::cost::cpu;
use demo::{guard, secs};
use kube_sim::Sim;

use crate::{
    COLD_WORKLOADS, CONCURRENCY, Round, RunFigures, baseline_copies, by_request, catalog_size,
    cloner_env, copies, copies_reported, cost, daemon_run, floor, once_run, pinned_to, populate,
    settle_disk, start_registry,
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

/// A round's cluster and registries, and its baseline copies, made and timed.
struct Prepared {
    sim: Sim,
    kubeconfig: PathBuf,
    backup: String,
    baseline: Duration,
    baseline_cost: cost::SideCost,
    load_start: f64,
}

/// A fresh simulator with the un-patched Deployments, fresh baseline and backup registries,
/// and `xargs -P5 skopeo copy --all` of the images into the baseline, timed and costed; `tag`
/// names the round's files.
fn prepare(setup: &Setup<'_>, tag: &str, round: usize) -> Result<Prepared> {
    let sim = Sim::start(kube_sim::Options::default()).context("starting the simulator")?;
    let kubeconfig = setup.work.join(format!("kubeconfig-{tag}{round}"));
    sim.write_kubeconfig(&kubeconfig)?;
    populate(&sim, setup.source, setup.images)?;
    let baseline = start_registry(&format!("{tag}round {round} baseline"))?;
    let backup = start_registry(&format!("{tag}round {round} backup"))?;

    let load_start = cost::load_average();
    let baseline_skopeo = setup.recorded(&format!("{tag}skopeo-baseline"), round);
    let baseline_registries = cost::Registries::from_now(setup.source, &baseline)?;
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
        &baseline_registries,
    )?;
    guard().release_registry(&baseline);
    Ok(Prepared {
        sim,
        kubeconfig,
        backup,
        baseline: baseline_time,
        baseline_cost,
        load_start,
    })
}

impl Setup<'_> {
    /// skopeo through the recorder, its runs logged in the round's file `what`.
    fn recorded(&self, what: &str, round: usize) -> cost::RecordedSkopeo {
        cost::RecordedSkopeo {
            program: self.recorder.to_owned(),
            real: self.real_skopeo.to_owned(),
            log: cost::round_file(self.work, what, round),
        }
    }
}

/// Round `round`, printed as it ends: its figures, and its simulator, backup registry and
/// kubeconfig (the last round's are the warm restart's cluster).
pub fn round(setup: &Setup<'_>, round: usize) -> Result<(Round, Sim, String, PathBuf)> {
    let p = prepare(setup, "", round)?;
    let cloner_skopeo = setup.recorded("skopeo-cloner", round);
    let env = cloner_env(setup.source, &p.backup, &p.kubeconfig, &cloner_skopeo);
    let cloner_registries = cost::Registries::from_now(setup.source, &p.backup)?;
    let home = setup.work.join(format!("cold-home-{round}"));
    std::fs::create_dir_all(&home)?;
    settle_disk()?;
    let bench_before = cpu::this_process()?;
    let sampler_before = cpu::this_thread()?;
    let once = once_run(
        setup.cloner,
        &env,
        &home,
        &setup.work.join(format!("cold-{round}.out")),
        &setup.work.join(format!("cold-{round}.log")),
        &p.sim,
    )?;
    // The bench process's CPU but this thread's (it sampled run --once's memory): the
    // simulator's threads'.
    let simulator = (cpu::this_process()?.since(&bench_before).own)
        .saturating_sub(cpu::this_thread()?.since(&sampler_before).own);
    let cloner = cost::SideCost::measure(once.cpu, &cloner_skopeo, &cloner_registries)?;
    let floor = floor::measure(setup.source, setup.images, &p.backup)?;
    let floor_beside_copies = floor_beside_copies(setup, round, &p.backup)?;
    let cost = cost::ColdCost {
        cloner,
        measured: once.command.clone(),
        baseline: p.baseline_cost,
        simulator,
        api: p.sim.faults().connections(),
        api_requests: cost::api_requests(&p.sim),
        api_answers: cost::api_answers(&p.sim),
        load: (p.load_start, cost::load_average()),
        floor,
        floor_beside_copies,
    };
    let r = Round {
        baseline: p.baseline,
        cost,
        pinned: pinned_to(&p.sim, &p.backup)?,
        backup_repos: catalog_size(&p.backup)?,
        once,
    };
    println!(
        "  round {round}: skopeo {}, image-cloner run --once {} (exit 0) → {:.2}×; {}/{COLD_WORKLOADS} Deployments pinned to the backup ({}), {} repositories in it",
        secs(r.baseline),
        secs(r.once.wall),
        r.ratio(),
        r.pinned,
        p.backup,
        r.backup_repos
    );
    println!("    its summary: {}", r.once.summary);
    println!("    {}", r.once.slots.line(CONCURRENCY));
    println!("    {}", timeline(&r.once.slots, r.once.wall, r.baseline));
    cost::print_round(&r.cost, r.once.copies);
    println!(
        "    simulator writes: {}",
        by_request(&r.once.writes_by_resource)
    );
    Ok((r, p.sim, p.backup, p.kubeconfig))
}

/// The floor's requests again, beside `xargs -P5 skopeo copy --all` of the images into a fresh
/// registry of its own (their time is no figure): each image's requests as its copy ends.
fn floor_beside_copies(setup: &Setup<'_>, round: usize, backup: &str) -> Result<floor::Floor> {
    let registry = start_registry(&format!("round {round} floor's copies"))?;
    let skopeo = setup.recorded("skopeo-floor", round);
    settle_disk()?;
    let floor = floor::beside_copies(setup.source, setup.images, backup, |copied| {
        copies_reported(
            setup.source,
            &registry,
            setup.images,
            setup.baseline_home,
            &skopeo,
            copied,
        )
        .map(drop)
    })?;
    guard().release_registry(&registry);
    Ok(floor)
}

/// Where a run's wall time went beside the baseline's: before its first copy, its copies (first
/// start to last end), and its tail after the last copy.
fn timeline(slots: &SlotUse, wall: Duration, baseline: Duration) -> String {
    let copying = slots.last_copy_end.saturating_sub(slots.first_copy);
    format!(
        "timeline: {} to the first copy, {} of copies ({:+.1} % on the baseline's {}), {} after the last copy",
        secs(slots.first_copy),
        secs(copying),
        100.0 * (copying.as_secs_f64() / baseline.as_secs_f64() - 1.0),
        secs(baseline),
        secs(wall.saturating_sub(slots.last_copy_end))
    )
}

/// The cold start of the daemon users run (`image-cloner run`), on a round of its own beside
/// the same baseline copies: `run --once` is what the targets are measured on, and the daemon
/// gets to its reconciles another way (leader election, kube-runtime's watchers and
/// controllers), so its figures are shown next to them rather than assumed.
pub struct DaemonRound {
    pub baseline: Duration,
    pub run: RunFigures,
    /// How full it kept its copy slots, from its log.
    pub slots: SlotUse,
    /// Its own CPU and its skopeo processes' (reaped by it), at its last reconcile.
    pub cost: cost::SideCost,
    pub pinned: usize,
    pub backup_repos: usize,
    /// The simulator's count, as `run --once`'s rounds report it.
    pub writes_to_deployments: u64,
}

impl DaemonRound {
    /// Start → its last reconcile, over the baseline's wall time.
    pub fn ratio(&self) -> f64 {
        self.run.settled.as_secs_f64() / self.baseline.as_secs_f64()
    }

    /// Its own CPU as a percentage of its skopeo processes'.
    pub fn cpu_share(&self) -> f64 {
        cpu::percent(self.cost.cpu.own, self.cost.cpu.children)
    }

    pub fn copies(&self) -> u64 {
        copies(&self.run.metrics, "succeeded")
    }
}

/// The daemon's round, printed as it ends.
pub fn daemon_round(setup: &Setup<'_>) -> Result<DaemonRound> {
    let p = prepare(setup, "daemon-", 1)?;
    let skopeo = setup.recorded("daemon-skopeo-cloner", 1);
    let env = cloner_env(setup.source, &p.backup, &p.kubeconfig, &skopeo);
    let registries = cost::Registries::from_now(setup.source, &p.backup)?;
    let home = setup.work.join("cold-daemon-home");
    std::fs::create_dir_all(&home)?;
    settle_disk()?;
    let log = setup.work.join("cold-daemon.log");
    let run = daemon_run(setup.cloner, &env, &home, &log, &p.sim)?;
    let slots = copy_slots::read_file(&log, run.spawned_at, CONCURRENCY)?;
    let r = DaemonRound {
        baseline: p.baseline,
        slots,
        cost: cost::SideCost::measure(run.cpu_at_settle, &skopeo, &registries)?,
        run,
        pinned: pinned_to(&p.sim, &p.backup)?,
        backup_repos: catalog_size(&p.backup)?,
        writes_to_deployments: p.sim.faults().writes_to("deployments"),
    };
    guard().release_registry(&p.backup);
    let cpu = &r.cost.cpu;
    println!(
        "  the daemon: skopeo {}, image-cloner run: start → last reconcile {} → {:.2}×; {}/{COLD_WORKLOADS} Deployments pinned to the backup, {} repositories in it, {} copies",
        secs(r.baseline),
        secs(r.run.settled),
        r.ratio(),
        r.pinned,
        r.backup_repos,
        r.copies()
    );
    if r.run.measured != cost::MEASURED {
        println!(
            "    NOTE: the process measured is `{}`, not image-cloner: its CPU below is the wrapper's",
            r.run.measured
        );
    }
    println!("    {}", r.slots.line(CONCURRENCY));
    println!(
        "    CPU at its last reconcile: image-cloner itself {} (system {}), its skopeo {} ({:.1} %); baseline skopeo {}; the registries {} (the baseline's {}); load {:.1} → {:.1}",
        secs(cpu.own),
        secs(cpu.own_system),
        secs(cpu.children),
        r.cpu_share(),
        secs(p.baseline_cost.cpu.children),
        r.cost.registries,
        p.baseline_cost.registries,
        p.load_start,
        cost::load_average()
    );
    println!(
        "    simulator writes: {}",
        by_request(&r.run.writes_by_resource)
    );
    Ok(r)
}
