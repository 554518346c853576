//! Two `image-cloner run` daemons on one Lease, the leader SIGKILLed in the middle of a cold run
//! of 500 workloads: the standby, whose caches were warm and which wrote nothing, takes over and
//! finishes; no workload is written by both; copies are repeated at most for those the killed
//! leader had in flight. On the simulator the request log proves who wrote what; on the real
//! API server (envtest) the stored objects and Events do.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::cluster::Envtest;
use common::daemon::Daemon;
use common::e2e::Env;
use common::throttle::Throttle;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ListParams};
use kube_sim::fixtures::workload;
use serde_json::json;

const NS: &str = "ha";
const LEASE_NS: &str = "ha-leases";
const LEASE: &str = "image-cloner";
const WORKLOADS: usize = 500;
const IMAGES: usize = 8;
/// Short, so the takeover comes soon; renewals every 4 s, writes stop 1 s before expiry.
const LEASE_DURATION: &str = "6s";
/// Per connection: each 64 KiB layer takes seconds, so a copy is caught in flight.
const BYTES_PER_SECOND: usize = 16 * 1024;
const CONVERGE: Duration = Duration::from_secs(240);

/// The cluster and the slow way to the source registry the workloads' images are read through.
struct Cluster<'a> {
    env: &'a Env,
    throttle: Throttle,
}

impl<'a> Cluster<'a> {
    /// 8 two-platform images behind the throttle, 500 Deployments over them.
    fn new(env: &'a Env) -> Cluster<'a> {
        for i in 0..IMAGES {
            let spec = common::multi_arch(&format!("ha-{i}"), 7_000 + i as u64);
            common::push_all(&env.source, &spec, &format!("ha/app-{i}"), "1");
        }
        let throttle = Throttle::start(&env.source.host(), BYTES_PER_SECOND);
        let images: Vec<String> = (0..IMAGES)
            .map(|i| format!("{}/ha/app-{i}:1", throttle.host()))
            .collect();
        env.namespace(NS, &[]);
        env.namespace(LEASE_NS, &[]);
        let objects = (0..WORKLOADS)
            .map(|i| {
                let name = format!("w-{i:03}");
                let image = images[i % IMAGES].as_str();
                workload("Deployment", NS, &name, &[("app", image)], &[], json!({}))
            })
            .collect();
        env.create_many(objects);
        Cluster { env, throttle }
    }

    /// One replica, named `name` (its Events' instance, the start of its identity).
    fn replica(&self, name: &str) -> Daemon {
        let insecure = format!(
            "{},{},{}",
            self.env.source.host(),
            self.throttle.host(),
            self.env.backup_host
        );
        let cmd = self.env.cloner(
            &[NS],
            &[
                ("POD_NAME", name),
                ("IMAGE_CLONER_LEADER_ELECTION", "on"),
                ("IMAGE_CLONER_LEASE_NAMESPACE", LEASE_NS),
                ("IMAGE_CLONER_LEASE_DURATION", LEASE_DURATION),
                ("IMAGE_CLONER_INSECURE_REGISTRIES", &insecure),
                ("MAX_CONCURRENT_RECONCILES", "2"),
                ("IMAGE_CLONER_SHUTDOWN_GRACE", "5s"),
            ],
        );
        Daemon::start(cmd)
    }

    /// Deployments whose image is not in the backup registry yet.
    fn unconverged(&self) -> Vec<String> {
        let prefix = format!("{}/", self.env.backup_host);
        self.env
            .generations("Deployment", NS)
            .into_iter()
            .filter(|(_, _, image)| !image.starts_with(&prefix))
            .map(|(name, _, _)| name)
            .collect()
    }
}

/// The Lease's holder ("" when released).
fn holder(env: &Env) -> String {
    let api = Api::<Lease>::namespaced(env.client.clone(), LEASE_NS);
    let lease = env.rt.block_on(api.get(LEASE)).expect("the Lease exists");
    lease
        .spec
        .and_then(|s| s.holder_identity)
        .unwrap_or_default()
}

/// A gauge or counter from the daemon's `/metrics`.
fn metric(daemon: &Daemon, name: &str) -> Option<f64> {
    daemon.metrics_address()?;
    let (_, body) = daemon.get("/metrics");
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// Copies a daemon's log says it started and finished.
fn copies(log: &str) -> (usize, usize) {
    let count = |what: &str| log.lines().filter(|l| l.contains(what)).count();
    (count(" copying source="), count(" copied source="))
}

/// Waits until `check` holds; on a timeout, fails with the end of each daemon's log.
fn wait(within: Duration, what: &str, daemons: &[&Daemon], mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !check() {
        if Instant::now() > deadline {
            let logs: Vec<String> = daemons
                .iter()
                .map(|d| {
                    let log = d.log();
                    let lines: Vec<&str> = log.lines().collect();
                    lines[lines.len().saturating_sub(30)..].join("\n")
                })
                .collect();
            panic!(
                "timed out after {within:?}: {what}; logs:\n{}",
                logs.join("\n---\n")
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// What happened around the kill.
struct Takeover {
    /// The killed leader's log, complete up to the kill.
    leader_log: String,
    standby: Daemon,
    /// Requests the simulator had logged once the killed leader was reaped.
    requests_at_kill: usize,
    takeover: Duration,
}

/// Starts the leader, then the standby; kills the leader once it has patched a workload (with
/// copies left to make) and the standby is ready; waits for the standby to lead.
fn kill_the_leader_mid_run(c: &Cluster) -> Takeover {
    let env = c.env;
    let mut leader = c.replica("replica-a");
    wait(
        Duration::from_secs(60),
        "replica-a leads",
        &[&leader],
        || metric(&leader, "image_cloner_leader") == Some(1.0),
    );
    let standby = c.replica("replica-b");
    wait(
        Duration::from_secs(60),
        "replica-b is ready",
        &[&leader, &standby],
        || standby.ready(),
    );
    // Patched, and its Cloned Event published (it follows the patch, and API calls take turns):
    // the Events are what proves on the real API server that both replicas wrote.
    wait(
        CONVERGE,
        "replica-a patched a workload and said so",
        &[&leader, &standby],
        || {
            metric(&leader, "image_cloner_workloads_patched_total").unwrap_or(0.0) >= 1.0
                && metric(
                    &leader,
                    "image_cloner_api_requests_total{verb=\"create_event\",outcome=\"success\"}",
                )
                .unwrap_or(0.0)
                    >= 1.0
        },
    );
    assert_eq!(
        metric(&standby, "image_cloner_leader"),
        Some(0.0),
        "the standby does not lead"
    );
    assert!(
        !c.unconverged().is_empty(),
        "the leader finished before the kill: make the copies slower"
    );
    assert!(holder(c.env).starts_with("replica-a_"), "{}", holder(c.env));
    leader.kill();
    let killed = Instant::now();
    let requests_at_kill = env.sim.as_ref().map_or(0, |s| s.faults().requests().len());
    wait(
        Duration::from_secs(60),
        "replica-b leads",
        &[&standby],
        || metric(&standby, "image_cloner_leader") == Some(1.0),
    );
    let takeover = killed.elapsed();
    Takeover {
        leader_log: leader.log(),
        standby,
        requests_at_kill,
        takeover,
    }
}

/// The whole scenario; returns the takeover for the server-specific checks.
fn two_replicas_and_a_kill(env: &Env) -> Takeover {
    let c = Cluster::new(env);
    let t = kill_the_leader_mid_run(&c);
    wait(CONVERGE, "every workload converges", &[&t.standby], || {
        c.unconverged().is_empty()
    });
    for (name, generation, image) in env.generations("Deployment", NS) {
        assert_eq!(generation, 2, "{name}: one write, to {image}");
        assert!(env.resolves_in_backup(&image), "{name}: {image}");
    }
    let (leader_started, leader_done) = copies(&t.leader_log);
    let (standby_started, _) = copies(&t.standby.log());
    eprintln!(
        "takeover {:.1} s after SIGKILL (lease {LEASE_DURATION}); leader: {leader_started} copies started, {leader_done} finished; standby: {standby_started} started",
        t.takeover.as_secs_f64()
    );
    let in_flight = leader_started - leader_done;
    let repeated = (leader_started + standby_started).saturating_sub(IMAGES);
    assert!(
        repeated <= in_flight,
        "{repeated} copies repeated, {in_flight} in flight at the kill"
    );
    assert!(holder(c.env).starts_with("replica-b_"), "{}", holder(c.env));
    t
}

/// Who patched each Deployment, by user agent, before and after the kill.
fn patches_by_workload(
    requests: &[kube_sim::faults::RequestRecord],
) -> BTreeMap<&str, BTreeSet<&str>> {
    let mut by = BTreeMap::<&str, BTreeSet<&str>>::new();
    for r in requests {
        if r.verb == "patch" && r.resource == "deployments" && r.namespace == NS && r.code == 200 {
            by.entry(r.name.as_str())
                .or_default()
                .insert(r.user_agent.as_str());
        }
    }
    by
}

#[test]
fn on_the_simulator_the_standby_finishes_and_nothing_is_written_twice() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let env = Env::on_simulator(dir.path());
    let mut t = two_replicas_and_a_kill(&env);
    let sim = env.sim.as_ref().expect("the simulator");
    let requests = sim.faults().requests();
    let agent = |name: &str| format!("({name}_");
    let before = &requests[..t.requests_at_kill];
    let standby_before: Vec<_> = before
        .iter()
        .filter(|r| r.user_agent.contains(&agent("replica-b")) && r.is_write())
        .collect();
    assert!(
        standby_before.is_empty(),
        "the standby wrote: {standby_before:?}"
    );
    let patched = patches_by_workload(&requests);
    assert_eq!(patched.len(), WORKLOADS, "every workload patched");
    let both: Vec<_> = patched.iter().filter(|(_, who)| who.len() > 1).collect();
    assert!(both.is_empty(), "written by both replicas: {both:?}");
    let by_a = patches_by_workload(before).len();
    let by_b = patched
        .values()
        .filter(|who| who.iter().all(|w| w.contains(&agent("replica-b"))))
        .count();
    eprintln!("patched by replica-a before the kill: {by_a}; by replica-b after: {by_b}");
    assert!(
        by_a > 0 && by_b > 0,
        "the kill came in the middle: {by_a} + {by_b}"
    );
    assert_eq!(t.standby.stop(), Some(0));
    assert_eq!(holder(&env), "", "a stopping leader releases the Lease");
}

#[test]
fn on_the_real_api_server_the_standby_finishes_and_nothing_is_written_twice() {
    let Some(envtest) = Envtest::start() else {
        return;
    };
    let env = Env::new("envtest", &envtest.kubeconfig());
    let mut t = two_replicas_and_a_kill(&env);
    // One Cloned Event per workload at most, from one replica or the other, never both.
    let events = Api::<Event>::namespaced(env.client.clone(), NS);
    let list = env
        .rt
        .block_on(events.list(&ListParams::default()))
        .expect("list Events");
    let mut cloned = BTreeMap::<String, Vec<String>>::new();
    for e in list
        .items
        .iter()
        .filter(|e| e.reason.as_deref() == Some("Cloned"))
    {
        let name = e
            .regarding
            .as_ref()
            .and_then(|r| r.name.clone())
            .unwrap_or_default();
        let count = e.series.as_ref().map_or(1, |s| s.count.max(1));
        for _ in 0..count {
            cloned
                .entry(name.clone())
                .or_default()
                .push(e.reporting_instance.clone().unwrap_or_default());
        }
    }
    let twice: Vec<_> = cloned.iter().filter(|(_, by)| by.len() > 1).collect();
    assert!(twice.is_empty(), "patched twice: {twice:?}");
    let instances: BTreeSet<&str> = cloned.values().flatten().map(String::as_str).collect();
    assert_eq!(
        instances,
        BTreeSet::from(["replica-a", "replica-b"]),
        "both replicas patched"
    );
    let leadership = env.events(LEASE_NS, LEASE);
    for who in ["replica-a", "replica-b"] {
        assert!(
            leadership
                .iter()
                .any(|(_, reason, note)| reason == "LeaderElection"
                    && note.starts_with(&format!("{who}_"))
                    && note.ends_with("became leader")),
            "{who} became leader: {leadership:?}"
        );
    }
    assert_eq!(t.standby.stop(), Some(0));
    assert_eq!(holder(&env), "", "a stopping leader releases the Lease");
}

#[test]
fn on_the_simulator_a_leader_that_cannot_renew_stops_writing_until_it_renews() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let env = Env::on_simulator(dir.path());
    let sim = env.sim.as_ref().expect("the simulator");
    let ns = "ha-renew";
    env.namespace(ns, &[]);
    env.namespace(LEASE_NS, &[]);
    let deployment = |name: &str| {
        let image = env.images.app.0.as_str();
        workload("Deployment", ns, name, &[("app", image)], &[], json!({}))
    };
    let patched = |name: &str| {
        env.images("Deployment", ns, name)[0].starts_with(&format!("{}/", env.backup_host))
    };
    env.create(deployment("before"));
    let leader = Daemon::start(env.cloner(
        &[ns],
        &[
            ("POD_NAME", "replica-a"),
            ("IMAGE_CLONER_LEADER_ELECTION", "on"),
            ("IMAGE_CLONER_LEASE_NAMESPACE", LEASE_NS),
            ("IMAGE_CLONER_LEASE_DURATION", LEASE_DURATION),
        ],
    ));
    let gauge = || metric(&leader, "image_cloner_leader");
    wait(CONVERGE, "the leader patches", &[&leader], || {
        patched("before")
    });
    // The API server refuses every renewal: nobody can take the Lease over either.
    sim.faults().fail_next(kube_sim::faults::FailRule {
        verb: Some("patch".into()),
        resource: Some("leases".into()),
        count: u64::MAX,
        status: 503,
        retry_after: None,
    });
    wait(
        Duration::from_secs(60),
        "it stops leading",
        &[&leader],
        || gauge() == Some(0.0),
    );
    assert!(
        leader.log().contains("the Lease was not renewed in time"),
        "{}",
        leader.log()
    );
    assert!(holder(&env).starts_with("replica-a_"), "still its Lease");
    env.create(deployment("meanwhile"));
    // Long enough for a daemon that ignored its Lease to patch it many times over.
    std::thread::sleep(Duration::from_secs(3));
    assert!(!patched("meanwhile"), "patched without a valid Lease");
    sim.faults().clear();
    wait(
        Duration::from_secs(90),
        "it renews and leads again",
        &[&leader],
        || gauge() == Some(1.0),
    );
    wait(CONVERGE, "it reconciles what it left", &[&leader], || {
        patched("meanwhile")
    });
}
