//! `testbed`: run a real registry, or fill one with test images — for `make
//! demo`, `make bench` and manual experiments.
//!
//! ```text
//! testbed registry --dir DIR --ready-file FILE [--auth USER:PASS] [--tls] [--schema1]
//! testbed seed --registry HOST --count N --platforms N --layer-kib K [--prefix NAME] [--tls-verify=false]
//! ```

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError, mpsc};
use std::thread;
use std::time::Duration;

use clap::{ArgAction, Args, Parser, Subcommand};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;
use testbed::{
    Access, BuiltImage, Credentials, Creds, ImageSpec, Platform, PushOptions, Registry,
    RegistryOptions, TestbedError,
};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Parser)]
#[command(
    name = "testbed",
    version,
    about = "Real registries and test images on loopback"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a docker-registry on a free 127.0.0.1 port until SIGTERM or SIGINT.
    ///
    /// When it answers, writes FILE: {"host", "url", "dir", "ca_dir"?, "username"?,
    /// "password"?}. On SIGTERM/SIGINT stops the registry, removes FILE and exits 0.
    Registry(RegistryArgs),
    /// Build COUNT distinct images (seed = index) and push each as `<prefix>-<i>:1.0`
    /// with `skopeo copy --all`, printing `repo:tag digest` per line.
    Seed(SeedArgs),
}

#[derive(Args)]
struct RegistryArgs {
    /// Directory for config, storage, certificates and log (kept afterwards).
    #[arg(long)]
    dir: PathBuf,
    /// JSON file written (atomically) once the registry answers.
    #[arg(long)]
    ready_file: PathBuf,
    /// Require basic auth with these credentials (htpasswd).
    #[arg(long, value_name = "USER:PASS", value_parser = parse_creds)]
    auth: Option<Credentials>,
    /// Serve HTTPS with a fresh CA; its directory is `ca_dir` in the ready file.
    #[arg(long)]
    tls: bool,
    /// Accept schema 1 manifests (`skopeo copy --format v2s1`).
    #[arg(long)]
    schema1: bool,
}

#[derive(Args)]
struct SeedArgs {
    /// Registry as HOST:PORT.
    #[arg(long, value_name = "HOST")]
    registry: String,
    /// Number of images.
    #[arg(long, default_value_t = 1)]
    count: usize,
    /// Platforms per image (1 = a single manifest, more = an index), at most 7.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=7))]
    platforms: u8,
    /// Layers per platform.
    #[arg(long, default_value_t = 2)]
    layers: usize,
    /// Size of each layer's file, KiB.
    #[arg(long, default_value_t = 64)]
    layer_kib: usize,
    /// Repository name prefix: images are `<prefix>-<i>:<tag>`.
    #[arg(long, default_value = "seed")]
    prefix: String,
    #[arg(long, default_value = "1.0")]
    tag: String,
    /// Verify the registry's TLS certificate (`--tls-verify=false` for plain HTTP).
    #[arg(long, default_value_t = true, action = ArgAction::Set, num_args = 0..=1,
          require_equals = true, default_missing_value = "true")]
    tls_verify: bool,
    /// Directory of CA `*.crt` files for a TLS registry.
    #[arg(long)]
    cert_dir: Option<PathBuf>,
    /// Credentials for an auth registry.
    #[arg(long, value_name = "USER:PASS", value_parser = parse_creds)]
    creds: Option<Credentials>,
    /// Images built at once.
    #[arg(long, default_value_t = 2)]
    build_jobs: usize,
    /// Pushes (skopeo processes) at once.
    #[arg(long, default_value_t = 4)]
    push_jobs: usize,
}

fn parse_creds(s: &str) -> Result<Credentials, String> {
    Credentials::parse(s).ok_or_else(|| "expected USER:PASS".to_string())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Registry(args) => run_registry(args),
        Command::Seed(args) => seed(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("testbed: error: {e}");
            ExitCode::FAILURE
        }
    }
}

#[derive(serde::Serialize)]
struct Ready {
    host: String,
    url: String,
    dir: PathBuf,
    #[serde(skip_serializing_if = "Option::is_none")]
    ca_dir: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    password: Option<String>,
}

fn run_registry(args: RegistryArgs) -> Result<ExitCode, BoxError> {
    // Registered first, so a signal that arrives while starting is not lost.
    let mut signals = Signals::new([SIGTERM, SIGINT, SIGHUP])?;
    let dir = std::path::absolute(&args.dir)?;
    let mut registry = Registry::start(RegistryOptions {
        auth: args.auth,
        tls: args.tls,
        schema1: args.schema1,
        dir: Some(dir.clone()),
        request_log: false,
    })?;
    let ready = Ready {
        host: registry.host(),
        url: registry.url(),
        dir,
        ca_dir: registry.ca_dir().map(Path::to_path_buf),
        username: registry.credentials().map(|c| c.username.clone()),
        password: registry.credentials().map(|c| c.password.clone()),
    };
    write_atomically(&args.ready_file, &serde_json::to_vec_pretty(&ready)?)?;
    eprintln!(
        "testbed: registry {} ready (log: {})",
        registry.url(),
        registry.log_path().display()
    );

    let outcome = loop {
        if let Some(signal) = signals.pending().next() {
            eprintln!("testbed: signal {signal}, stopping the registry");
            break ExitCode::SUCCESS;
        }
        if !registry.is_running() {
            eprintln!(
                "testbed: the registry exited on its own; log tail:\n{}",
                registry.log_tail()
            );
            break ExitCode::FAILURE;
        }
        thread::sleep(Duration::from_millis(100));
    };
    let _ = std::fs::remove_file(&args.ready_file);
    registry.stop()?;
    Ok(outcome)
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), BoxError> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, bytes).map_err(|e| format!("writing {}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| format!("renaming to {}: {e}", path.display()))?;
    Ok(())
}

fn seed(args: SeedArgs) -> Result<ExitCode, BoxError> {
    let access = Access {
        creds: args.creds.clone().map_or(Creds::Anonymous, Creds::Basic),
        tls_verify: args.tls_verify,
        cert_dir: args.cert_dir.clone(),
    };
    let platforms = Platform::first(usize::from(args.platforms));
    let spec = |i: usize| ImageSpec {
        name: format!("{}-{i}", args.prefix),
        layers: args.layers,
        layer_size: args.layer_kib * 1024,
        seed: i as u64,
        platforms: platforms.clone(),
    };
    let opts = PushOptions {
        format: None,
        all: true,
    };

    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let first_error: Mutex<Option<TestbedError>> = Mutex::new(None);
    let digests: Mutex<Vec<Option<String>>> = Mutex::new(vec![None; args.count]);
    let fail = |e: TestbedError| {
        failed.store(true, Ordering::SeqCst);
        first_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_or_insert(e);
    };
    let (tx, rx) = mpsc::sync_channel::<(usize, BuiltImage)>(args.push_jobs.max(1));
    let rx = Mutex::new(rx);

    thread::scope(|s| {
        for _ in 0..args.build_jobs.max(1) {
            let tx = tx.clone();
            let (next, failed, fail, spec) = (&next, &failed, &fail, &spec);
            s.spawn(move || {
                while !failed.load(Ordering::SeqCst) {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    if i >= args.count {
                        break;
                    }
                    match spec(i).build() {
                        Ok(image) => {
                            if tx.send((i, image)).is_err() {
                                break;
                            }
                        }
                        Err(e) => fail(e),
                    }
                }
            });
        }
        drop(tx);
        for _ in 0..args.push_jobs.max(1) {
            let (rx, failed, fail, digests, access) = (&rx, &failed, &fail, &digests, &access);
            let (prefix, tag, host) = (&args.prefix, &args.tag, &args.registry);
            s.spawn(move || {
                loop {
                    let received = rx.lock().unwrap_or_else(PoisonError::into_inner).recv();
                    let Ok((i, image)) = received else { break };
                    if failed.load(Ordering::SeqCst) {
                        continue; // drain, so builders are not blocked
                    }
                    let repo = format!("{prefix}-{i}");
                    match testbed::push_to(&image, host, access, &repo, tag, opts) {
                        Ok(d) => {
                            digests.lock().unwrap_or_else(PoisonError::into_inner)[i] = Some(d)
                        }
                        Err(e) => fail(e),
                    }
                }
            });
        }
    });

    if let Some(e) = first_error
        .into_inner()
        .unwrap_or_else(PoisonError::into_inner)
    {
        return Err(e.into());
    }
    let digests = digests.into_inner().unwrap_or_else(PoisonError::into_inner);
    for (i, digest) in digests.iter().enumerate() {
        let digest = digest.as_deref().unwrap_or("?");
        println!("{}-{i}:{} {digest}", args.prefix, args.tag);
    }
    Ok(ExitCode::SUCCESS)
}
