//! One file per subcommand, and what the cluster commands share ([`session`]).

pub mod check_config;
pub mod copy;
pub mod error;
pub mod plan;
pub mod restore;
pub mod run;
pub mod session;
pub mod status;
mod wake_floor;

pub use error::CommandError;

use crate::settings::Settings;
use crate::settings::cli::Command;

/// Runs a command: `Ok(true)` when all of it succeeded, `Ok(false)` when it ran but something
/// in it failed (the command's output says what).
pub async fn execute(command: Command, settings: &Settings) -> Result<bool, CommandError> {
    let wake_floor = tokio::spawn(wake_floor::keep_a_timer_due());
    let result = run_command(command, settings).await;
    wake_floor.abort();
    result
}

async fn run_command(command: Command, settings: &Settings) -> Result<bool, CommandError> {
    match command {
        Command::CheckConfig => Ok(check_config::run(settings)),
        Command::Copy { images } => Ok(copy::run(settings, &images).await),
        Command::Run { once: true } => run::once(settings).await,
        Command::Run { once: false } => run::daemon(settings).await,
        Command::Plan {
            output,
            check_backup,
        } => plan::run(settings, output, check_backup).await,
        Command::Restore {
            namespace,
            selector,
            dry_run,
            allow_repatch,
            allow_unmatched,
        } => {
            let filter = restore::RestoreFilter {
                namespace,
                selector,
                dry_run,
                options: crate::reconcile::restore::RestoreOptions {
                    opt_out: !allow_repatch,
                    allow_unmatched,
                },
            };
            restore::run(settings, &filter).await
        }
        Command::Status { output } => status::run(settings, output).await,
    }
}
