//! Wiring only: parse the command line, load the settings, start logging, run the command.

use std::process::ExitCode;

use image_cloner::commands;
use image_cloner::ops::{allocator, huge_pages, logging};
use image_cloner::reconcile::error::with_causes;
use image_cloner::settings::cli::{self, Command};
use image_cloner::settings::{self, Inputs};

/// mimalloc rather than glibc's malloc: in the cold run (2,000 workloads, 4,000 API calls) glibc's
/// allocator was a fifth of image-cloner's own CPU (`perf`: `_int_malloc`, `unlink_chunk`,
/// `malloc_consolidate`), its free-list work on many short-lived buffers of many sizes.
/// Version 2 (Cargo.toml): mimalloc 3's defaults (huge pages, memory returned after a second)
/// held 83–85 MiB where glibc held 52 MiB in the warm restart of 10,000 workloads (DESIGN:
/// ≤ 64 MiB); v2, with the daemon's huge pages off (`ops::huge_pages`), holds 52.6 MiB for the
/// same CPU. Entered at its plain `mi_malloc` where a word's alignment is enough
/// (`ops::allocator`).
#[global_allocator]
static ALLOCATOR: allocator::Mimalloc = allocator::Mimalloc;

/// Exit status for invalid settings, distinct from a run that failed.
const EXIT_BAD_SETTINGS: u8 = 2;

fn main() -> ExitCode {
    // First, so that no huge page is taken after the runtime's own first allocations.
    let huge_pages_off = huge_pages::off();
    let (cli, flags) = cli::parse();
    let exits_when_done = cli.command.exits_when_done();
    if exits_when_done {
        // Failing, the command runs as it did with them off: nothing to report.
        let _ = huge_pages::back_on();
    }
    let inputs = Inputs {
        config_file: cli.config.clone(),
        env: std::env::vars_os().collect(),
        task: cli.command.task(),
        flags,
    };
    let loaded = match settings::load(&inputs) {
        Ok(loaded) => loaded,
        Err(e) => {
            eprintln!("image-cloner: invalid settings:");
            for problem in &e.problems {
                eprintln!("  {problem}");
            }
            return ExitCode::from(EXIT_BAD_SETTINGS);
        }
    };
    let settings = loaded.settings;
    logging::init(settings.log_format, &settings.log_level);
    for warning in &loaded.warnings {
        tracing::warn!("{warning}");
    }
    if let (Err(e), false) = (&huge_pages_off, exits_when_done) {
        tracing::warn!(
            "transparent huge pages could not be turned off ({e}): the daemon's memory follows the host's THP mode"
        );
    }
    if let Command::CheckConfig = cli.command {
        print!("{settings}");
        return ExitCode::SUCCESS;
    }
    // One thread: the bytes move in skopeo processes; what runs here is I/O-bound orchestration.
    // Measured on 2,000 patches and 2,000 Events (`run --once`, images already in the backup):
    // 0.63–0.77 s of CPU instead of 0.96–1.04 s with a worker per core, CPU that competes with
    // skopeo during a cold start. Nothing here blocks a thread for long (file reads of a few KiB).
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("image-cloner: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(commands::execute(cli.command, &settings)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            // Once, and not through tracing: log_level=off must not hide why the command failed.
            eprintln!("image-cloner: {}", with_causes(&e));
            ExitCode::FAILURE
        }
    }
}
