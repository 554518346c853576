//! A skopeo process never outlives image-cloner.
//!
//! `kill_on_drop` covers a copy that is cancelled or times out while image-cloner runs; it
//! cannot cover image-cloner itself being SIGKILLed (OOM killer, `kill -9`, a node's eviction):
//! no destructor runs, and the skopeo children would copy on with no parent, only for the
//! restarted daemon to copy the same images again. The kernel covers that case: each child asks
//! for SIGKILL when its parent dies (`PR_SET_PDEATHSIG`) before it execs skopeo.
//!
//! Where that request is made matters for the cost of every copy. Made between fork and exec
//! (a `pre_exec` hook, [`die_with_parent`]), it makes std fork the whole process rather than
//! `posix_spawn` it: the kernel copies image-cloner's page tables, and every page image-cloner
//! writes afterwards takes a copy-on-write fault. In the cold bench (50 copies, 2,000
//! workloads in flight) that was 0.19 s of image-cloner's 1.03 s of CPU and 125,000 of its
//! 140,000 page faults. So the image-cloner binary starts skopeo through itself instead
//! ([`enter`]): `posix_spawn` (no copy of the address space) of `/proc/self/exe
//! __exec-skopeo <parent pid> <skopeo> <args>`, which asks for the signal, checks that its
//! parent is still the one that started it, and execs skopeo in the same process — about a
//! millisecond of CPU per copy. Test binaries and other users of the library, which have no
//! such mode, keep the `pre_exec` hook.

use std::ffi::OsString;
use std::io;
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::OnceLock;

use rustix::io::Errno;
use rustix::process::{Pid, Signal, getpid, getppid, set_parent_process_death_signal};
use tokio::process::Command;

/// The first argument that makes image-cloner the trampoline. Not a subcommand: only this
/// module writes it.
pub const TRAMPOLINE_ARG: &str = "__exec-skopeo";
/// The trampoline's exit status when skopeo could not be executed (a shell's convention).
const EXIT_CANNOT_EXEC: u8 = 126;
/// Its exit status when image-cloner died before the signal was set: nobody waits for it.
const EXIT_ORPHANED: u8 = 125;

/// Set by [`enter`] in the image-cloner binary: the program to start skopeo through.
static TRAMPOLINE: OnceLock<PathBuf> = OnceLock::new();

/// Called first in `main`. In the trampoline (the arguments start with [`TRAMPOLINE_ARG`]):
/// execs skopeo and returns only the exit status of a failure. Otherwise: makes this
/// process start skopeo through itself from now on, and returns `None`.
pub fn enter() -> Option<ExitCode> {
    let mut args = std::env::args_os().skip(1);
    if args.next().as_deref() == Some(TRAMPOLINE_ARG.as_ref()) {
        return Some(trampoline(args));
    }
    let _ = TRAMPOLINE.set(PathBuf::from("/proc/self/exe"));
    None
}

/// The trampoline: `<parent pid> <program> <args>…`.
fn trampoline(mut args: impl Iterator<Item = OsString>) -> ExitCode {
    let parent = args
        .next()
        .and_then(|p| p.to_str()?.parse::<i32>().ok())
        .and_then(Pid::from_raw);
    let (Some(parent), Some(program)) = (parent, args.next()) else {
        eprintln!("image-cloner: {TRAMPOLINE_ARG} <parent pid> <program> [args...]");
        return ExitCode::from(EXIT_CANNOT_EXEC);
    };
    if let Err(e) = set_parent_process_death_signal(Some(Signal::KILL)) {
        eprintln!("image-cloner: cannot set the parent-death signal: {e}");
        return ExitCode::from(EXIT_CANNOT_EXEC);
    }
    // A different parent means image-cloner died before the signal was set, which the signal
    // (set too late) would never report.
    if getppid() != Some(parent) {
        return ExitCode::from(EXIT_ORPHANED);
    }
    let error = std::process::Command::new(&program).args(args).exec();
    eprintln!(
        "image-cloner: cannot run {}: {error}",
        Path::new(&program).display()
    );
    ExitCode::from(EXIT_CANNOT_EXEC)
}

/// The command that runs `program` with `args` as a child that dies with image-cloner: through
/// the trampoline when [`enter`] enabled it, else with the `pre_exec` hook. The trampoline
/// cannot tell the parent why an exec failed the way `spawn` does, so a missing or
/// non-executable program is found here first, as `spawn` would report it.
pub(super) fn command(program: &Path, args: &[OsString]) -> io::Result<Command> {
    let Some(trampoline) = TRAMPOLINE.get() else {
        let mut command = Command::new(program);
        command.args(args);
        die_with_parent(&mut command);
        return Ok(command);
    };
    let resolved = executable(program)?;
    let mut command = Command::new(trampoline);
    command
        .arg(TRAMPOLINE_ARG)
        .arg(getpid().as_raw_nonzero().to_string())
        .arg(resolved)
        .args(args);
    Ok(command)
}

/// `program` as exec would find it (a bare name is looked up in `PATH`), if it is an
/// executable file: `NotFound` or `PermissionDenied` otherwise, as from `spawn`.
fn executable(program: &Path) -> io::Result<PathBuf> {
    let candidates: Vec<PathBuf> = if program.as_os_str().as_bytes().contains(&b'/') {
        vec![program.to_owned()]
    } else {
        let path = std::env::var_os("PATH").unwrap_or_default();
        std::env::split_paths(&path)
            .map(|dir| dir.join(program))
            .collect()
    };
    let mut denied = false;
    for candidate in candidates {
        match std::fs::metadata(&candidate) {
            Ok(m) if m.is_file() && m.permissions().mode() & 0o111 != 0 => return Ok(candidate),
            Ok(_) => denied = true,
            Err(_) => {}
        }
    }
    Err(if denied {
        io::ErrorKind::PermissionDenied.into()
    } else {
        io::ErrorKind::NotFound.into()
    })
}

/// Makes the process `command` starts receive SIGKILL when image-cloner dies, between fork and
/// exec.
///
/// The parent-death signal fires when the *thread* that forked the child exits, not the
/// process. tokio's `Command::spawn` forks in the thread that calls it, and every skopeo is
/// spawned from the runtime's own threads: in image-cloner's current-thread runtime that is the
/// main thread (`block_on` in `main`), whose exit is the process's exit; in a multi-thread
/// runtime (tests) the worker threads, which live as long as the runtime. Do not call
/// [`super::Skopeo`] from a thread that exits before the copy ends (e.g. a short-lived
/// `spawn_blocking` closure that spawns and returns the child): its skopeo would be killed then.
/// The same holds for the trampoline, whose parent is the thread that spawned it.
#[allow(unsafe_code)]
fn die_with_parent(command: &mut Command) {
    // Recorded before fork: in the child, a different parent means image-cloner died between
    // fork and prctl, which the death signal (set too late) would never report.
    let parent = getpid();
    // SAFETY: the closure runs in the forked child before exec, where only async-signal-safe
    // operations are allowed. It makes two raw system calls (prctl and getppid, both
    // async-signal-safe) through rustix, which does not allocate, lock or touch thread-locals
    // for them; it captures one integer by copy, and builds its error from an errno value
    // (`io::Error::from(Errno)`, no allocation). std reports an `Err` to the parent
    // through its exec-error pipe and the child exits without running any destructor.
    unsafe {
        command.pre_exec(move || {
            set_parent_process_death_signal(Some(Signal::KILL)).map_err(io::Error::from)?;
            if getppid() != Some(parent) {
                return Err(io::Error::from(Errno::SRCH));
            }
            Ok(())
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_or_non_executable_program_is_reported_as_spawn_would() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let missing = executable(&dir.path().join("skopeo")).expect_err("no such file");
        assert_eq!(missing.kind(), io::ErrorKind::NotFound);
        let plain = dir.path().join("plain");
        std::fs::write(&plain, "").expect("write a file");
        let denied = executable(&plain).expect_err("not executable");
        assert_eq!(denied.kind(), io::ErrorKind::PermissionDenied);
        let denied = executable(dir.path()).expect_err("a directory");
        assert_eq!(denied.kind(), io::ErrorKind::PermissionDenied);
    }

    #[test]
    fn a_bare_name_is_looked_up_in_path() {
        let found = executable(Path::new("sh")).expect("sh is on PATH");
        assert!(found.is_absolute(), "{}", found.display());
        assert!(found.ends_with("sh"));
    }
}
