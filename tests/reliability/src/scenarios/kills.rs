//! SIGKILL at random moments of cold runs of the daemon, with a concurrent editor.
//!
//! Per fresh world (simulator, empty backup registry, empty `tmp_dir`): the workloads are
//! created, a recorder follows every state they take, an editor changes some workloads' images
//! and labels while the daemon runs, and the daemon is SIGKILLed at seeded random moments and
//! started again; a last daemon converges and is stopped with SIGTERM. Then: no skopeo survived
//! a kill, no repository was pushed twice, `tmp_dir` is empty, every workload converged to
//! copies of its latest images, every edit survived, and every backup reference any workload
//! ever held resolves at its pinned digest.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;

use crate::daemon::Daemon;
use crate::recorder::Recorder;
use crate::report::Report;
use crate::rng::Rng;
use crate::scenarios::convergence;
use crate::scenarios::editor::Editor;
use crate::scenarios::populate;
use crate::source::Source;
use crate::world::{Bins, World};
use crate::{argv, processes};

pub struct Plan {
    pub worlds: usize,
    pub kills_per_world: usize,
    pub workloads: usize,
    pub images: usize,
}

/// What the worlds added up to.
#[derive(Default)]
struct Totals {
    kills: usize,
    during_copy: usize,
    survivors: usize,
    repos: usize,
    pushed_twice: usize,
    copy_runs: usize,
    converged: usize,
    workloads: usize,
    edits: usize,
    edits_kept: usize,
    references: usize,
    unresolved: usize,
    stale: usize,
    skopeo_runs: usize,
    violations: usize,
}

pub fn run(bins: &Bins, plan: &Plan, rng: &mut Rng, report: &mut Report) -> Result<()> {
    report.section("SIGKILL during cold runs");
    let source = Source::start(plan.images, rng.next_u64(), 128 * 1024)?;
    let mut totals = Totals::default();
    for w in 0..plan.worlds {
        report.note(format!("world {}/{}", w + 1, plan.worlds));
        one_world(bins, plan, &source, &mut rng.fork(), report, &mut totals)?;
    }
    let t = &totals;
    report.figure(format!(
        "{} fresh worlds, {} workloads over {} multi-arch images each; {} SIGKILLs ({} while skopeo copied)",
        plan.worlds, plan.workloads, plan.images, t.kills, t.during_copy
    ));
    report.figure(format!(
        "{} skopeo processes outlived their killed daemon",
        t.survivors
    ));
    report.figure(format!(
        "{} repositories copied, {} of them twice ({} copy runs started, interrupted ones included)",
        t.repos, t.pushed_twice, t.copy_runs
    ));
    report.figure(format!(
        "{}/{} workloads converged; {}/{} concurrent edits kept",
        t.converged, t.workloads, t.edits_kept, t.edits
    ));
    report.figure(format!(
        "{} backup references ever written, {} not resolving at their pinned digest",
        t.references, t.unresolved
    ));
    report.figure(format!(
        "{} stale entries left in tmp_dir; {} skopeo runs recorded, {} with an input-derived flag or another transport",
        t.stale, t.skopeo_runs, t.violations
    ));
    Ok(())
}

fn one_world(
    bins: &Bins,
    plan: &Plan,
    source: &Source,
    rng: &mut Rng,
    report: &mut Report,
    totals: &mut Totals,
) -> Result<()> {
    let mut world = World::new(bins)?;
    let host = source.registry.host();
    world.insecure.push(host.clone());
    let recorder = Recorder::start(Arc::clone(&world.sim));
    let expected = populate::workloads(
        &world,
        source,
        &host,
        "shop",
        4,
        plan.workloads,
        plan.images,
    )?;
    let images: Vec<String> = (0..plan.images)
        .map(|i| source.reference(&host, i))
        .collect();
    let editor = Editor::start(Arc::clone(&world.sim), &expected, images, rng.fork());
    let log = world.path("daemon.log");
    // Every skopeo of this world has its tmp_dir on its command line.
    let needle = world.tmp_dir.to_string_lossy().into_owned();
    for _ in 0..plan.kills_per_world {
        let mut daemon = Daemon::start(world.command(&[]), &log)?;
        std::thread::sleep(rng.millis(200, 3500));
        let copying = processes::skopeo_children(daemon.pid(), &needle);
        daemon.kill();
        totals.kills += 1;
        totals.during_copy += usize::from(copying > 0);
        let left = processes::survivors(&needle, Duration::from_secs(3));
        totals.survivors += left.len();
        report.check(
            left.is_empty(),
            format!(
                "skopeo outlived its SIGKILLed daemon: {}",
                left.iter()
                    .map(|p| format!("pid {} (parent {}): {}", p.pid, p.parent, p.args.join(" ")))
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
        );
        for p in left {
            processes::signal(p.pid, rustix::process::Signal::KILL);
        }
    }
    let mut daemon = Daemon::start(world.command(&[]), &log)?;
    std::thread::sleep(rng.millis(500, 2000));
    let edits = editor.finish();
    let expected = convergence::apply_edits(expected, &edits);
    let deadline = Instant::now() + Duration::from_secs(240);
    let converged = convergence::wait(&world, &expected, deadline);
    let stopped = daemon.stop(Duration::from_secs(60));
    report.check(
        stopped == Some(0),
        format!("the last daemon stopped with {stopped:?} on SIGTERM"),
    );
    let history = recorder.finish();
    report.check(history.gaps == 0, "the recorder missed states");
    totals.workloads += expected.len();
    totals.converged += converged.converged;
    for problem in converged.problems.iter().take(5) {
        report.check(false, problem);
    }
    totals.edits += edits.len();
    totals.edits_kept += convergence::edits_kept(&world, &edits, report);
    let refs = convergence::backup_references(&history, &world);
    totals.references += refs.len();
    for r in &refs {
        if !crate::http::resolves(&world.backup.host(), r) {
            totals.unresolved += 1;
            report.check(false, format!("{r} does not resolve at its pinned digest"));
        }
    }
    let pushes = world.backup_proxy.tag_pushes();
    totals.repos += pushes.len();
    let twice: BTreeMap<_, _> = pushes.iter().filter(|(_, n)| **n > 1).collect();
    totals.pushed_twice += twice.len();
    report.check(
        twice.is_empty(),
        format!("repositories copied twice: {twice:?}"),
    );
    let stale = world.tmp_entries();
    totals.stale += stale.len();
    report.check(stale.is_empty(), format!("left in tmp_dir: {stale:?}"));
    let (runs, violations) = argv::check(&world.skopeo_log);
    totals.skopeo_runs += runs;
    totals.copy_runs += argv::read(&world.skopeo_log)
        .0
        .iter()
        .filter(|a| a.iter().any(|x| x == "copy"))
        .count();
    totals.violations += violations.len();
    for v in violations.iter().take(5) {
        report.check(false, v);
    }
    let log = std::fs::read_to_string(&log).unwrap_or_default();
    report.check(!log.contains("panicked"), "a daemon panicked (see its log)");
    world.insecure.clear();
    Ok(())
}
