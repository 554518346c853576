//! DESIGN.md's takeover target: with two daemons on one Lease (the default 15 s duration), a
//! standby leads within the lease duration plus one renew period after the leader is killed
//! with SIGKILL. Each round starts a fresh standby, waits a different part of a renew period
//! (so the kill meets the leader's renewal cycle at different points), SIGKILLs the leader and
//! times the standby's `image_cloner_leader` gauge to 1; the new leader is the next round's.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use demo::{Daemon, cloner_command, heading, scrape, secs, tail};
use kube_sim::Sim;

pub const ROUNDS: usize = 3;
/// The defaults: the duration of `lease_duration`, a renewal when a third is left.
pub const LEASE: Duration = Duration::from_secs(15);
pub const RENEW_PERIOD: Duration = Duration::from_secs(10);
const WAIT: Duration = Duration::from_secs(120);

/// The time from each SIGKILL to the standby leading.
pub struct Figures {
    pub takeovers: Vec<Duration>,
}

impl Figures {
    pub fn target() -> Duration {
        LEASE + RENEW_PERIOD
    }

    pub fn worst(&self) -> Duration {
        self.takeovers
            .iter()
            .copied()
            .max()
            .unwrap_or(Duration::MAX)
    }
}

fn leading(daemon: &Daemon, addr: &str) -> Result<Option<bool>> {
    daemon.check_alive()?;
    let (_, m) = scrape(addr)?;
    Ok(m.get("image_cloner_leader").map(|v| *v == 1.0))
}

/// Polls the gauge until it reads `want`; returns how long that took.
fn until_leading(daemon: &Daemon, addr: &str, want: bool) -> Result<Duration> {
    let started = Instant::now();
    while leading(daemon, addr)? != Some(want) {
        if started.elapsed() > WAIT {
            bail!(
                "image_cloner_leader did not read {} within {WAIT:?}; end of the log:\n{}",
                u8::from(want),
                tail(&daemon.log(), 20)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(started.elapsed())
}

/// `bench takeover`: only this figure (the rest takes many minutes).
pub fn only() -> bool {
    std::env::args().nth(1).as_deref() == Some("takeover")
}

/// The figure alone, next to its target.
pub fn alone(cloner: &Path, source: &str, work: &Path) -> Result<()> {
    let kubeconfig = work.join("kubeconfig-takeover");
    let env = super::base_env(source, source, &kubeconfig);
    let f = measure(cloner, &env, work)?;
    let met = f.worst() <= Figures::target();
    println!(
        "\n  takeover, per round: {}; target ≤ {} (lease + renew period): {}",
        f.takeovers
            .iter()
            .map(|d| secs(*d))
            .collect::<Vec<_>>()
            .join(", "),
        secs(Figures::target()),
        if met { "met" } else { "MISSED" }
    );
    Ok(())
}

/// Runs the rounds on a simulator of their own; `env` is the daemons' environment (registries,
/// concurrency) to which the leader-election settings are added.
pub fn measure(cloner: &Path, env: &[(&'static str, String)], work: &Path) -> Result<Figures> {
    heading(&format!(
        "Takeover: two daemons on one Lease ({} s, renewed every {} s), the leader SIGKILLed, {ROUNDS} rounds",
        LEASE.as_secs(),
        RENEW_PERIOD.as_secs()
    ));
    let sim = Sim::start(kube_sim::Options::default()).context("starting the simulator")?;
    let kubeconfig = work.join("kubeconfig-takeover");
    sim.write_kubeconfig(&kubeconfig)?;
    let start = |n: usize| -> Result<(Daemon, String)> {
        let name = format!("replica-{n}");
        let home = work.join(format!("takeover-home-{n}"));
        std::fs::create_dir_all(&home)?;
        let mut vars = env.to_vec();
        vars.extend([
            ("IMAGE_CLONER_KUBECONFIG", kubeconfig.display().to_string()),
            ("IMAGE_CLONER_LEADER_ELECTION", "on".into()),
            ("IMAGE_CLONER_LEASE_NAMESPACE", "default".into()),
            ("POD_NAME", name.clone()),
        ]);
        let log = work.join(format!("takeover-{n}.log"));
        let daemon = Daemon::start(cloner_command(cloner, &home, &vars), &log)?;
        let addr = daemon.metrics_address()?;
        Ok((daemon, addr))
    };
    let (mut leader, mut leader_addr) = start(0)?;
    until_leading(&leader, &leader_addr, true)?;
    let mut takeovers = Vec::new();
    for round in 1..=ROUNDS {
        let (standby, addr) = start(round)?;
        until_leading(&standby, &addr, false)?;
        std::thread::sleep(RENEW_PERIOD.mul_f64(round as f64 / (ROUNDS + 1) as f64));
        leader.kill();
        let took = until_leading(&standby, &addr, true)?;
        println!(
            "  round {round}: replica-{round} led {} after replica-{} was SIGKILLed",
            secs(took),
            round - 1
        );
        takeovers.push(took);
        (leader, leader_addr) = (standby, addr);
    }
    let _ = leader_addr;
    leader.stop(Duration::from_secs(10));
    Ok(Figures { takeovers })
}
