//! A skopeo process never outlives image-cloner, and starting one costs image-cloner almost
//! nothing.
//!
//! A cancelled or timed-out copy kills its skopeo ([`Child`] kills on drop). That cannot cover
//! image-cloner itself being SIGKILLed (OOM killer, `kill -9`, a node's eviction): no destructor
//! runs, and the skopeo children would copy on with no parent, only for the restarted daemon to
//! copy the same images again. The kernel covers that case: each child asks for SIGKILL when
//! its parent dies (`PR_SET_PDEATHSIG`) before it execs skopeo.
//!
//! Where that request is made decides what every copy costs. std and tokio can only make it
//! between fork and exec (a `pre_exec` hook), which makes std fork the whole process: the
//! kernel copies image-cloner's page tables, and every page image-cloner writes afterwards
//! takes a copy-on-write fault (in the cold bench, 0.19 s of image-cloner's 1.03 s of CPU and
//! 125,000 of its 140,000 page faults). Starting skopeo through a second image-cloner process
//! that execs it (posix_spawn, then prctl, then exec) cost 1.5–1.9 ms of CPU per copy, for the
//! dynamic loading of a 27 MB binary. So the child is started here the way glibc's
//! `posix_spawn` starts one — `clone(CLONE_VM | CLONE_VFORK)` on a stack of its own, sharing
//! image-cloner's memory until it execs, with image-cloner's thread suspended meanwhile — and
//! the child asks for the signal itself before exec: no copy of the address space, no second
//! program loaded.
//!
//! The child runs in image-cloner's memory, so between clone and exec it may only make raw
//! system calls on data prepared before the clone ([`Prepared`]): no allocation, no lock, no
//! Rust runtime. Signals stay blocked from before the clone until the child has reset every
//! handler to its default, so no image-cloner signal handler ever runs in the child.
//!
//! A process started here is not tokio's: [`Child::wait`] reaps it on SIGCHLD (any kernel),
//! and [`Child`]'s drop kills it and reaps it in the background.

use std::ffi::{CString, OsStr, OsString, c_char, c_int, c_void};
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd as _, RawFd};
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::process::ExitStatusExt as _;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::sync::atomic::{AtomicI32, Ordering};

use rustix::pipe::{PipeFlags, pipe_with};
use rustix::process::{Pid, Signal, WaitOptions, getpid, kill_process, waitpid};
use tokio::net::unix::pipe::Receiver;
use tokio::signal::unix::{SignalKind, signal};

/// The child's stack: it only makes system calls, each with a frame of a few hundred bytes.
const CHILD_STACK_BYTES: usize = 64 * 1024;
/// The child's exit status when it could not exec (a shell's convention); the parent reports
/// the errno it left instead.
const EXIT_CANNOT_EXEC: c_int = 127;
/// Its exit status when image-cloner died before the death signal was set: nobody waits.
const EXIT_ORPHANED: c_int = 125;

/// A started process: its stdout and stderr pipes, killed and reaped when dropped.
pub(super) struct Child {
    pid: Pid,
    status: Option<ExitStatus>,
    pub stdout: Option<Receiver>,
    pub stderr: Option<Receiver>,
}

/// Starts `program` (a bare name is looked up in `PATH`) with `args`, stdin from /dev/null,
/// stdout and stderr piped, image-cloner's environment with `env` set over it, as a child that
/// dies with image-cloner. A missing or non-executable program is `NotFound` or
/// `PermissionDenied`, as from std's `spawn`.
pub(super) fn spawn(
    program: &Path,
    args: &[OsString],
    env: &[(&str, &OsStr)],
) -> io::Result<Child> {
    let program = executable(program)?;
    let stdin = File::open("/dev/null")?;
    let (stdout_read, stdout_write) = pipe_with(PipeFlags::CLOEXEC)?;
    let (stderr_read, stderr_write) = pipe_with(PipeFlags::CLOEXEC)?;
    let prepared = Prepared::new(
        &program,
        args,
        env,
        [
            stdin.as_raw_fd(),
            stdout_write.as_raw_fd(),
            stderr_write.as_raw_fd(),
        ],
    )?;
    let pid = clone_and_exec(&prepared)?;
    // The child holds its ends now (or is gone): ours close here, so its exit ends the pipes.
    drop((stdin, stdout_write, stderr_write));
    // From here on a failure drops `child`, which kills and reaps the process.
    let mut child = Child {
        pid,
        status: None,
        stdout: None,
        stderr: None,
    };
    child.stdout = Some(Receiver::from_owned_fd(stdout_read)?);
    child.stderr = Some(Receiver::from_owned_fd(stderr_read)?);
    Ok(child)
}

impl Child {
    /// Waits for the process to exit and reaps it.
    pub async fn wait(&mut self) -> io::Result<ExitStatus> {
        if let Some(status) = self.status {
            return Ok(status);
        }
        let status = reap(self.pid).await?;
        self.status = Some(status);
        Ok(status)
    }

    /// SIGKILL, then waits for it.
    pub async fn kill(&mut self) -> io::Result<ExitStatus> {
        if self.status.is_none() {
            kill_process(self.pid, Signal::KILL)?;
        }
        self.wait().await
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if self.status.is_some() {
            return;
        }
        // Not yet reaped, so the pid is still this process's: no other process can be hit.
        let _ = kill_process(self.pid, Signal::KILL);
        if let Ok(Some(_)) = try_reap(self.pid) {
            return;
        }
        let pid = self.pid;
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => drop(runtime.spawn(reap(pid))),
            Err(_) => drop(std::thread::spawn(move || {
                waitpid(Some(pid), WaitOptions::empty())
            })),
        }
    }
}

/// Waits for `pid`, a child of this process, to exit, and reaps it: on SIGCHLD, which every
/// kernel sends (a pidfd would need Linux 5.3).
async fn reap(pid: Pid) -> io::Result<ExitStatus> {
    // Listening before the first check: an exit after it is always signalled.
    let mut exits = signal(SignalKind::child())?;
    loop {
        if let Some(status) = try_reap(pid)? {
            return Ok(status);
        }
        exits.recv().await;
    }
}

/// The exit status of `pid` if it has exited (and is now reaped).
fn try_reap(pid: Pid) -> io::Result<Option<ExitStatus>> {
    match waitpid(Some(pid), WaitOptions::NOHANG) {
        Ok(Some((_, status))) => Ok(Some(ExitStatus::from_raw(status.as_raw()))),
        Ok(None) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Everything the child needs, made before the clone: it may not allocate.
struct Prepared {
    program: CString,
    /// Owners of the strings `argv` and `envp` point into.
    _strings: Vec<CString>,
    argv: Vec<*const c_char>,
    envp: Vec<*const c_char>,
    /// The child's stdin, stdout and stderr.
    fds: [RawFd; 3],
    parent: c_int,
    /// The highest signal number, whose handlers the child resets.
    max_signal: c_int,
    /// The errno of the step that failed in the child; 0 when it exec'd.
    error: AtomicI32,
}

impl Prepared {
    fn new(
        program: &Path,
        args: &[OsString],
        env: &[(&str, &OsStr)],
        fds: [RawFd; 3],
    ) -> io::Result<Self> {
        let c = |bytes: &[u8]| {
            CString::new(bytes).map_err(|_| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "an argument or environment entry holds a NUL byte",
                )
            })
        };
        let program = c(program.as_os_str().as_bytes())?;
        let mut strings = vec![program.clone()];
        for arg in args {
            strings.push(c(arg.as_bytes())?);
        }
        let argc = strings.len();
        for (key, value) in std::env::vars_os() {
            if env.iter().any(|(k, _)| OsStr::new(k) == key) {
                continue;
            }
            strings.push(c(&[key.as_bytes(), b"=", value.as_bytes()].concat())?);
        }
        for (key, value) in env {
            strings.push(c(&[key.as_bytes(), b"=", value.as_bytes()].concat())?);
        }
        let pointers = |s: &[CString]| {
            s.iter()
                .map(|s| s.as_ptr())
                .chain(std::iter::once(std::ptr::null()))
                .collect::<Vec<_>>()
        };
        Ok(Prepared {
            argv: pointers(&strings[..argc]),
            envp: pointers(&strings[argc..]),
            _strings: strings,
            program,
            fds,
            parent: getpid().as_raw_nonzero().get(),
            max_signal: libc::SIGRTMAX(),
            error: AtomicI32::new(0),
        })
    }
}

/// Clones a child that runs [`exec_child`] with `prepared` and returns once it has exec'd or
/// exited; an exec that failed is returned as its errno (and the child reaped).
#[allow(unsafe_code)]
fn clone_and_exec(prepared: &Prepared) -> io::Result<Pid> {
    // Not zeroed: the child only writes its own frames there. Zeroed, each copy's 64 KiB cost
    // a `memset` and ~4 page faults of fresh memory (callgrind of a cold `run --once`: 3.3 M
    // instructions for 50 copies).
    let mut stack = Box::<[u8]>::new_uninit_slice(CHILD_STACK_BYTES);
    // SAFETY: `stack` is ours and outlives the child's use of it: with CLONE_VFORK this thread
    // resumes only once the child has exec'd (a new address space) or exited. `prepared` is
    // borrowed for as long, and the child only reads it (and stores to its atomic). Every
    // signal is blocked across the clone so that no handler of this process runs on the child's
    // stack before it resets them; the mask is restored here right after. The child function
    // makes only raw system calls through libc (sigaction, sigprocmask, prctl, getppid, dup2,
    // fcntl, execve, _exit), which do not allocate or lock; the errno it writes belongs to this
    // thread, which is suspended and does not read it.
    unsafe {
        let top = stack.as_mut_ptr().cast::<u8>().add(CHILD_STACK_BYTES);
        let top = top.sub(top as usize % 16);
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut previous: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut previous);
        let pid = libc::clone(
            exec_child,
            top.cast::<c_void>(),
            libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
            std::ptr::from_ref(prepared).cast_mut().cast::<c_void>(),
        );
        let clone_error = io::Error::last_os_error();
        libc::pthread_sigmask(libc::SIG_SETMASK, &previous, std::ptr::null_mut());
        let Some(pid) = Pid::from_raw(pid) else {
            return Err(clone_error);
        };
        match prepared.error.load(Ordering::Acquire) {
            0 => Ok(pid),
            errno => {
                let _ = waitpid(Some(pid), WaitOptions::empty());
                Err(io::Error::from_raw_os_error(errno))
            }
        }
    }
}

/// The child, between clone and exec, in image-cloner's memory: see [`clone_and_exec`].
#[allow(unsafe_code)]
extern "C" fn exec_child(arg: *mut c_void) -> c_int {
    // SAFETY: `arg` is the `Prepared` that `clone_and_exec` borrows until this child execs or
    // exits; only raw system calls follow (see `clone_and_exec`).
    unsafe {
        let prepared = &*arg.cast_const().cast::<Prepared>();
        let fail = || -> c_int {
            let errno = *libc::__errno_location();
            prepared.error.store(errno.max(1), Ordering::Release);
            libc::_exit(EXIT_CANNOT_EXEC)
        };
        // Default handlers (exec would reset caught ones anyway; SIGPIPE, which Rust ignores,
        // as std resets it for its children), then no signal blocked, as std's children.
        let mut default: libc::sigaction = std::mem::zeroed();
        default.sa_sigaction = libc::SIG_DFL;
        for sig in 1..=prepared.max_signal {
            let mut current: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(sig, std::ptr::null(), &mut current) == 0
                && current.sa_sigaction != libc::SIG_DFL
                && (current.sa_sigaction != libc::SIG_IGN || sig == libc::SIGPIPE)
            {
                libc::sigaction(sig, &default, std::ptr::null_mut());
            }
        }
        let mut none: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut none);
        libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
        if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
            return fail();
        }
        // A different parent means image-cloner died before the signal was set, which the
        // signal (set too late) would never report.
        if libc::getppid() != prepared.parent {
            libc::_exit(EXIT_ORPHANED);
        }
        for (target, &fd) in (0..).zip(prepared.fds.iter()) {
            // dup2 onto itself would keep close-on-exec: clear it instead.
            let done = if fd == target {
                libc::fcntl(fd, libc::F_SETFD, 0)
            } else {
                libc::dup2(fd, target)
            };
            if done < 0 {
                return fail();
            }
        }
        libc::execve(
            prepared.program.as_ptr(),
            prepared.argv.as_ptr(),
            prepared.envp.as_ptr(),
        );
        fail()
    }
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

#[cfg(test)]
mod tests {
    use tokio::io::AsyncReadExt as _;

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

    async fn read_all(pipe: Option<Receiver>) -> String {
        let mut out = String::new();
        pipe.expect("a pipe")
            .read_to_string(&mut out)
            .await
            .expect("read the pipe");
        out
    }

    /// What a child is started with: its arguments, the environment with the override, stdin
    /// from /dev/null, its stdout and stderr apart, its exit status, no blocked signal and SIGPIPE
    /// not ignored (the parent-death signal: the next test).
    #[tokio::test]
    async fn the_child_gets_its_arguments_environment_pipes_and_signal_defaults() {
        let script = r#"echo "args:$1|$2"; echo "tmp:$TMPDIR"; echo "home:${HOME:+set}";
            read line; echo "stdin:${line:-empty}";
            grep -E '^(SigBlk|SigIgn):' /proc/self/status;
            echo oops >&2; exit 3"#;
        let args = [
            "-c".into(),
            script.into(),
            "sh".into(),
            "a b".into(),
            "$HOME".into(),
        ];
        let mut child = spawn(
            Path::new("sh"),
            &args,
            &[("TMPDIR", OsStr::new("/somewhere"))],
        )
        .expect("spawned");
        let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
        let (out, err) = tokio::join!(read_all(stdout), read_all(stderr));
        let status = child.wait().await.expect("reaped");
        assert_eq!(status.code(), Some(3));
        assert_eq!(err, "oops\n");
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines[..4],
            [
                "args:a b|$HOME",
                "tmp:/somewhere",
                "home:set",
                "stdin:empty"
            ]
        );
        assert_eq!(lines[4], "SigBlk:\t0000000000000000", "{out}");
        // SIGPIPE, which Rust ignores, is reset (signals ignored before Rust started, such as
        // glibc's internal 32 here, stay ignored, as with std's spawn).
        let ignored = lines[5].strip_prefix("SigIgn:\t").expect("SigIgn");
        let ignored = u64::from_str_radix(ignored, 16).expect("a hex mask");
        assert_eq!(ignored & (1 << (libc::SIGPIPE - 1)), 0, "{out}");
    }

    /// The parent-death signal fires when the thread that started the child exits: a child
    /// started from a thread that then ends is SIGKILLed, as skopeo is when image-cloner dies.
    #[test]
    fn the_child_is_killed_when_its_parent_goes() {
        let pid = std::thread::spawn(|| {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            let _in_runtime = runtime.enter();
            let child = spawn(Path::new("sleep"), &["30".into()], &[]).expect("spawned");
            let pid = child.pid;
            // Neither killed nor reaped by us: only the death signal can end it.
            std::mem::forget(child);
            pid
        })
        .join()
        .expect("the thread");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let status = loop {
            if let Some(status) = try_reap(pid).expect("our child") {
                break status;
            }
            if std::time::Instant::now() > deadline {
                let _ = kill_process(pid, Signal::KILL);
                panic!("the child outlived the thread that started it");
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        };
        assert_eq!(status.signal(), Some(libc::SIGKILL));
    }

    #[tokio::test]
    async fn a_killed_or_dropped_child_is_killed_and_reaped() {
        let mut child = spawn(Path::new("sleep"), &["30".into()], &[]).expect("spawned");
        let status = child.kill().await.expect("killed");
        assert_eq!(status.signal(), Some(libc::SIGKILL));

        let child = spawn(Path::new("sleep"), &["30".into()], &[]).expect("spawned");
        let pid = child.pid;
        drop(child);
        // Reaped in the background: waitpid then says it is not our child any more.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            match waitpid(Some(pid), WaitOptions::NOHANG) {
                Err(e) if e == rustix::io::Errno::CHILD => break,
                _ if std::time::Instant::now() > deadline => panic!("{pid:?} never reaped"),
                _ => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
            }
        }
    }

    #[tokio::test]
    async fn an_argument_with_a_nul_byte_is_refused_before_anything_starts() {
        let err = spawn(Path::new("sh"), &["a\0b".into()], &[])
            .err()
            .expect("refused");
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }
}
