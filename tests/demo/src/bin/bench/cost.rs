//! The cold rounds' costs beside their wall times (issue 17): the CPU of image-cloner itself
//! and of the skopeo processes it ran, the same for the baseline's skopeo processes; TCP
//! connections and TLS handshakes to the API server; connections and requests to each
//! registry by client; skopeo processes started per copied image. CPU time and counts do not
//! depend on what else the machine runs, unlike the wall-time ratio.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, Result};
use demo::cost::cpu::{CpuTimes, percent, proc_stat};
use demo::cost::registry_log::{Client, RequestLog, Traffic};
use demo::cost::skopeo_record::{self, LOG_ENV, REAL_ENV};
use demo::{guard, secs};
use kube_sim::Sim;
use kube_sim::faults::Connections;

/// How the bench runs skopeo: through `skopeo-recorder`, logging each process to `log`.
pub struct RecordedSkopeo {
    pub program: PathBuf,
    pub real: PathBuf,
    pub log: PathBuf,
}

impl RecordedSkopeo {
    /// The environment `skopeo-recorder` reads.
    pub fn env(&self) -> [(&'static str, String); 2] {
        [
            (LOG_ENV, self.log.display().to_string()),
            (REAL_ENV, self.real.display().to_string()),
        ]
    }

    /// Processes started so far, by subcommand.
    pub fn processes(&self) -> Result<BTreeMap<String, u64>> {
        skopeo_record::processes(&self.log)
    }
}

/// The real skopeo's path, from PATH.
pub fn real_skopeo() -> Result<PathBuf> {
    which("skopeo")
}

/// Both registries of one side, from now on: their request logs, and their processes' CPU (the
/// registries hash and store every byte skopeo sends, on the same cores).
pub struct Registries {
    source: Watched,
    dest: Watched,
}

impl Registries {
    pub fn from_now(source: &str, dest: &str) -> Result<Registries> {
        Ok(Registries {
            source: Watched::from_now(source)?,
            dest: Watched::from_now(dest)?,
        })
    }

    /// The source's and the destination's CPU since [`Registries::from_now`].
    fn cpu(&self) -> Result<RegistryCpu> {
        Ok(RegistryCpu {
            source: self.source.cpu()?,
            dest: self.dest.cpu()?,
        })
    }
}

/// One registry held by the guard, from now on.
struct Watched {
    log: RequestLog,
    pid: u32,
    before: CpuTimes,
}

impl Watched {
    fn from_now(host: &str) -> Result<Watched> {
        let (log, pid) = guard()
            .registry(host, |r| (r.log_path(), r.pid()))
            .with_context(|| format!("no registry {host} held"))?;
        let pid = pid.with_context(|| format!("registry {host} is not running"))?;
        Ok(Watched {
            log: RequestLog::from_now(&log)?,
            pid,
            before: proc_stat(pid)?.cpu,
        })
    }

    /// Its own CPU, all its threads, since [`Watched::from_now`]: user and system, and the
    /// system part alone (the kernel's: its file writes and the network, where user time is its
    /// hashing and HTTP).
    fn cpu(&self) -> Result<CpuTimes> {
        Ok(proc_stat(self.pid)?.cpu.since(&self.before))
    }
}

/// The CPU of one side's two registries.
#[derive(Debug, Clone, Copy, Default)]
pub struct RegistryCpu {
    pub source: CpuTimes,
    pub dest: CpuTimes,
}

impl RegistryCpu {
    pub fn total(&self) -> Duration {
        self.source.own + self.dest.own
    }
}

impl std::fmt::Display for RegistryCpu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} (source {}, system {}; destination {}, system {})",
            secs(self.total()),
            secs(self.source.own),
            secs(self.source.own_system),
            secs(self.dest.own),
            secs(self.dest.own_system)
        )
    }
}

/// What one side of a round (the baseline, or image-cloner) cost.
pub struct SideCost {
    pub cpu: CpuTimes,
    pub skopeo: BTreeMap<String, u64>,
    pub source: BTreeMap<Client, Traffic>,
    pub dest: BTreeMap<Client, Traffic>,
    /// The source and destination registries' CPU.
    pub registries: RegistryCpu,
}

impl SideCost {
    /// Read right after the side's run, before anything else uses the registries.
    pub fn measure(
        cpu: CpuTimes,
        skopeo: &RecordedSkopeo,
        registries: &Registries,
    ) -> Result<Self> {
        Ok(SideCost {
            cpu,
            skopeo: skopeo.processes()?,
            source: registries.source.log.traffic()?,
            dest: registries.dest.log.traffic()?,
            registries: registries.cpu()?,
        })
    }

    fn processes(&self) -> u64 {
        self.skopeo.values().sum()
    }
}

/// One cold round's costs.
pub struct ColdCost {
    pub baseline: SideCost,
    pub cloner: SideCost,
    /// The command name of the process whose CPU `cloner` holds (see [`MEASURED`]).
    pub measured: String,
    /// The simulator's CPU during image-cloner's run, serving its API calls (a real API server
    /// runs elsewhere): the bench process's, but the thread's that sampled image-cloner's memory.
    pub simulator: Duration,
    pub api: Connections,
    /// API requests by `verb resource`.
    pub api_requests: BTreeMap<String, u64>,
    pub api_answers: Answers,
    /// 1-minute load average at the start and at the end of the round.
    pub load: (f64, f64),
    /// The CPU of the round's required API requests from a bare client.
    pub floor: crate::floor::Floor,
    /// The same, each image's requests in a burst as its copy ends beside copies.
    pub floor_beside_copies: crate::floor::Floor,
}

/// The verdict of a target whose figure was not of image-cloner itself.
const NOT_JUDGED: &str = "not judged";

/// The CPU target's verdict: judged only when every round measured image-cloner itself.
fn share_verdict(median_share: f64, wrapped: &BTreeSet<&str>) -> &'static str {
    if wrapped.is_empty() {
        crate::verdict(median_share < 5.0)
    } else {
        NOT_JUDGED
    }
}

/// What the share was measured of, when not image-cloner itself: said beside the figure.
fn wrapped_note(wrapped: &BTreeSet<&str>) -> String {
    if wrapped.is_empty() {
        return String::new();
    }
    let names: Vec<&str> = wrapped.iter().copied().collect();
    format!(
        " — of `{}`, a wrapper given as IMAGE_CLONER_BIN, not of image-cloner",
        names.join("`, `")
    )
}

/// The command name of image-cloner's process. With a wrapper as `IMAGE_CLONER_BIN` (`perf`,
/// `valgrind`, a shell script that execs one) the process measured is the wrapper, and
/// image-cloner is its child: its CPU would be counted as a child's, and the share would read
/// as met when it was never measured.
pub const MEASURED: &str = "image-cloner";

impl ColdCost {
    /// image-cloner's own CPU. Each skopeo is started by a clone of image-cloner that shares
    /// its memory until it execs skopeo (`src/registry/skopeo/child.rs`): the few system calls
    /// it makes before the exec count in that skopeo process's CPU.
    pub fn own(&self) -> Duration {
        self.cloner.cpu.own
    }

    /// Its skopeo processes' CPU.
    pub fn skopeo(&self) -> Duration {
        self.cloner.cpu.children
    }

    /// [`Self::own`] as a percentage of [`Self::skopeo`].
    pub fn share(&self) -> f64 {
        percent(self.own(), self.skopeo())
    }

    /// The CPU of everything image-cloner's side ran on this machine's cores — image-cloner,
    /// its skopeo, the registries, the simulator — and of the baseline's (its skopeo, the
    /// registries). With the cores busy through the copies, the wall-time ratio follows their
    /// ratio; image-cloner's own CPU is one of its terms.
    pub fn all_cpu(&self) -> (Duration, Duration) {
        (
            self.own() + self.skopeo() + self.cloner.registries.total() + self.simulator,
            self.baseline.cpu.children + self.baseline.registries.total(),
        )
    }

    pub fn all_cpu_ratio(&self) -> f64 {
        let (cloner, baseline) = self.all_cpu();
        cloner.as_secs_f64() / baseline.as_secs_f64()
    }

    /// The floor's CPU as a percentage of [`Self::skopeo`]: the part of the share that the
    /// required API requests alone take on this machine.
    pub fn floor_share(&self) -> f64 {
        percent(self.floor.cpu, self.skopeo())
    }

    /// The floor beside copies, as a percentage of [`Self::skopeo`].
    pub fn floor_beside_copies_share(&self) -> f64 {
        percent(self.floor_beside_copies.cpu, self.skopeo())
    }
}

/// A program's path, from PATH.
fn which(name: &str) -> Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .with_context(|| format!("{name} is not on PATH"))
}

/// The simulator's requests since its counters were reset, all verbs.
pub fn api_requests(sim: &Sim) -> BTreeMap<String, u64> {
    sim.faults()
        .counters()
        .into_iter()
        .map(|((verb, resource), n)| (format!("{verb} {resource}"), n))
        .collect()
}

/// What the API server sent back to image-cloner's writes.
#[derive(Debug, Clone, Copy, Default)]
pub struct Answers {
    /// Patches and creates.
    pub writes: u64,
    /// Of those, answered with the object's metadata alone.
    pub metadata_only: u64,
    /// The bytes of all answers, reads included (list pages), bodies only.
    pub bytes: u64,
}

/// The simulator's answers since its counters were reset (its request log).
pub fn api_answers(sim: &Sim) -> Answers {
    let mut a = Answers::default();
    for r in sim.faults().requests() {
        if matches!(r.verb.as_str(), "patch" | "create") {
            a.writes += 1;
            a.metadata_only += u64::from(r.metadata_only);
        }
        a.bytes += r.answer_bytes.unwrap_or(0);
    }
    a
}

/// The 1-minute load average.
pub fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(f64::NAN)
}

fn traffic_line(t: &BTreeMap<Client, Traffic>) -> String {
    if t.is_empty() {
        return "none".into();
    }
    t.iter()
        .map(|(client, traffic)| {
            let requests = traffic
                .requests
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join(", ");
            format!(
                "{} {} conn / {} req ({requests})",
                client.label(),
                traffic.connections.len(),
                traffic.total_requests()
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn counts(m: &BTreeMap<String, u64>) -> String {
    if m.is_empty() {
        return "none".into();
    }
    m.iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The round's cost lines, printed under its wall-time line.
pub fn print_round(c: &ColdCost, copies: u64) {
    let (b, i) = (&c.baseline, &c.cloner);
    if c.measured != MEASURED {
        println!(
            "    NOTE: the process measured is `{}`, not image-cloner: its CPU below is the wrapper's, and image-cloner's counts among its children",
            c.measured
        );
    }
    println!(
        "    CPU: image-cloner itself {} (system {}, {} minor page faults), its skopeo {} ({:.1} %); baseline skopeo {}; the API simulator {}; load {:.1} → {:.1}",
        secs(i.cpu.own),
        secs(i.cpu.own_system),
        i.cpu.own_faults,
        secs(c.skopeo()),
        c.share(),
        secs(b.cpu.children),
        secs(c.simulator),
        c.load.0,
        c.load.1
    );
    let (all, all_baseline) = c.all_cpu();
    println!(
        "    all CPU on the machine: image-cloner's side {} (itself, its skopeo, the registries {}, the simulator), the baseline's {} (its skopeo, the registries {}) → {:.2}×",
        secs(all),
        i.registries,
        secs(all_baseline),
        b.registries,
        c.all_cpu_ratio()
    );
    println!(
        "    floor: the same {} API requests (a patch and an Event per Deployment) from a bare HTTP/1.1 client, one at a time on each of {} connections (not pipelined), one thread: {} of its CPU ({:.1} % of image-cloner's skopeo)",
        c.floor.requests,
        crate::floor::CONNECTIONS,
        secs(c.floor.cpu),
        c.floor_share()
    );
    println!(
        "    floor beside copies: the same requests, each image's {} in one burst as its copy (into a registry of their own, {} at a time) ended: {} of its CPU ({:.1} % of image-cloner's skopeo)",
        c.floor_beside_copies.requests / crate::IMAGES,
        crate::CONCURRENCY,
        secs(c.floor_beside_copies.cpu),
        c.floor_beside_copies_share()
    );
    println!(
        "    skopeo processes: image-cloner {} for {copies} copies ({}); baseline {} ({})",
        i.processes(),
        counts(&i.skopeo),
        b.processes(),
        counts(&b.skopeo)
    );
    println!(
        "    API server: {} TCP connections, {} TLS handshakes ({} resumed), at most {} requests in flight; requests: {}",
        c.api.accepted,
        c.api.tls_handshakes,
        c.api.resumed_tls_handshakes,
        c.api.peak_in_flight,
        counts(&c.api_requests)
    );
    println!(
        "    API answers: {} in all; {} of {} writes answered with the object's metadata alone",
        crate::mib(c.api_answers.bytes / 1024),
        c.api_answers.metadata_only,
        c.api_answers.writes
    );
    println!(
        "    source registry, image-cloner: {}",
        traffic_line(&i.source)
    );
    println!(
        "    backup registry, image-cloner: {}",
        traffic_line(&i.dest)
    );
    println!("    source registry, baseline: {}", traffic_line(&b.source));
    println!("    baseline registry, baseline: {}", traffic_line(&b.dest));
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

fn each<T: std::fmt::Display>(costs: &[&ColdCost], f: impl Fn(&ColdCost) -> T) -> String {
    costs
        .iter()
        .map(|c| f(c).to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

fn connections(t: &BTreeMap<Client, Traffic>) -> usize {
    t.values().map(|t| t.connections.len()).sum()
}

/// A results row: figure, measured, target, verdict ("" when there is no target).
pub type Row = (String, String, String, &'static str);

/// The results rows of the cold costs; `copies` per round, as run --once reported them.
pub fn rows(costs: &[&ColdCost], copies: &[u64]) -> Vec<Row> {
    let share: Vec<f64> = costs.iter().map(|c| c.share()).collect();
    let total_ratio = |c: &ColdCost| {
        (c.cloner.cpu.own + c.cloner.cpu.children).as_secs_f64()
            / c.baseline.cpu.children.as_secs_f64()
    };
    let median_share = median(share.clone());
    let wrapped: BTreeSet<&str> = costs
        .iter()
        .map(|c| c.measured.as_str())
        .filter(|m| *m != MEASURED)
        .collect();
    let per_copy = |c: &ColdCost, n: u64| c.cloner.processes() as f64 / n.max(1) as f64;
    let per_copy_ok = costs
        .iter()
        .zip(copies)
        .all(|(c, n)| c.cloner.processes() == *n);
    vec![
        (
            "cold: image-cloner's own CPU, per round".into(),
            each(costs, |c| secs(c.own())),
            String::new(),
            "",
        ),
        (
            "cold: its skopeo processes' CPU, per round".into(),
            each(costs, |c| secs(c.skopeo())),
            String::new(),
            "",
        ),
        (
            "cold: baseline skopeo processes' CPU, per round".into(),
            each(costs, |c| secs(c.baseline.cpu.children)),
            String::new(),
            "",
        ),
        (
            "cold: own CPU / its skopeo CPU, median".into(),
            format!(
                "{median_share:.1} % ({}){}",
                share
                    .iter()
                    .map(|s| format!("{s:.1}"))
                    .collect::<Vec<_>>()
                    .join(", "),
                wrapped_note(&wrapped)
            ),
            "< 5 %".into(),
            share_verdict(median_share, &wrapped),
        ),
        (
            "cold: floor, the required API requests from a bare client / its skopeo CPU, median"
                .into(),
            format!(
                "{:.1} % ({})",
                median(costs.iter().map(|c| c.floor_share()).collect()),
                each(costs, |c| format!("{:.1}", c.floor_share()))
            ),
            String::new(),
            "",
        ),
        (
            "cold: floor beside copies, a burst per copied image / its skopeo CPU, median".into(),
            format!(
                "{:.1} % ({})",
                median(
                    costs
                        .iter()
                        .map(|c| c.floor_beside_copies_share())
                        .collect()
                ),
                each(costs, |c| format!("{:.1}", c.floor_beside_copies_share()))
            ),
            String::new(),
            "",
        ),
        (
            "cold: CPU ratio (own + skopeo) / baseline skopeo".into(),
            each(costs, |c| format!("{:.2}×", total_ratio(c))),
            String::new(),
            "",
        ),
        (
            "cold: registries' CPU (source + destination), image-cloner's side / the baseline's"
                .into(),
            each(costs, |c| {
                format!("{} / {}", c.cloner.registries, c.baseline.registries)
            }),
            String::new(),
            "",
        ),
        (
            "cold: CPU ratio, all the side ran (+ registries, simulator) / the baseline's".into(),
            each(costs, |c| format!("{:.2}×", c.all_cpu_ratio())),
            String::new(),
            "",
        ),
        (
            "cold: skopeo processes per copied image".into(),
            costs
                .iter()
                .zip(copies)
                .map(|(c, n)| format!("{:.2}", per_copy(c, *n)))
                .collect::<Vec<_>>()
                .join(", "),
            "= 1 (the copy)".into(),
            crate::verdict(per_copy_ok),
        ),
        (
            "cold: API server TCP connections / TLS handshakes (full)".into(),
            each(costs, |c| {
                format!(
                    "{}/{} ({})",
                    c.api.accepted,
                    c.api.tls_handshakes,
                    c.api.tls_handshakes - c.api.resumed_tls_handshakes
                )
            }),
            String::new(),
            "",
        ),
        (
            "cold: API answers (writes answered with metadata alone)".into(),
            each(costs, |c| {
                format!(
                    "{} ({}/{})",
                    crate::mib(c.api_answers.bytes / 1024),
                    c.api_answers.metadata_only,
                    c.api_answers.writes
                )
            }),
            String::new(),
            "",
        ),
        (
            "cold: connections to the source registry (cloner/baseline)".into(),
            each(costs, |c| {
                format!(
                    "{}/{}",
                    connections(&c.cloner.source),
                    connections(&c.baseline.source)
                )
            }),
            String::new(),
            "",
        ),
        (
            "cold: connections to the backup registry (cloner/baseline)".into(),
            each(costs, |c| {
                format!(
                    "{}/{}",
                    connections(&c.cloner.dest),
                    connections(&c.baseline.dest)
                )
            }),
            String::new(),
            "",
        ),
        (
            "cold: load average during the rounds (1 min, start→end)".into(),
            each(costs, |c| format!("{:.1}→{:.1}", c.load.0, c.load.1)),
            String::new(),
            "",
        ),
    ]
}

/// The number of cold rounds: `BENCH_ROUNDS` when set to a positive number, else `default`.
pub fn rounds(default: usize) -> usize {
    std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(default)
}

/// A path for a per-round file in `work`.
pub fn round_file(work: &Path, what: &str, round: usize) -> PathBuf {
    work.join(format!("{what}-{round}.log"))
}

/// Zero, for the baseline's own CPU: the bench process is not the baseline.
pub fn children_only(cpu: CpuTimes) -> CpuTimes {
    CpuTimes {
        children: cpu.children,
        ..CpuTimes::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_share_measured_of_a_wrapper_is_not_judged() {
        let none = BTreeSet::new();
        assert_eq!(share_verdict(4.9, &none), "met");
        assert_eq!(share_verdict(9.5, &none), "MISSED");
        assert_eq!(wrapped_note(&none), "");
        let perf = BTreeSet::from(["perf"]);
        assert_eq!(share_verdict(0.4, &perf), NOT_JUDGED);
        assert!(
            wrapped_note(&perf).contains("of `perf`, a wrapper"),
            "{}",
            wrapped_note(&perf)
        );
    }
}
