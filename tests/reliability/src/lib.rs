//! `make reliability` (and its short form in CI): image-cloner under SIGKILL, registry and
//! API-server faults, hostile input, and credential markers, on the simulator with real
//! registries and real skopeo. Prints what it injected and tried, and what was lost; fails
//! when any promise did not hold.
//!
//! Run by `tests/suite.rs` with the environment saying how:
//!
//! ```text
//! RELIABILITY=short|full  RELIABILITY_SEED=0x…  RELIABILITY_ONLY=kills,registry,api,malformed,credentials
//! IMAGE_CLONER_BIN=target/release/image-cloner   (the binary under test)
//! ```

mod argv;
mod daemon;
mod http;
mod malformed;
mod processes;
mod proxy;
mod recorder;
mod report;
mod rng;
mod scenarios;
mod source;
mod world;

use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context as _, Result, bail};

use crate::report::Report;
use crate::rng::Rng;
use crate::world::Bins;

/// The scenarios, in the order they run.
const SCENARIOS: &[&str] = &["malformed", "credentials", "api", "registry", "kills"];

struct Args {
    short: bool,
    seed: u64,
    only: Vec<String>,
}

/// The run the environment asks for; `None` when `RELIABILITY` is not set.
fn args() -> Result<Option<Args>> {
    let short = match std::env::var("RELIABILITY").ok().as_deref() {
        None | Some("") => return Ok(None),
        Some("short") => true,
        Some("full") => false,
        Some(other) => bail!("RELIABILITY={other:?}: expected short or full"),
    };
    let seed = match std::env::var("RELIABILITY_SEED")
        .ok()
        .filter(|s| !s.is_empty())
    {
        Some(v) => parse_seed(&v).with_context(|| format!("RELIABILITY_SEED={v:?}"))?,
        None => rng::fresh_seed(),
    };
    let only: Vec<String> = match std::env::var("RELIABILITY_ONLY")
        .ok()
        .filter(|s| !s.is_empty())
    {
        Some(v) => v.split(',').map(|s| s.trim().to_owned()).collect(),
        None => SCENARIOS.iter().map(|s| (*s).to_owned()).collect(),
    };
    if let Some(bad) = only.iter().find(|s| !SCENARIOS.contains(&s.as_str())) {
        bail!(
            "RELIABILITY_ONLY: unknown scenario {bad:?}; known: {}",
            SCENARIOS.join(", ")
        );
    }
    Ok(Some(Args { short, seed, only }))
}

fn parse_seed(v: &str) -> Result<u64> {
    Ok(match v.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16)?,
        None => v.parse()?,
    })
}

fn run(args: &Args, recording_skopeo: &std::path::Path, report: &mut Report) -> Result<()> {
    let bins = Bins::find(recording_skopeo)?;
    let mut rng = Rng::new(args.seed);
    for name in SCENARIOS
        .iter()
        .filter(|s| args.only.iter().any(|o| o == *s))
    {
        let started = Instant::now();
        let mut rng = rng.fork();
        match *name {
            "kills" => scenarios::kills::run(&bins, &kills_plan(args.short), &mut rng, report)?,
            "malformed" => malformed::run(&bins, args.short, report)?,
            "credentials" => scenarios::credentials::run(&bins, &mut rng, report)?,
            "api" => scenarios::api_faults::run(&bins, args.short, &mut rng, report)?,
            "registry" => scenarios::registry_faults::run(&bins, args.short, &mut rng, report)?,
            _ => unreachable!("listed in SCENARIOS"),
        }
        report.note(format!("{name}: {:.0} s", started.elapsed().as_secs_f64()));
    }
    Ok(())
}

fn kills_plan(short: bool) -> scenarios::kills::Plan {
    if short {
        scenarios::kills::Plan {
            worlds: 2,
            kills_per_world: 2,
            workloads: 60,
            images: 6,
        }
    } else {
        scenarios::kills::Plan {
            worlds: 5,
            kills_per_world: 4,
            workloads: 200,
            images: 20,
        }
    }
}

/// The suite, as `tests/suite.rs` runs it.
pub fn main(recording_skopeo: &std::path::Path) -> ExitCode {
    let args = match args() {
        Ok(Some(a)) => a,
        Ok(None) => {
            println!(
                "reliability: skipped (RELIABILITY is not set; run `make reliability` or `make reliability-short`)"
            );
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("reliability: {e:#}");
            return ExitCode::from(2);
        }
    };
    println!(
        "reliability ({}), seed {:#x} (replay with RELIABILITY_SEED={:#x})",
        if args.short { "short" } else { "full" },
        args.seed,
        args.seed
    );
    let started = Instant::now();
    let mut report = Report::default();
    if let Err(e) = run(&args, recording_skopeo, &mut report) {
        report.check(false, format!("the suite could not run: {e:#}"));
    }
    let ok = report.summary();
    println!(
        "\n{:.0} s, seed {:#x}",
        started.elapsed().as_secs_f64(),
        args.seed
    );
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
