//! The daemon's cold start when the workloads listed first share one slow image: they wait
//! for its copy parked, holding none of the controller's slots, so the workloads listed after
//! them are reconciled, copied and patched while that copy still runs. Had they waited inside
//! their reconciles (1,024 slots per kind before parking, fewer than the 1,100 listed first),
//! nothing else would have started until the slow copy ended.

use std::time::Duration;

use kube_sim::fixtures::workload;
use serde_json::json;

use crate::common::daemon::Daemon;
use crate::common::e2e::Env;

const SLOW: usize = 1100;
const FAST_IMAGES: usize = 10;
const FAST: usize = 100;

pub fn clustered_cold_start(env: &Env) {
    let ns = "e2e-clustered";
    env.namespace(ns, &[]);
    // Two 4 MiB layers at 256 KiB/s per connection: a copy of about 16 s, far longer than the
    // ten small copies and the hundred patches behind it take.
    let slow = env.slow_image("team/clustered", 91, 4 * 1024 * 1024, 256 * 1024);
    let fast: Vec<String> = (0..FAST_IMAGES)
        .map(|i| env.push_fresh(&format!("clustered/fast-{i}"), 2000 + i as u64))
        .collect();
    // Listed by name: every `a-` before any `b-`.
    let slow_ones = (0..SLOW).map(|i| (format!("a-{i:04}"), slow.image.clone()));
    let fast_ones = (0..FAST).map(|i| (format!("b-{i:03}"), fast[i % FAST_IMAGES].clone()));
    let objects = slow_ones
        .chain(fast_ones)
        .map(|(name, image)| workload("Deployment", ns, &name, &[("app", &image)], &[], json!({})))
        .collect();
    env.create_many(objects);

    let mut daemon = Daemon::start(env.cloner(
        &[ns],
        &[
            ("MAX_CONCURRENT_RECONCILES", "5"),
            ("IMAGE_CLONER_INSECURE_REGISTRIES", slow.insecure.as_str()),
        ],
    ));
    let backup = env.backup_registry();
    let patched = |prefix: &str| {
        env.generations("Deployment", ns)
            .into_iter()
            .filter(|(name, _, image)| name.starts_with(prefix) && image.starts_with(&backup))
            .count()
    };
    daemon.wait_until(
        Duration::from_secs(60),
        "the workloads listed after the slow image's patched",
        || patched("b-") == FAST,
    );
    let metrics = daemon.get("/metrics").1;
    assert!(
        metrics.contains("image_cloner_copies_in_flight 1\n"),
        "the slow copy should still be running:\n{metrics}"
    );
    assert_eq!(patched("a-"), 0, "patched to a copy not yet made");
    let waiting = format!("image_cloner_workloads_waiting_for_copies {SLOW}\n");
    assert!(metrics.contains(&waiting), "{waiting} in:\n{metrics}");

    daemon.wait_until(
        Duration::from_secs(120),
        "the slow image's workloads patched once its copy ends",
        || patched("a-") == SLOW,
    );
    // One write each, to a copy that resolves in the backup; one copy per image.
    let generations = env.generations("Deployment", ns);
    assert!(
        generations.iter().all(|(_, g, _)| *g == 2),
        "{:?}",
        generations.iter().find(|(_, g, _)| *g != 2)
    );
    for (_, _, image) in generations.iter().step_by(101) {
        assert!(env.resolves_in_backup(image), "{image}");
    }
    let metrics = daemon.get("/metrics").1;
    let copies = format!(
        "image_cloner_copies_total{{result=\"succeeded\"}} {}\n",
        FAST_IMAGES + 1
    );
    assert!(metrics.contains(&copies), "{copies} in:\n{metrics}");
    assert!(
        metrics.contains("image_cloner_workloads_waiting_for_copies 0\n"),
        "{metrics}"
    );
    assert_eq!(daemon.stop(), Some(0), "{}", daemon.log());
    env.clear(ns);
}
