//! Transparent huge pages: for the commands that run and exit, never for the daemon.
//!
//! A cold `run --once` touches ~14 MB of fresh memory (2,000 reconciles waiting on their
//! copies, the lists, the connections' buffers), and each 4 KiB page of it costs a fault — a
//! trap and a zeroed page: ~3,600 faults in the cold bench. With mimalloc's arenas in huge pages
//! (it `madvise`s them, which THP's usual `madvise` mode waits for) the same run takes ~770,
//! and image-cloner's own CPU read 88.2 ms against 91.8 ms side by side (forty cold rounds
//! each, in both orders), for a peak RSS of ~30 MiB rather than 25.
//!
//! On a VM whose balloon reports free memory to its host (Firecracker's free page reporting),
//! a huge page is a free 2 MiB block the host may have taken back, and its first touch is then
//! 512 host faults: 16 MiB in huge pages took 6–51 ms there, in 4 KiB pages 7–22 ms. A cold
//! `run --once` takes 8 huge pages (`perf stat`, `kmem:mm_page_alloc` of order 9), and kept
//! off them it read no better: own CPU / skopeo CPU 6.25 % against 6.35 % with them, eighteen
//! cold rounds each in both orders (skopeo given the host's mode either way).
//!
//! The daemon runs for months: huge pages there are memory held for a few live bytes each
//! (mimalloc 3's huge-page defaults held 83–85 MiB in the warm restart of 10,000 workloads,
//! where DESIGN allows 64), and on a host whose memory has fragmented a huge-page fault can
//! stall in compaction — latency the webhooks promise not to have. So huge pages are off from
//! the first line of `main` and turned back on once the command is known to be one that exits;
//! the daemon keeps at most the one huge page the Rust runtime's first allocations, before
//! `main`, may have taken (the first 2 MiB of the heap, which it fills anyway). The switch is
//! the kernel's, per process (`PR_SET_THP_DISABLE`): it holds on hosts whose THP mode is
//! `always` too, where huge pages need no `madvise`, and the processes the daemon starts
//! (skopeo) inherit it.

use std::io;

/// Turns transparent huge pages off for this process and the processes it starts.
pub fn off() -> io::Result<()> {
    Ok(rustix::thread::disable_transparent_huge_pages(true)?)
}

/// Gives the process back what the host's THP mode allows.
pub fn back_on() -> io::Result<()> {
    Ok(rustix::thread::disable_transparent_huge_pages(false)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the kernel reports for this process: `THP_enabled` in `/proc/self/status`.
    fn enabled() -> bool {
        let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
        let line = status
            .lines()
            .find(|l| l.starts_with("THP_enabled:"))
            .expect("a THP_enabled line (a kernel built with THP)");
        line.ends_with('1')
    }

    /// Both switches, as the kernel sees them (the setting is the whole process's, so one test
    /// holds both and leaves it as the test process found it).
    #[test]
    fn off_and_back_on_are_what_the_kernel_reports() {
        let before = enabled();
        off().expect("PR_SET_THP_DISABLE");
        assert!(!enabled(), "off");
        back_on().expect("PR_SET_THP_DISABLE");
        assert!(enabled(), "back on");
        if !before {
            off().expect("as it was");
        }
    }
}
