//! skopeo, recorded: `make bench` points image-cloner and its baseline at this program, which
//! appends one line (the subcommand and the `docker://` references) to the file named by
//! `BENCH_SKOPEO_LOG`, then *execs* the real skopeo (`BENCH_SKOPEO_REAL`, default `skopeo` on
//! PATH) with the same arguments. Exec, not a child: the process, its pid, its CPU time and
//! its exit status stay skopeo's.

use std::ffi::OsString;
use std::io::Write as _;
use std::os::unix::process::CommandExt as _;
use std::process::{Command, ExitCode};

use demo::cost::skopeo_record::{LOG_ENV, REAL_ENV, record_line};

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    if let Some(log) = std::env::var_os(LOG_ENV) {
        // O_APPEND with one write per line: concurrent runs never interleave a line.
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .and_then(|mut f| f.write_all(record_line(&args).as_bytes()));
        if let Err(e) = written {
            eprintln!(
                "skopeo-recorder: appending to {}: {e}",
                log.to_string_lossy()
            );
            return ExitCode::from(125);
        }
    }
    let real = std::env::var_os(REAL_ENV).unwrap_or_else(|| "skopeo".into());
    let error = Command::new(&real).args(&args).exec();
    eprintln!(
        "skopeo-recorder: running {}: {error}",
        real.to_string_lossy()
    );
    ExitCode::from(127)
}
