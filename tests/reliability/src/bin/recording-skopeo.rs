//! A skopeo that records: appends its argument list to `$RELIABILITY_SKOPEO_LOG` (one JSON
//! array a line, each argument as UTF-8 or, when it is not, as `{"bytes": [...]}`), then
//! replaces itself with the real skopeo (`$RELIABILITY_REAL_SKOPEO`, else `skopeo` on `PATH`)
//! with the same arguments. `exec` keeps the process id, so the parent-death signal
//! image-cloner asks for and its timeouts apply to the real skopeo as they would without this.

use std::ffi::OsString;
use std::io::Write as _;
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::process::CommandExt as _;
use std::process::{Command, ExitCode};

fn argument(a: &OsString) -> serde_json::Value {
    match a.to_str() {
        Some(s) => serde_json::Value::from(s),
        None => serde_json::json!({"bytes": a.as_bytes()}),
    }
}

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    if let Some(log) = std::env::var_os("RELIABILITY_SKOPEO_LOG") {
        let line = serde_json::Value::Array(args.iter().map(argument).collect()).to_string();
        // One write of one line to a file opened for appending: lines of concurrent runs do
        // not interleave.
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .and_then(|mut f| f.write_all(format!("{line}\n").as_bytes()));
        if let Err(e) = written {
            eprintln!(
                "recording-skopeo: cannot append to {}: {e}",
                std::path::Path::new(&log).display()
            );
            return ExitCode::from(125);
        }
    }
    let real = std::env::var_os("RELIABILITY_REAL_SKOPEO").unwrap_or_else(|| "skopeo".into());
    let e = Command::new(&real).args(&args).exec();
    eprintln!(
        "recording-skopeo: cannot run {}: {e}",
        std::path::Path::new(&real).display()
    );
    ExitCode::from(126)
}
