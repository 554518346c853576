//! image-cloner SIGKILLed in the middle of a copy (the OOM killer, `kill -9`, an eviction):
//! its skopeo dies with it instead of copying on with no parent, and the files the killed run
//! left in `tmp_dir` are removed by the next run.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::throttle::Throttle;
use common::*;

/// A running skopeo, as /proc shows it.
#[derive(Debug)]
struct Process {
    pid: u32,
    parent: u32,
    args: Vec<String>,
}

/// The live skopeo processes whose arguments mention `needle` (a registry host unique to one
/// test). Zombies have no arguments left, so they never match.
fn skopeo_processes(needle: &str) -> Vec<Process> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("list /proc").flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<String> = cmdline
            .split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        let is_skopeo = args.first().is_some_and(|a| a.ends_with("skopeo"));
        if !is_skopeo || !args.iter().any(|a| a.contains(needle)) {
            continue;
        }
        // stat: "pid (comm) state ppid ..."; comm may hold spaces, so read after the last ')'.
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
        let mut fields = after.split_whitespace();
        let state = fields.next().unwrap_or("?");
        let parent = fields.next().and_then(|p| p.parse().ok()).unwrap_or(0);
        if state != "Z" {
            found.push(Process { pid, parent, args });
        }
    }
    found
}

/// One line per process, for failure messages.
fn describe(processes: &[Process]) -> String {
    processes
        .iter()
        .map(|p| {
            format!(
                "pid {} (parent {}): {}\n",
                p.pid,
                p.parent,
                p.args.join(" ")
            )
        })
        .collect()
}

/// Polls `check` until it returns `Some` or `within` has passed.
fn eventually<T>(within: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(found) = check() {
            return Some(found);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The names in `dir` that image-cloner's scratch handling owns.
fn cloner_entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("list tmp_dir")
        .map(|e| {
            e.expect("an entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|n| n.starts_with("image-cloner-") || n.starts_with(".image-cloner-"))
        .collect();
    names.sort();
    names
}

#[test]
fn a_sigkilled_copy_leaves_no_skopeo_running_and_the_next_run_removes_its_files() {
    let source = plain_registry();
    let backup = plain_registry();
    push_all(&source, &multi_arch("slow", 21), "team/slow", "1.0");
    // 4 KiB/s per connection: the 256 KiB of layers take half a minute, and an orphaned skopeo
    // would still be copying long after the deadline below.
    let slow = Throttle::start(&source.host(), 4 * 1024);
    let tmp = tempfile::tempdir().expect("a tmp_dir");
    let cloner = Cloner::new(&format!("{}/mirror", backup.host()))
        .set(
            "IMAGE_CLONER_INSECURE_REGISTRIES",
            format!("{},{},{}", source.host(), slow.host(), backup.host()),
        )
        .set("IMAGE_CLONER_TMP_DIR", tmp.path().to_string_lossy());
    let log_path = cloner.home().join("first-run.log");
    let log = std::fs::File::create(&log_path).expect("a log file");
    let mut first = Command::new(env!("CARGO_BIN_EXE_image-cloner"))
        .args(["copy", &format!("{}/team/slow:1.0", slow.host())])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", cloner.home())
        .envs(cloner.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start image-cloner copy");
    let pid = first.id();
    let log = || std::fs::read_to_string(&log_path).unwrap_or_default();

    let copying = eventually(Duration::from_secs(60), || {
        skopeo_processes(slow.host())
            .into_iter()
            .find(|p| p.parent == pid && p.args.iter().any(|a| a == "copy"))
    });
    let copying = copying.unwrap_or_else(|| {
        let _ = first.kill();
        panic!("no skopeo copy started by image-cloner: {}", log())
    });
    first.kill().expect("SIGKILL image-cloner");
    first.wait().expect("reap image-cloner");

    let survivors = eventually(Duration::from_secs(10), || {
        let left = skopeo_processes(slow.host());
        left.is_empty().then_some(())
    });
    assert!(
        survivors.is_some(),
        "skopeo outlived its killed parent {pid} (the copy was {}):\n{}",
        copying.pid,
        describe(&skopeo_processes(slow.host()))
    );

    // The killed run left its directory; versions before it left digest files.
    let left = cloner_entries(tmp.path());
    assert_eq!(left.len(), 1, "{left:?}");
    assert!(
        left[0].starts_with(&format!("image-cloner-{pid}-")),
        "{left:?}"
    );
    std::fs::write(tmp.path().join("image-cloner-digest-Xy12Zw"), "").expect("a legacy file");

    // A second run, straight from the source, removes both and its own directory on exit.
    let second = cloner.run(&["copy", &format!("{}/team/slow:1.0", source.host())]);
    let text = stdout(&second);
    assert!(second.status.success(), "{text}{}", stderr(&second));
    assert!(text.contains("1 copied"), "{text}");
    assert_eq!(cloner_entries(tmp.path()), Vec::<String>::new());

    // A run that needs no skopeo (the image is in the backup now) still removes what a killed
    // run left (found by make reliability: a restarted daemon with nothing left to copy kept
    // its killed predecessor's directory).
    let dead = tmp.path().join("image-cloner-999999-abcdef");
    std::fs::create_dir_all(dead.join("run-x")).expect("a dead run's directory");
    std::fs::write(dead.join("lock"), "").expect("its lock file, held by nobody");
    let third = cloner.run(&["copy", &format!("{}/team/slow:1.0", source.host())]);
    let text = stdout(&third);
    assert!(third.status.success(), "{text}{}", stderr(&third));
    assert!(text.contains("1 already in backup"), "{text}");
    assert_eq!(cloner_entries(tmp.path()), Vec::<String>::new());
}
