//! The API server misbehaves during a cold run of the daemon: bursts of 500s, 409s and 429s
//! (with `Retry-After`), latency, another client's write between the daemon's read and its
//! write (its `test` op fails: 422), dropped watches, and a compacted history (410 on the
//! re-watch). The daemon must converge, write each workload at most once, and go quiet
//! afterwards (no hot loop).

use std::time::{Duration, Instant};

use anyhow::Result;
use kube_sim::{FailRule, Interference};
use serde_json::json;

use crate::daemon::Daemon;
use crate::report::Report;
use crate::rng::Rng;
use crate::scenarios::convergence;
use crate::scenarios::populate;
use crate::source::Source;
use crate::world::{Bins, World};

fn rule(verb: Option<&str>, count: u64, status: u16, retry_after: Option<u64>) -> FailRule {
    FailRule {
        verb: verb.map(str::to_owned),
        resource: None,
        count,
        status,
        retry_after,
    }
}

pub fn run(bins: &Bins, short: bool, rng: &mut Rng, report: &mut Report) -> Result<()> {
    report.section("API-server faults");
    let (count, images) = if short { (24, 4) } else { (60, 6) };
    let source = Source::start(images, rng.next_u64(), 32 * 1024)?;
    let mut world = World::new(bins)?;
    let host = source.registry.host();
    world.insecure.push(host.clone());
    let mut expected = populate::workloads(&world, &source, &host, "api", 3, count, images)?;
    let faults = world.sim.faults();
    faults.reset_counters();
    // Active from the daemon's first request on.
    faults.fail_next(rule(Some("patch"), 6, 500, None));
    faults.fail_next(rule(Some("list"), 3, 500, None));
    faults.fail_next(rule(Some("patch"), 4, 409, None));
    faults.fail_next(rule(None, 8, 429, Some(1)));
    faults.set_latency(Duration::from_millis(150));
    // Another client's write just before the daemon's: single-container Deployments only (a
    // merge patch replaces the whole container list).
    let mut interfered = 0;
    for (key, containers) in expected.iter_mut() {
        if key.0 != "deployments" || containers.len() != 1 || interfered == 3 {
            continue;
        }
        let image = source.reference(&host, rng.below(images as u64) as usize);
        faults.interfere_next_write(Interference {
            resource: "deployments".into(),
            namespace: Some(key.1.clone()),
            name: Some(key.2.clone()),
            merge_patch: json!({"metadata": {"labels": {"edited": "interference"}},
                "spec": {"template": {"spec": {"containers": [{"name": "app", "image": image}]}}}}),
        });
        containers[0].1 = image;
        interfered += 1;
    }
    let mut daemon = Daemon::start(world.command(&[]), &world.path("daemon.log"))?;
    let mut dropped = 0;
    for step in 0..4 {
        std::thread::sleep(rng.millis(1500, 3500));
        world.store().drop_watches();
        dropped += 1;
        if step == 1 {
            world.store().expire();
            faults.fail_next(rule(Some("watch"), 3, 500, None));
        }
        if step == 2 {
            faults.set_latency(Duration::ZERO);
        }
    }
    let converged = convergence::wait(&world, &expected, Instant::now() + Duration::from_secs(180));
    faults.clear();
    report.check(
        converged.problems.is_empty(),
        format!(
            "not converged: {:?}",
            converged.problems.iter().take(5).collect::<Vec<_>>()
        ),
    );
    let requests = faults.requests();
    let injected = requests
        .iter()
        .filter(|r| matches!(r.code, 409 | 429 | 500))
        .count();
    let conflicts = requests.iter().filter(|r| r.code == 422).count();
    let writes = populate::successful_patches(&world);
    let max = writes.values().copied().max().unwrap_or(0);
    report.check(
        max <= 1,
        format!(
            "a workload was written more than once: {:?}",
            writes.iter().filter(|(_, n)| **n > 1).collect::<Vec<_>>()
        ),
    );
    // Quiet once converged: only the readiness probe and watch upkeep.
    faults.reset_counters();
    std::thread::sleep(Duration::from_secs(10));
    let idle = faults.requests().len();
    report.check(
        idle <= 12,
        format!("{idle} API requests in 10 s after converging (a hot loop?)"),
    );
    let stopped = daemon.stop(Duration::from_secs(60));
    report.check(
        stopped == Some(0),
        format!("the daemon stopped with {stopped:?}"),
    );
    report.check(!daemon.log().contains("panicked"), "the daemon panicked");
    report.figure(format!(
        "{} workloads: {} injected 500/409/429 answers, {} edits between read and write (422 on the daemon's patch), {} dropped watch rounds, 1 compaction (410), 150 ms latency",
        count, injected, conflicts, dropped
    ));
    report.figure(format!(
        "{}/{} converged; {} API requests in all, at most {} successful write per workload; {} requests in the 10 s after",
        converged.converged, count, requests.len(), max, idle
    ));
    Ok(())
}
