//! `kube-sim serve`: the simulator as a process, for `make demo`, `make bench` and scripts.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};
use kube_sim::{Options, Sim};

#[derive(Parser)]
#[command(
    version,
    about = "A Kubernetes API server simulator (tests, benchmarks, demo)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the Kubernetes API over HTTPS on loopback until interrupted.
    Serve {
        /// Loopback address to listen on; port 0 picks a free port.
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: SocketAddr,
        /// Where to write a kubeconfig for kubectl and kube-rs, once listening.
        #[arg(long)]
        kubeconfig_out: Option<PathBuf>,
        /// A directory of Kubernetes YAML files (multi-document) to load first.
        #[arg(long)]
        seed: Option<PathBuf>,
        /// How many changes watches can resume from before they get 410 Expired.
        #[arg(long, default_value_t = 50_000)]
        history: usize,
    },
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let Command::Serve {
        listen,
        kubeconfig_out,
        seed,
        history,
    } = Cli::parse().command;
    let options = Options {
        listen,
        history,
        bookmark_interval: Duration::from_secs(5),
        seed,
    };
    let sim = match Sim::serve(options).await {
        Ok(sim) => sim,
        Err(e) => {
            eprintln!("kube-sim: {e}");
            return std::process::ExitCode::from(1);
        }
    };
    if let Some(path) = &kubeconfig_out
        && let Err(e) = sim.write_kubeconfig(path)
    {
        eprintln!("kube-sim: {e}");
        return std::process::ExitCode::from(1);
    }
    eprintln!(
        "kube-sim: serving {} (kubeconfig: {})",
        sim.url(),
        kubeconfig_out
            .as_ref()
            .map_or("not written".into(), |p| p.display().to_string())
    );
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("kube-sim: {e}");
            return std::process::ExitCode::from(1);
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    if let Some(path) = &kubeconfig_out {
        let _ = std::fs::remove_file(path);
    }
    std::process::ExitCode::SUCCESS
}
