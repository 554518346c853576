//! A skopeo process never outlives image-cloner.
//!
//! `kill_on_drop` covers a copy that is cancelled or times out while image-cloner runs; it
//! cannot cover image-cloner itself being SIGKILLed (OOM killer, `kill -9`, a node's eviction):
//! no destructor runs, and the skopeo children would copy on with no parent, only for the
//! restarted daemon to copy the same images again. The kernel covers that case: each child asks
//! for SIGKILL when its parent dies (`PR_SET_PDEATHSIG`), between fork and exec.

use std::io;

use rustix::io::Errno;
use rustix::process::{Signal, getpid, getppid, set_parent_process_death_signal};
use tokio::process::Command;

/// Makes the process `command` starts receive SIGKILL when image-cloner dies.
///
/// The parent-death signal fires when the *thread* that forked the child exits, not the
/// process. tokio's `Command::spawn` forks in the thread that calls it, and every skopeo is
/// spawned from the runtime's own threads: in image-cloner's current-thread runtime that is the
/// main thread (`block_on` in `main`), whose exit is the process's exit; in a multi-thread
/// runtime (tests) the worker threads, which live as long as the runtime. Do not call
/// [`super::Skopeo`] from a thread that exits before the copy ends (e.g. a short-lived
/// `spawn_blocking` closure that spawns and returns the child): its skopeo would be killed then.
#[allow(unsafe_code)]
pub(super) fn die_with_parent(command: &mut Command) {
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
