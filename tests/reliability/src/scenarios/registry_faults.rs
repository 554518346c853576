//! Registries that misbehave during a cold run of the daemon: the backup registry out of reach
//! at start and again in the middle (its proxy closing every connection, open uploads
//! included), and a source that throttles (429 with `Retry-After`, through a
//! loopback proxy). The daemon must converge, copy each repository once, write each workload
//! at most once, and not hammer a registry that is down or throttling (counted).

use std::time::{Duration, Instant};

use anyhow::Result;

use crate::daemon::Daemon;
use crate::proxy::{Proxy, Throttling};
use crate::report::Report;
use crate::rng::Rng;
use crate::scenarios::convergence::{self, Expected};
use crate::scenarios::populate;
use crate::source::Source;
use crate::world::{Bins, World};

pub fn run(bins: &Bins, short: bool, rng: &mut Rng, report: &mut Report) -> Result<()> {
    report.section("registry faults");
    let (count, images) = if short { (20, 4) } else { (40, 8) };
    let source = Source::start(images, rng.next_u64(), 64 * 1024)?;
    backup_down(bins, &source, count, images, rng, report)?;
    throttled_source(bins, &source, count, images, report)?;
    Ok(())
}

/// The common end of both: converged, one copy per repository, one write per workload, how
/// many skopeo runs it took.
fn settle(
    world: &World,
    expected: &Expected,
    daemon: &mut Daemon,
    report: &mut Report,
) -> (usize, usize, usize) {
    // The daemon retries a transient failure after 5 s doubling to 5 min: after two outages a
    // workload may wait minutes for its next attempt.
    let converged = convergence::wait(world, expected, Instant::now() + Duration::from_secs(420));
    report.check(
        converged.problems.is_empty(),
        format!(
            "not converged: {:?}",
            converged.problems.iter().take(5).collect::<Vec<_>>()
        ),
    );
    let stopped = daemon.stop(Duration::from_secs(60));
    report.check(
        stopped == Some(0),
        format!("the daemon stopped with {stopped:?}"),
    );
    report.check(!daemon.log().contains("panicked"), "the daemon panicked");
    let pushes = world.backup_proxy.tag_pushes();
    let twice: Vec<_> = pushes.iter().filter(|(_, n)| **n > 1).collect();
    report.check(
        twice.is_empty(),
        format!("repositories copied twice: {twice:?}"),
    );
    let writes = populate::successful_patches(world);
    let many: Vec<_> = writes.iter().filter(|(_, n)| **n > 1).collect();
    report.check(
        many.is_empty(),
        format!("workloads written more than once: {many:?}"),
    );
    let (runs, violations) = crate::argv::check(&world.skopeo_log);
    for v in violations.iter().take(3) {
        report.check(false, v);
    }
    (converged.converged, pushes.len(), runs)
}

fn backup_down(
    bins: &Bins,
    source: &Source,
    count: usize,
    images: usize,
    rng: &mut Rng,
    report: &mut Report,
) -> Result<()> {
    let mut world = World::new(bins)?;
    let host = source.registry.host();
    world.insecure.push(host.clone());
    let expected = populate::workloads(&world, source, &host, "down", 2, count, images)?;
    world.backup_proxy.set_down(true);
    let mut daemon = Daemon::start(world.command(&[]), &world.path("daemon.log"))?;
    let first = rng.millis(6000, 10_000);
    std::thread::sleep(first);
    let refused_at_start = world.backup_proxy.requests().len();
    world.backup_proxy.set_down(false);
    // Down again once some copies have landed.
    let deadline = Instant::now() + Duration::from_secs(60);
    while world.backup_proxy.tag_pushes().len() < images / 3 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    world.backup_proxy.set_down(true);
    let before = world.backup_proxy.requests().len();
    let second = rng.millis(6000, 10_000);
    std::thread::sleep(second);
    let during = world.backup_proxy.requests().len() - before;
    world.backup_proxy.set_down(false);
    let (converged, repos, runs) = settle(&world, &expected, &mut daemon, report);
    report.check(
        runs <= images * 12,
        format!("{runs} skopeo runs for {images} images across two outages (a hot loop?)"),
    );
    report.figure(format!(
        "backup down for {:.1} s at start and {:.1} s mid-run: {converged}/{count} converged, {repos} repositories copied once each, {runs} skopeo runs for {images} images; {refused_at_start} requests met the first outage, {during} the second",
        first.as_secs_f64(),
        second.as_secs_f64()
    ));
    Ok(())
}

fn throttled_source(
    bins: &Bins,
    source: &Source,
    count: usize,
    images: usize,
    report: &mut Report,
) -> Result<()> {
    let mut world = World::new(bins)?;
    let front = Proxy::start(&source.registry.host())?;
    front.throttle(Some(Throttling {
        every: 3,
        retry_after: 1,
        remaining: 40,
    }));
    world.insecure.push(front.host().to_owned());
    let expected =
        populate::workloads(&world, source, front.host(), "throttled", 2, count, images)?;
    let mut daemon = Daemon::start(world.command(&[]), &world.path("daemon.log"))?;
    let (converged, repos, runs) = settle(&world, &expected, &mut daemon, report);
    let requests = front.requests().len();
    report.check(
        requests <= images * 60,
        format!("{requests} requests to the throttling source for {images} images (a hot loop?)"),
    );
    report.figure(format!(
        "source throttling (429, Retry-After: 1, one request in three): {} 429s sent, {requests} requests in all for {images} images; {converged}/{count} converged, {repos} repositories copied once each, {runs} skopeo runs",
        front.throttled()
    ));
    Ok(())
}
