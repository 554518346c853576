//! The source-registry policy end to end, with the `image-cloner` binary, real registries, the
//! real skopeo and (for the daemon) the Kubernetes API simulator:
//! - a registry that answers 429 with `Retry-After` is paused — it alone — for as long as it
//!   asks: a small proxy in front of it counts the requests, and none arrives early, while
//!   another registry's images are copied meanwhile;
//! - a source served only with credentials is private: not copied, `private-source` in `plan`,
//!   a Warning Event; copied once `copy_private_sources` names its registry; the daemon logs
//!   the private repository once, however many workloads and passes meet it;
//! - `source_include` / `source_exclude` leave sources out, shown by `plan` as `excluded`.

mod common;

use std::time::{Duration, Instant};

use common::daemon::Daemon;
use common::e2e::{Env, text};
use common::ratelimit::{Answer, RateLimiter};
use common::*;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ListParams};
use kube_sim::fixtures::workload;
use serde_json::json;
use testbed::{Credentials, Registry, RegistryOptions};

/// The `copy` command: one registry throttles twice with `Retry-After: 5`, the other not at
/// all. Both images are copied; the throttled registry got no request before its
/// `Retry-After` elapsed, and the other one was done before the first was asked again.
#[test]
fn copy_pauses_only_the_registry_that_throttles() {
    let (slow_upstream, fast_upstream) = (plain_registry(), plain_registry());
    let backup = plain_registry();
    push_all(&slow_upstream, &small_image("slow", 61), "team/app", "1");
    push_all(&fast_upstream, &small_image("fast", 62), "team/tool", "1");
    let slow = RateLimiter::start(&slow_upstream.host(), 2, 5);
    let fast = RateLimiter::start(&fast_upstream.host(), 0, 0);
    let hosts = format!("{},{},{}", slow.host(), fast.host(), backup.host());
    let cloner = Cloner::new(&format!("{}/mirror", backup.host()))
        .set("IMAGE_CLONER_INSECURE_REGISTRIES", hosts)
        .set("IMAGE_CLONER_RETRY_TIMES", "0");

    let out = cloner.run(&[
        "copy",
        &format!("{}/team/app:1", slow.host()),
        &format!("{}/team/tool:1", fast.host()),
    ]);
    let printed = stdout(&out);
    assert!(out.status.success(), "{printed}{}", stderr(&out));
    assert!(printed.contains("2 image(s): 2 copied"), "{printed}");

    let (s, f) = (slow.counts(), fast.counts());
    eprintln!("throttled registry: {s:?}; other registry: {f:?}");
    assert_eq!(s.throttled, 2, "{:#?}", slow.log());
    assert_eq!(
        s.early,
        0,
        "asked before Retry-After elapsed: {:#?}",
        slow.log()
    );
    assert!(s.forwarded > 0);
    assert_eq!((f.throttled, f.early), (0, 0));
    let resumed = first_forwarded(&slow);
    let fast_done = fast.log().last().map(|(t, _, _)| *t).expect("requests");
    assert!(
        fast_done < resumed,
        "the other registry waited for the throttled one: {:#?} {:#?}",
        fast.log(),
        slow.log()
    );
}

fn first_forwarded(proxy: &RateLimiter) -> Instant {
    proxy
        .log()
        .iter()
        .find(|(_, a, _)| *a == Answer::Forwarded)
        .map(|(t, _, _)| *t)
        .expect("a forwarded request")
}

#[test]
fn on_the_simulator() {
    let dir = tempfile::tempdir().expect("temp dir");
    let env = Env::on_simulator(dir.path());
    let mut failed = Vec::new();
    type Scenario = (&'static str, fn(&Env));
    let scenarios: [Scenario; 3] = [
        (
            "a throttling registry is paused alone; one RateLimited Event",
            throttled_registry,
        ),
        (
            "private sources and filters: plan says, run does",
            private_and_excluded,
        ),
        (
            "the daemon logs a private repository once, not at every pass",
            private_repository_logged_once,
        ),
    ];
    for (name, scenario) in scenarios {
        eprintln!("--- {name}");
        if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| scenario(&env))).is_err() {
            failed.push(name);
        }
    }
    assert!(failed.is_empty(), "failed: {failed:?}");
}

/// `(reason, series count)` of the Warning Events about `name`.
fn warnings(env: &Env, ns: &str, name: &str) -> Vec<(String, Option<i32>)> {
    let api = Api::<Event>::namespaced(env.client.clone(), ns);
    let list = env
        .rt
        .block_on(api.list(&ListParams::default()))
        .expect("list events");
    list.items
        .into_iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
        .filter(|e| e.type_.as_deref() == Some("Warning"))
        .map(|e| (e.reason.unwrap_or_default(), e.series.map(|s| s.count)))
        .collect()
}

/// The value of one metric line of the daemon's `/metrics`.
fn metric(daemon: &Daemon, line_start: &str) -> Option<f64> {
    let (_, body) = daemon.get("/metrics");
    body.lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

/// The daemon meets a registry that answers its first request 429 with `Retry-After: 40`
/// (longer than a request waits inline): the workload on it fails and is retried by its
/// backoff without a single request to that registry until the 40 s are over, gets one
/// `RateLimited` Event (not one per retry), and is patched afterwards. A workload on another
/// registry is patched meanwhile.
fn throttled_registry(env: &Env) {
    let ns = "e2e-throttle";
    env.namespace(ns, &[]);
    let upstream = plain_registry();
    push_all(&upstream, &small_image("throttled", 71), "team/slow", "1");
    // 40 s: more than a request waits inline (15 s) at the first two retries of the
    // workload's backoff (within 6.25 s and 18.75 s), so it fails at least twice.
    let proxy = RateLimiter::start(&upstream.host(), 1, 40);
    let hosts = format!("{},{},{}", proxy.host(), env.source.host(), env.backup_host);
    let mut daemon = Daemon::start(env.cloner(
        &[ns],
        &[("IMAGE_CLONER_INSECURE_REGISTRIES", hosts.as_str())],
    ));
    let slow_image = format!("{}/team/slow:1", proxy.host());
    env.create(workload(
        "Deployment",
        ns,
        "slow",
        &[("app", &slow_image)],
        &[],
        json!({}),
    ));
    env.eventually(Duration::from_secs(30), "the proxy answered 429", || {
        proxy.counts().throttled == 1
    });
    env.create(workload(
        "Deployment",
        ns,
        "fast",
        &[("app", &env.images.sidecar.0)],
        &[],
        json!({}),
    ));
    env.eventually(
        Duration::from_secs(30),
        "the other registry's workload patched",
        || env.resolves_in_backup(&env.images("Deployment", ns, "fast")[0]),
    );
    assert_eq!(
        proxy.counts().forwarded,
        0,
        "patched while the throttled registry was still paused: {:#?}",
        proxy.log()
    );
    env.eventually(
        Duration::from_secs(120),
        "patched once Retry-After is over",
        || env.resolves_in_backup(&env.images("Deployment", ns, "slow")[0]),
    );
    let counts = proxy.counts();
    let failures = metric(
        &daemon,
        "image_cloner_reconcile_errors_total{reason=\"RateLimited\"}",
    );
    let throttled = metric(
        &daemon,
        &format!(
            "image_cloner_source_throttled_total{{registry=\"{}\"}}",
            proxy.host()
        ),
    );
    eprintln!(
        "throttled registry: {counts:?}; RateLimited reconcile failures: {failures:?}; source_throttled_total: {throttled:?}"
    );
    assert_eq!(counts.throttled, 1, "{:#?}", proxy.log());
    assert_eq!(
        counts.early,
        0,
        "asked before Retry-After elapsed: {:#?}",
        proxy.log()
    );
    assert_eq!(throttled, Some(1.0));
    assert!(failures.is_some_and(|n| n >= 2.0), "retried: {failures:?}");
    let rate_limited: Vec<_> = warnings(env, ns, "slow")
        .into_iter()
        .filter(|(r, _)| r == "RateLimited")
        .collect();
    assert_eq!(
        rate_limited,
        [("RateLimited".to_owned(), None)],
        "one Event, no series"
    );
    assert_eq!(daemon.stop(), Some(0), "{}", daemon.log());
    env.clear(ns);
}

/// A source registry with htpasswd holding `corp/secret:1` (seeded by `seed`), and a docker
/// config with its credentials: its images are served only with them.
struct PrivateSource {
    registry: Registry,
    /// `<host>/corp/secret:1`.
    image: String,
    /// `IMAGE_CLONER_INSECURE_REGISTRIES` for it and for `env`'s source and backup registries.
    insecure: String,
    docker_config: String,
    _config_dir: tempfile::TempDir,
}

impl PrivateSource {
    fn start(env: &Env, seed: u64) -> PrivateSource {
        let alice = Credentials::new("alice", "private-pass");
        let registry = Registry::start(RegistryOptions {
            auth: Some(alice.clone()),
            ..Default::default()
        })
        .expect("start a registry with htpasswd");
        push_all(&registry, &small_image("secret", seed), "corp/secret", "1");
        let config_dir = tempfile::tempdir().expect("a temp dir");
        let docker = config_dir.path().join("config.json");
        testbed::write_docker_config(&docker, &[(&registry.host(), &alice)])
            .expect("docker config");
        PrivateSource {
            image: format!("{}/corp/secret:1", registry.host()),
            insecure: format!(
                "{},{},{}",
                registry.host(),
                env.source.host(),
                env.backup_host
            ),
            docker_config: docker.to_str().expect("a UTF-8 path").to_owned(),
            _config_dir: config_dir,
            registry,
        }
    }

    /// The settings that make the registry reachable and its images readable.
    fn settings(&self) -> Vec<(&'static str, &str)> {
        vec![
            ("IMAGE_CLONER_INSECURE_REGISTRIES", self.insecure.as_str()),
            ("IMAGE_CLONER_DOCKER_CONFIG", self.docker_config.as_str()),
        ]
    }
}

/// A source registry with htpasswd (its images are served only with credentials, which the
/// docker config has): `plan` says `private-source`, `run --once` leaves it alone with a
/// Warning Event and copies nothing of it; with `copy_private_sources` naming the registry it
/// is copied and patched. An image matching `source_exclude` is `excluded` throughout.
fn private_and_excluded(env: &Env) {
    let ns = "e2e-private";
    env.namespace(ns, &[]);
    let private = PrivateSource::start(env, 81);
    let secret = private.image.clone();
    env.create(workload(
        "Deployment",
        ns,
        "web",
        &[
            ("secret", &secret),
            ("public", &env.images.app.0),
            ("tools", &env.images.init.0),
        ],
        &[],
        json!({}),
    ));
    let allowed = private.registry.host();
    let exclude = format!("{}/tools/*", env.source.host());
    let mut settings = private.settings();
    settings.push(("IMAGE_CLONER_SOURCE_EXCLUDE", exclude.as_str()));

    let plan = env.run(&[ns], &settings, &["plan", "--output", "json"]);
    assert!(plan.status.success(), "{}", text(&plan));
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&plan.stdout).expect("plan JSON");
    let decision = |container: &str| {
        rows.iter()
            .find(|r| r["namespace"] == ns && r["container"] == container)
            .map(|r| r["decision"].as_str().unwrap_or_default().to_owned())
    };
    assert_eq!(
        decision("secret").as_deref(),
        Some("private-source"),
        "{rows:?}"
    );
    assert_eq!(decision("public").as_deref(), Some("clone"), "{rows:?}");
    assert_eq!(decision("tools").as_deref(), Some("excluded"), "{rows:?}");

    let run = env.run(&[ns], &settings, &["run", "--once"]);
    assert!(run.status.success(), "{}", text(&run));
    let images = env.images("Deployment", ns, "web");
    assert_eq!(images[0], secret, "the private image stays");
    assert!(
        env.resolves_in_backup(&images[1]),
        "the public one is patched: {images:?}"
    );
    assert_eq!(images[2], env.images.init.0, "the excluded one stays");
    let backup_repo = format!("{}:1", flat(&private.registry, "corp/secret"));
    let mut in_backup = Some(String::new());
    env.backup_control(|r| in_backup = testbed::digest_of(r, &backup_repo).expect("inspect"));
    assert_eq!(in_backup, None, "nothing of the private image was copied");
    let warned = warnings(env, ns, "web");
    assert!(
        warned.iter().any(|(r, _)| r == "PrivateSource"),
        "{warned:?}"
    );

    // status: the workload could not start without its private source's registry.
    let status = env.run(&[ns], &settings, &["status", "--output", "json"]);
    assert!(status.status.success(), "{}", text(&status));
    let report: serde_json::Value = serde_json::from_slice(&status.stdout).expect("status JSON");
    let web = report["workloads"].as_array().and_then(|w| {
        w.iter()
            .find(|w| w["namespace"] == ns && w["name"] == "web")
    });
    assert_eq!(
        web.map(|w| w["state"].clone()),
        Some(json!("private_source")),
        "{report}"
    );

    settings.push(("IMAGE_CLONER_COPY_PRIVATE_SOURCES", allowed.as_str()));
    let run = env.run(&[ns], &settings, &["run", "--once"]);
    assert!(run.status.success(), "{}", text(&run));
    let images = env.images("Deployment", ns, "web");
    assert!(
        env.resolves_in_backup(&images[0]),
        "copied once allowed: {images:?}"
    );
    assert_eq!(images[2], env.images.init.0, "still excluded");
    env.clear(ns);
}

/// The daemon (`image-cloner run`) with three Deployments on one private image, each beside a
/// public image still to copy (so each is reconciled at least twice: parked on the copy, then
/// patched): every workload gets its `PrivateSource` Warning Event, and the log tells the
/// private repository once, where a line per workload and pass would bury the rest at 3 a.m.
fn private_repository_logged_once(env: &Env) {
    let ns = "e2e-private-daemon";
    env.namespace(ns, &[]);
    let private = PrivateSource::start(env, 91);
    let secret = private.image.clone();
    let public = env.push_fresh("team/public-beside-private", 92);
    let mut daemon = Daemon::start(env.cloner(&[ns], &private.settings()));
    let names = ["web-1", "web-2", "web-3"];
    for name in names {
        env.create(workload(
            "Deployment",
            ns,
            name,
            &[("secret", &secret), ("public", &public)],
            &[],
            json!({}),
        ));
    }
    for name in names {
        daemon.wait_until(
            Duration::from_secs(60),
            &format!("{name}'s public image patched"),
            || env.resolves_in_backup(&env.images("Deployment", ns, name)[1]),
        );
        assert_eq!(env.images("Deployment", ns, name)[0], secret, "{name}");
        env.eventually(
            Duration::from_secs(30),
            &format!("{name}'s PrivateSource Event"),
            || {
                warnings(env, ns, name)
                    .iter()
                    .any(|(r, _)| r == "PrivateSource")
            },
        );
    }
    let log = daemon.log();
    let told: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("source repository private") || l.contains("private source"))
        .collect();
    assert_eq!(told.len(), 1, "{told:#?}");
    assert!(
        told[0].contains(&format!("{}/corp/secret", private.registry.host())),
        "{told:#?}"
    );
    assert_eq!(daemon.stop(), Some(0), "{}", daemon.log());
    env.clear(ns);
}
