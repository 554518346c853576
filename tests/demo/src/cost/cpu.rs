//! CPU time from `/proc/<pid>/stat`: a process's own (all its threads) and its waited-for
//! children's (`cutime`, `cstime`: for image-cloner, the skopeo processes it ran). A zombie still
//! has its stat file with the final figures, so a parent that reads it before reaping gets the
//! whole run. The process's system time and minor page faults are kept too: forking a large
//! process costs page-table copies and copy-on-write faults in the parent, which show there.

use std::time::Duration;

use anyhow::{Context as _, Result, bail};

/// The kernel reports these times in USER_HZ ticks, 100 per second on every architecture this
/// runs on (Linux fixes USER_HZ at 100 for its user-space ABI outside Alpha and IA-64).
const USER_HZ: u64 = 100;

/// CPU time of a process and of its waited-for children.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuTimes {
    /// The process itself, user + system.
    pub own: Duration,
    /// Its children that it waited for, user + system (their own children included).
    pub children: Duration,
    /// The system part of `own`.
    pub own_system: Duration,
    /// Minor page faults of the process itself (`minflt`).
    pub own_faults: u64,
}

impl CpuTimes {
    /// What was spent between `earlier` and `self`.
    pub fn since(&self, earlier: &CpuTimes) -> CpuTimes {
        CpuTimes {
            own: self.own.saturating_sub(earlier.own),
            children: self.children.saturating_sub(earlier.children),
            own_system: self.own_system.saturating_sub(earlier.own_system),
            own_faults: self.own_faults.saturating_sub(earlier.own_faults),
        }
    }
}

/// One reading of `/proc/<pid>/stat`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcStat {
    /// The command name (field 2, at most 15 bytes): which program the figures are of — a
    /// wrapper given as `IMAGE_CLONER_BIN` (`perf`, `valgrind`) rather than image-cloner.
    pub command: String,
    /// `R`, `S`, `D`, `Z` (exited, not yet reaped: the figures are final), ...
    pub state: char,
    pub cpu: CpuTimes,
}

impl ProcStat {
    pub fn exited(&self) -> bool {
        self.state == 'Z'
    }
}

fn ticks(n: u64) -> Duration {
    Duration::from_millis(n * 1000 / USER_HZ)
}

/// Parses the text of a stat file. The command name (field 2) is in parentheses and may hold
/// spaces or parentheses itself: fields are counted from the last `)`.
pub fn parse_stat(text: &str) -> Result<ProcStat> {
    let (before, rest) = text
        .rsplit_once(')')
        .with_context(|| format!("no command name in {text:?}"))?;
    let (_, command) = before
        .split_once('(')
        .with_context(|| format!("no command name in {text:?}"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state (field 3), ..., minflt (10), ..., utime (14), stime (15),
    // cutime (16), cstime (17).
    if fields.len() < 15 {
        bail!("{} fields after the command name in {text:?}", fields.len());
    }
    let number = |i: usize| -> Result<u64> {
        fields[i]
            .parse()
            .with_context(|| format!("field {} of {text:?} is not a number", i + 3))
    };
    let state = fields[0].chars().next().unwrap_or('?');
    Ok(ProcStat {
        command: command.to_owned(),
        state,
        cpu: CpuTimes {
            own: ticks(number(11)? + number(12)?),
            children: ticks(number(13)? + number(14)?),
            own_system: ticks(number(12)?),
            own_faults: number(7)?,
        },
    })
}

/// `/proc/<pid>/stat` of a running (or exited, unreaped) process.
pub fn proc_stat(pid: u32) -> Result<ProcStat> {
    let path = format!("/proc/{pid}/stat");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    parse_stat(&text)
}

/// This process's own figures; `children` grows as it reaps its children.
pub fn this_process() -> Result<CpuTimes> {
    let text = std::fs::read_to_string("/proc/self/stat").context("reading /proc/self/stat")?;
    Ok(parse_stat(&text)?.cpu)
}

/// The calling thread's own figures (`/proc/thread-self/stat`): what one thread of this
/// process spent, apart from the others (the bench's simulator runs on threads of its own).
pub fn this_thread() -> Result<CpuTimes> {
    let text = std::fs::read_to_string("/proc/thread-self/stat")
        .context("reading /proc/thread-self/stat")?;
    Ok(parse_stat(&text)?.cpu)
}

/// `part` as a percentage of `whole`.
pub fn percent(part: Duration, whole: Duration) -> f64 {
    if whole.is_zero() {
        return f64::NAN;
    }
    100.0 * part.as_secs_f64() / whole.as_secs_f64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_counted_from_the_last_parenthesis() {
        let text = "4242 (image (cloner)) Z 1 4242 4242 0 -1 4194560 900 12000 0 3 \
                    150 25 612 93 20 0 1 0 100 0 0";
        let stat = parse_stat(text).expect("a stat line");
        assert_eq!(stat.command, "image (cloner)");
        assert!(stat.exited());
        assert_eq!(stat.cpu.own, Duration::from_millis(1750));
        assert_eq!(stat.cpu.children, Duration::from_millis(7050));
        assert_eq!(stat.cpu.own_system, Duration::from_millis(250));
        assert_eq!(stat.cpu.own_faults, 900);
    }

    #[test]
    fn a_truncated_line_is_an_error_not_zero() {
        assert!(parse_stat("12 (x) R 1 2").is_err());
        assert!(parse_stat("12 x R").is_err(), "no command name");
    }
}
