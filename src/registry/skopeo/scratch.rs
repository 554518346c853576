//! Where skopeo runs write files, and the removal of what killed image-cloner processes left.
//!
//! Under the base directory (`tmp_dir`, else `/var/tmp`):
//!
//! ```text
//! image-cloner-<pid>-<random>/   one per running image-cloner, removed when it exits
//!   lock                         flock'ed for the life of that process
//!   run-<random>/                one per skopeo run at a time, emptied when the run ends:
//!     digest                     skopeo's --tmpdir and TMPDIR, and a copy's --digestfile
//! ```
//!
//! A run's directory is emptied when the run ends, however it ended, and handed to the next run
//! rather than removed: making and removing a directory for each of a cold start's 50 copies
//! cost ext4 a directory block allocated, journaled and freed each time (`perf`: ~2 % of
//! image-cloner's own CPU in a cold `make bench` round, issue 17), where emptying one is a read
//! of it and an unlink of the digest file. A directory that cannot be emptied is removed
//! instead, never reused, so a run never finds what an earlier one left.
//!
//! A process killed with SIGKILL runs no destructor and leaves its directory behind. The next
//! image-cloner to start removes every such directory whose lock nobody holds: the kernel drops
//! a dead process's locks, so unlike a `/proc/<pid>` check this cannot be fooled by pid reuse,
//! and a directory of another image-cloner sharing `tmp_dir` (a daemon and an operator's
//! `image-cloner copy`) is never touched while its owner runs.
//!
//! skopeo 1.9 writes nothing under its `--tmpdir` for docker-to-docker copies (measured with
//! strace: `--all --preserve-digests` and `--format v2s2` alike); containers/image stages
//! `container_images_*` files there for other transports and future versions may for this one.
//! Whatever it writes lands in the run's directory, so it goes with it.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use thiserror::Error;

use super::error::SkopeoError;

/// The prefix of a process's directory.
const PREFIX: &str = "image-cloner-";
/// A directory being set up: it gets its final name once its lock is held, so a cleaner never
/// sees an unlocked directory of a live process under the final name.
const SETUP_PREFIX: &str = ".image-cloner-new-";
/// The per-copy temp files of versions before these directories.
const LEGACY_DIGEST_PREFIX: &str = "image-cloner-digest-";
const LOCK: &str = "lock";
/// Emptied run directories kept for the next runs; one more than this at rest is removed. Runs
/// at once are the copy slots and the registry checks that fall back on skopeo.
const MAX_SPARE_RUN_DIRS: usize = 16;

/// Where the process directories go: `tmp_dir`, else `/var/tmp` (where skopeo itself stages
/// big files by default, since `/tmp` is often a small tmpfs), else the system temp directory.
pub fn base_dir(tmp_dir: Option<&Path>) -> PathBuf {
    match tmp_dir {
        Some(dir) => dir.to_owned(),
        None if Path::new("/var/tmp").is_dir() => PathBuf::from("/var/tmp"),
        None => std::env::temp_dir(),
    }
}

/// This process's directory, locked while it lives and removed when it is dropped.
#[derive(Debug)]
pub(super) struct Workspace {
    dir: PathBuf,
    /// Run directories emptied after their run, for the next ones.
    spare: Mutex<Vec<PathBuf>>,
    _lock: File,
}

impl Workspace {
    /// Makes and locks a new process directory in `base`.
    pub(super) fn create(base: &Path) -> Result<Workspace, SkopeoError> {
        let fail = |path: &Path| {
            let path = path.to_owned();
            move |e: io::Error| SkopeoError::ScratchDir {
                path,
                source: Arc::new(e),
            }
        };
        let pid = std::process::id();
        let setup = tempfile::Builder::new()
            .prefix(&format!("{SETUP_PREFIX}{pid}-"))
            .tempdir_in(base)
            .map_err(fail(base))?;
        let lock_path = setup.path().join(LOCK);
        let lock = File::create(&lock_path).map_err(fail(&lock_path))?;
        lock.try_lock()
            .map_err(io::Error::from)
            .map_err(fail(&lock_path))?;
        let name = setup
            .path()
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix(SETUP_PREFIX))
            .map(|rest| format!("{PREFIX}{rest}"))
            .ok_or_else(|| fail(setup.path())(io::ErrorKind::InvalidFilename.into()))?;
        let dir = base.join(name);
        fs::rename(setup.path(), &dir).map_err(fail(&dir))?;
        // Renamed: nothing is left at the setup path for its guard to remove.
        let _ = setup.keep();
        Ok(Workspace {
            dir,
            spare: Mutex::new(Vec::new()),
            _lock: lock,
        })
    }

    /// An empty directory for one skopeo run, its own until the guard is dropped (after the
    /// run, however it ended): a spare one, else a new one.
    pub(super) fn run_dir(self: &Arc<Self>) -> Result<RunDir, SkopeoError> {
        let spare = self
            .spare
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        let path = match spare {
            Some(path) => path,
            None => tempfile::Builder::new()
                .prefix("run-")
                .tempdir_in(&self.dir)
                .map_err(|e| SkopeoError::ScratchDir {
                    path: self.dir.clone(),
                    source: Arc::new(e),
                })?
                .keep(),
        };
        Ok(RunDir {
            path,
            workspace: Arc::clone(self),
        })
    }

    /// Takes back `run`'s directory once emptied; removes it when it cannot be emptied or
    /// enough are spare.
    fn give_back(&self, run: PathBuf) {
        if empty(&run).is_ok() {
            let mut spare = self.spare.lock().unwrap_or_else(PoisonError::into_inner);
            if spare.len() < MAX_SPARE_RUN_DIRS {
                spare.push(run);
                return;
            }
        }
        // Best effort: what stays goes with the process's directory.
        let _ = fs::remove_dir_all(&run);
    }

    #[cfg(test)]
    pub(super) fn path(&self) -> &Path {
        &self.dir
    }
}

/// One skopeo run's directory, emptied and handed on when dropped. It keeps the process's
/// directory alive.
#[derive(Debug)]
pub(super) struct RunDir {
    path: PathBuf,
    workspace: Arc<Workspace>,
}

impl RunDir {
    pub(super) fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for RunDir {
    fn drop(&mut self) {
        self.workspace.give_back(std::mem::take(&mut self.path));
    }
}

/// Removes everything in `dir`, leaving it in place; an error when `dir` cannot be read or an
/// entry stays.
fn empty(dir: &Path) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            fs::remove_dir_all(entry.path())?;
        } else {
            fs::remove_file(entry.path())?;
        }
    }
    Ok(())
}

impl Drop for Workspace {
    fn drop(&mut self) {
        // Best effort: what stays is removed by the next start's `clean_stale`.
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// What [`clean_stale`] found.
#[derive(Debug, Default)]
pub struct CleanReport {
    /// Directories of processes that no longer run, and legacy digest files, removed.
    pub removed: Vec<PathBuf>,
    /// Directories of image-cloner processes that still run, left alone.
    pub in_use: Vec<PathBuf>,
    /// Stale entries that could not be removed, with why.
    pub failed: Vec<(PathBuf, io::Error)>,
}

#[derive(Debug, Error)]
pub enum CleanError {
    #[error("listing {dir} for files left by image-cloner processes that no longer run: {source}")]
    ReadDir {
        dir: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl CleanError {
    /// A short, stable label, for logs and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            CleanError::ReadDir { .. } => "ReadTmpDir",
        }
    }
}

/// Removes what image-cloner processes that no longer run left in `tmp_dir` (the setting;
/// `None` for the default, see [`base_dir`]): their directories, with any skopeo staging files
/// inside, and the `image-cloner-digest-*` files of earlier versions. Safe to call while
/// other image-cloner processes use the same directory. The skopeo runner calls it before its
/// first run; calling it at start-up as well only moves the work earlier.
pub fn clean_stale(tmp_dir: Option<&Path>) -> Result<CleanReport, CleanError> {
    let dir = base_dir(tmp_dir);
    let entries = fs::read_dir(&dir).map_err(|source| CleanError::ReadDir {
        dir: dir.clone(),
        source,
    })?;
    let mut report = CleanReport::default();
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let verdict = if name.starts_with(LEGACY_DIGEST_PREFIX) {
            if !kind.is_file() {
                continue;
            }
            Ok(None)
        } else if let Some(rest) = name.strip_prefix(SETUP_PREFIX).filter(|_| kind.is_dir()) {
            setup_is_stale(rest)
        } else if name.starts_with(PREFIX) && kind.is_dir() {
            unlocked(&path)
        } else {
            continue;
        };
        match verdict {
            Err(InUse) => report.in_use.push(path),
            // The lock (when there is one) is held until the directory is gone.
            Ok(_lock) => match remove(&path, kind.is_dir()) {
                Ok(()) => report.removed.push(path),
                Err(e) => report.failed.push((path, e)),
            },
        }
    }
    Ok(report)
}

/// An owner still holds the entry.
struct InUse;

/// The lock of a process directory when nobody holds it; `Ok(None)` when it has no lock file
/// (a directory gets its final name only once locked, so that is not a live one either).
fn unlocked(dir: &Path) -> Result<Option<File>, InUse> {
    let lock = match OpenOptions::new()
        .read(true)
        .write(true)
        .open(dir.join(LOCK))
    {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(_) => return Err(InUse),
    };
    match lock.try_lock() {
        Ok(()) => Ok(Some(lock)),
        Err(_) => Err(InUse),
    }
}

/// A directory still being set up belongs to a live process unless its pid is gone. (The
/// window is microseconds, so a reused pid only ever leaves an empty directory in place.)
fn setup_is_stale(rest: &str) -> Result<Option<File>, InUse> {
    let pid = rest.split('-').next().unwrap_or_default();
    let gone = !pid.is_empty()
        && pid.bytes().all(|b| b.is_ascii_digit())
        && !Path::new("/proc").join(pid).exists();
    if gone { Ok(None) } else { Err(InUse) }
}

fn remove(path: &Path, is_dir: bool) -> io::Result<()> {
    let result = if is_dir {
        fs::remove_dir_all(path)
    } else {
        fs::remove_file(path)
    };
    match result {
        // Gone already: another cleaner got there first.
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A base directory and a live workspace in it.
    fn live_workspace() -> (tempfile::TempDir, Arc<Workspace>) {
        let base = tempfile::tempdir().expect("a temp dir");
        let live = Arc::new(Workspace::create(base.path()).expect("a workspace"));
        (base, live)
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .expect("list the temp dir")
            .map(|e| {
                e.expect("an entry")
                    .file_name()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        names.sort();
        names
    }

    #[test]
    fn a_live_workspace_is_kept_and_its_own_drop_removes_it() {
        let (base, live) = live_workspace();
        let name = live.path().file_name().expect("a name").to_string_lossy();
        assert!(name.starts_with(&format!("image-cloner-{}-", std::process::id())));
        let run = live.run_dir().expect("a run dir");
        fs::write(run.path().join("digest"), "x").expect("write into the run dir");

        let report = clean_stale(Some(base.path())).expect("clean");
        assert!(report.removed.is_empty(), "{report:?}");
        assert_eq!(report.in_use, [live.path().to_owned()]);
        drop(run);
        drop(live);
        assert!(names(base.path()).is_empty());
    }

    #[test]
    fn a_run_dir_is_emptied_and_handed_to_the_next_run() {
        let (base, live) = live_workspace();
        let run = live.run_dir().expect("a run dir");
        let first = run.path().to_owned();
        // What a copy and a future skopeo staging under its --tmpdir would leave.
        fs::write(first.join("digest"), "sha256:...").expect("a digest file");
        fs::create_dir_all(first.join("container_images_x/blobs")).expect("a staging dir");
        fs::write(first.join("container_images_x/blobs/1"), "x").expect("a staged blob");
        // A second run at the same time gets a directory of its own.
        let other = live.run_dir().expect("another run dir");
        assert_ne!(other.path(), first);
        drop(run);
        assert!(names(&first).is_empty(), "emptied when its run ended");

        let next = live.run_dir().expect("the next run dir");
        assert_eq!(next.path(), first, "the emptied directory is reused");
        assert!(names(next.path()).is_empty());
        drop((next, other));
        drop(live);
        assert!(
            names(base.path()).is_empty(),
            "all gone with the process's directory"
        );
    }

    #[test]
    fn a_run_dir_that_cannot_be_emptied_is_not_reused() {
        let (_base, live) = live_workspace();
        let run = live.run_dir().expect("a run dir");
        let first = run.path().to_owned();
        // Replaced by a file: it can no longer be listed, so it cannot be shown empty.
        fs::remove_dir(&first).expect("remove the run dir");
        fs::write(&first, "not a directory").expect("a file in its place");
        drop(run);
        let next = live.run_dir().expect("the next run dir");
        assert_ne!(
            next.path(),
            first,
            "a new directory, not the one that failed"
        );
        assert!(next.path().is_dir());
    }

    #[test]
    fn spare_run_dirs_are_bounded() {
        let (_base, live) = live_workspace();
        let runs: Vec<RunDir> = (0..MAX_SPARE_RUN_DIRS + 4)
            .map(|_| live.run_dir().expect("a run dir"))
            .collect();
        drop(runs);
        let kept = names(live.path()).len() - 1;
        assert_eq!(kept, MAX_SPARE_RUN_DIRS, "the lock and the spare run dirs");
    }

    #[test]
    fn directories_of_dead_processes_and_legacy_digest_files_are_removed() {
        let base = tempfile::tempdir().expect("a temp dir");
        // A process killed mid-copy: its lock file exists but nobody holds it.
        let dead = base.path().join("image-cloner-999999-abcdef");
        fs::create_dir_all(dead.join("run-x/container_images_blob")).expect("a dead dir");
        fs::write(dead.join(LOCK), "").expect("its lock file");
        // One killed during set-up (its pid no longer exists: above pid_max).
        fs::create_dir(base.path().join(".image-cloner-new-99999999-zzz")).expect("a setup dir");
        fs::write(base.path().join("image-cloner-digest-Ab12Cd"), "").expect("a legacy file");
        fs::write(base.path().join("unrelated"), "").expect("someone else's file");
        let live = Workspace::create(base.path()).expect("a live workspace");

        let report = clean_stale(Some(base.path())).expect("clean");
        assert_eq!(report.removed.len(), 3, "{report:?}");
        assert!(report.failed.is_empty(), "{report:?}");
        let live_name = live.path().file_name().expect("a name").to_string_lossy();
        assert_eq!(names(base.path()), [live_name.as_ref(), "unrelated"]);
    }

    #[test]
    fn a_missing_tmp_dir_is_an_error_naming_it() {
        let err = clean_stale(Some(Path::new("/nonexistent/tmp"))).expect_err("no such dir");
        assert!(err.to_string().contains("/nonexistent/tmp"), "{err}");
        assert_eq!(err.reason(), "ReadTmpDir");
    }

    #[test]
    fn a_workspace_that_cannot_be_made_names_the_directory() {
        let err = Workspace::create(Path::new("/nonexistent/tmp")).expect_err("no such dir");
        assert!(matches!(err, SkopeoError::ScratchDir { .. }), "{err}");
        assert!(err.to_string().contains("/nonexistent/tmp"), "{err}");
        assert_eq!(err.reason(), "ScratchDir");
        assert!(err.is_transient());
    }
}
