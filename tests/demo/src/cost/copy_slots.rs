//! How full image-cloner kept its copy slots (issue 17: "a copy slot never waits on anything
//! but skopeo"; DESIGN: "copy slots busy from the first second"), read from its own log at
//! level info, which every run writes: a `copying source=…` line as each copy starts, a
//! `copied source=…` or `copy failed source=…` line as it ends, each stamped with the time it
//! was written (RFC 3339, UTC, microseconds, as the fmt layer writes it). Nothing is added to
//! the run to measure it.

use std::collections::{BTreeMap, VecDeque};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, Result, bail};

/// What the log says of the copy slots.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SlotUse {
    /// Copies started.
    pub copies: usize,
    /// From image-cloner's start to its first copy's start.
    pub first_copy: Duration,
    /// The copies running, at most `slots`, over `slots`, averaged over the time from the first
    /// copy's start to the last one's (1.0 with a single copy): 1.0 when every slot was busy
    /// until there was nothing left to start.
    pub busy: f64,
    /// From image-cloner's start to the end of its last copy to end (copied or failed): what
    /// comes after it — verifying that copy, patching its workloads, the summary — is the
    /// run's tail, which plain skopeo does not have.
    pub last_copy_end: Duration,
}

impl SlotUse {
    /// What the bench prints under a round.
    pub fn line(&self, slots: usize) -> String {
        format!(
            "copy slots: the first of {} copies started {} after image-cloner; {slots} slots busy {:.1} % of the time from the first copy's start to the last one's",
            self.copies,
            crate::secs(self.first_copy),
            100.0 * self.busy
        )
    }
}

/// Reads the log file of a run spawned at `started`.
pub fn read_file(log: &Path, started: SystemTime, slots: usize) -> Result<SlotUse> {
    let text = std::fs::read_to_string(log)
        .with_context(|| format!("reading the log {}", log.display()))?;
    read(&text, started, slots)
        .with_context(|| format!("the copy slots' use, from the log {}", log.display()))
}

/// Reads a run's log; `started` is when the process was spawned.
pub fn read(log: &str, started: SystemTime, slots: usize) -> Result<SlotUse> {
    let started = started
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64);
    let mut running: BTreeMap<&str, VecDeque<i64>> = BTreeMap::new();
    // (microseconds since the epoch, +1 start / -1 end)
    let mut changes: Vec<(i64, i32)> = Vec::new();
    for line in log.lines() {
        let Some(at) = line.split_whitespace().next().and_then(unix_micros) else {
            continue;
        };
        if let Some(source) = field_after(line, " copying source=") {
            running.entry(source).or_default().push_back(at);
            changes.push((at, 1));
        } else if let Some(source) = field_after(line, " copied source=")
            .or_else(|| field_after(line, " copy failed source="))
            && running
                .get_mut(source)
                .and_then(VecDeque::pop_front)
                .is_some()
        {
            changes.push((at, -1));
        }
    }
    let starts: Vec<i64> = changes.iter().filter(|c| c.1 > 0).map(|c| c.0).collect();
    let last_end = changes.iter().filter(|c| c.1 < 0).map(|c| c.0).max();
    let (Some(&first), Some(&last)) = (starts.iter().min(), starts.iter().max()) else {
        bail!("no `copying source=` line in the log");
    };
    if first < started {
        bail!("the first copy is logged before the process was started: another run's log?");
    }
    // At one instant, starts before ends: a slot refilled in the same microsecond never shows
    // as empty.
    changes.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
    Ok(SlotUse {
        copies: starts.len(),
        first_copy: Duration::from_micros((first - started) as u64),
        busy: busy_between(&changes, first, last, slots),
        last_copy_end: Duration::from_micros(
            last_end.map_or(0, |end| (end - started).max(0)) as u64
        ),
    })
}

/// The mean of min(running, slots) / slots over `[from, to]`, from the sorted changes.
fn busy_between(changes: &[(i64, i32)], from: i64, to: i64, slots: usize) -> f64 {
    if to <= from || slots == 0 {
        return 1.0;
    }
    let cap = i64::try_from(slots).unwrap_or(i64::MAX);
    let (mut running, mut at, mut area) = (0i64, from, 0i64);
    for &(t, change) in changes {
        let t = t.clamp(from, to);
        area += (t - at) * running.clamp(0, cap);
        at = t;
        running += i64::from(change);
    }
    area += (to - at) * running.clamp(0, cap);
    area as f64 / ((to - from) as f64 * slots as f64)
}

/// The value of the field that follows `prefix` (up to the next space).
fn field_after<'a>(line: &'a str, prefix: &str) -> Option<&'a str> {
    let rest = &line[line.find(prefix)? + prefix.len()..];
    Some(rest.split(' ').next().unwrap_or(rest))
}

/// `2026-12-01T07:31:34.810074Z` → microseconds since the Unix epoch (integers: an `f64` of
/// seconds since 1970 keeps only a few microseconds of precision).
fn unix_micros(stamp: &str) -> Option<i64> {
    let stamp = stamp.strip_suffix('Z')?;
    let (date, time) = stamp.split_once('T')?;
    let mut d = date.splitn(3, '-').map(|p| p.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let mut t = time.splitn(3, ':').map(|p| p.to_owned());
    let (h, min) = (
        t.next()?.parse::<i64>().ok()?,
        t.next()?.parse::<i64>().ok()?,
    );
    let seconds = t.next()?;
    let (whole, fraction) = seconds.split_once('.').unwrap_or((&seconds, ""));
    if !(1..=12).contains(&m) || !(1..=31).contains(&day) || fraction.len() > 9 {
        return None;
    }
    let micros: i64 = format!("{fraction:0<6}")[..6].parse().ok()?;
    let secs =
        days_from_civil(y, m, day) * 86_400 + h * 3_600 + min * 60 + whole.parse::<i64>().ok()?;
    Some(secs * 1_000_000 + micros)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(stamp: &str) -> SystemTime {
        UNIX_EPOCH + Duration::from_micros(unix_micros(stamp).expect("a stamp") as u64)
    }

    #[test]
    fn stamps_are_read_as_the_fmt_layer_writes_them() {
        assert_eq!(unix_micros("1970-01-01T00:00:01.5Z"), Some(1_500_000));
        // `date -u -d 2026-12-01T07:31:34Z +%s`
        assert_eq!(
            unix_micros("2026-12-01T07:31:34.810074Z"),
            Some(1_796_110_294_810_074)
        );
        assert_eq!(unix_micros("2026-13-01T00:00:00Z"), None);
        assert_eq!(unix_micros("INFO"), None);
    }

    #[test]
    fn slots_kept_full_until_the_last_start_read_as_fully_busy() {
        let log = "\
2026-12-01T07:00:00.100000Z  INFO copying source=r/a@sha256:1 backup=b/a:1
2026-12-01T07:00:00.100000Z  INFO copying source=r/b@sha256:2 backup=b/b:1
2026-12-01T07:00:01.000000Z  INFO copied source=r/a@sha256:1 backup=b/a:1 digest=sha256:1 seconds=0.9
2026-12-01T07:00:01.000000Z  INFO copying source=r/c@sha256:3 backup=b/c:1
2026-12-01T07:00:02.000000Z  INFO copied source=r/b@sha256:2 backup=b/b:1 digest=sha256:2 seconds=1.9
2026-12-01T07:00:02.000000Z  INFO copying source=r/d@sha256:4 backup=b/d:1
2026-12-01T07:00:03.000000Z  WARN copy failed source=r/c@sha256:3 backup=b/c:1 error=x
2026-12-01T07:00:03.500000Z  INFO copied source=r/d@sha256:4 backup=b/d:1 digest=sha256:4 seconds=1.5
";
        let used = read(log, at("2026-12-01T07:00:00.080000Z"), 2).expect("slot use");
        assert_eq!(used.copies, 4);
        assert_eq!(used.first_copy, Duration::from_millis(20));
        assert!((used.busy - 1.0).abs() < 1e-9, "{used:?}");
        assert_eq!(used.last_copy_end, Duration::from_millis(3_420));
    }

    #[test]
    fn a_slot_left_idle_shows() {
        // Two slots; for the second second only one copy runs though two are still to start.
        let log = "\
2026-12-01T07:00:00.000000Z  INFO copying source=r/a@sha256:1 backup=b/a:1
2026-12-01T07:00:00.000000Z  INFO copying source=r/b@sha256:2 backup=b/b:1
2026-12-01T07:00:01.000000Z  INFO copied source=r/a@sha256:1 backup=b/a:1
2026-12-01T07:00:02.000000Z  INFO copying source=r/c@sha256:3 backup=b/c:1
2026-12-01T07:00:02.000000Z  INFO copied source=r/b@sha256:2 backup=b/b:1
2026-12-01T07:00:02.000000Z  INFO copying source=r/d@sha256:4 backup=b/d:1
";
        let used = read(log, at("2026-12-01T07:00:00.000000Z"), 2).expect("slot use");
        assert!((used.busy - 0.75).abs() < 1e-9, "{used:?}");
        assert!(read("no copies here", at("2026-12-01T07:00:00Z"), 2).is_err());
        assert!(
            read(log, at("2026-12-01T08:00:00Z"), 2).is_err(),
            "another run's log"
        );
    }
}
