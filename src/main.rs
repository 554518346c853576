//! Wiring only: parse the command line, load the settings, start logging, run the command.

use std::process::ExitCode;

use image_cloner::cli::{self, Command};
use image_cloner::mirror::Mirror;
use image_cloner::settings::{self, Inputs};
use image_cloner::skopeo::Skopeo;
use image_cloner::{copy_command, logging};

/// Exit status for invalid settings, distinct from a run that failed.
const EXIT_BAD_SETTINGS: u8 = 2;

fn main() -> ExitCode {
    let (cli, flags) = cli::parse();
    let inputs = Inputs {
        config_file: cli.config.clone(),
        env: std::env::vars().collect(),
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
    match cli.command {
        Command::CheckConfig => {
            print!("{settings}");
            ExitCode::SUCCESS
        }
        Command::Copy { images } => {
            let runtime = match tokio::runtime::Runtime::new() {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("image-cloner: cannot start the async runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let mirror = Mirror::new(
                Skopeo::new(settings.skopeo_options()),
                settings.mirror_options(),
            );
            let rows = runtime.block_on(copy_command::run(&mirror, &images));
            print!("{}", copy_command::render(&rows));
            if rows.iter().all(|r| r.result.is_ok()) {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
    }
}
