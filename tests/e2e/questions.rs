//! The daemon's questions to the registries on a cold start, counted in the registries' own
//! request logs: one manifest HEAD per source image — the privacy screen's and the mirror's
//! question in one — and two per copy in the backup: its tag before the copy (is it there
//! already?) and after (verified), however many workloads run the image; plus one pinned copy
//! asked for without credentials (can the pods pull from the backup registry?), once for the
//! registry. Never one per workload: 20 workloads per image here, so a question asked per
//! workload would show twentyfold.

use std::time::Duration;

use kube_sim::fixtures::workload;
use serde_json::json;

use crate::common::daemon::Daemon;
use crate::common::e2e::Env;

const IMAGES: usize = 10;
const WORKLOADS: usize = 200;

pub fn questions_per_image_not_per_workload(env: &Env) {
    let ns = "e2e-questions";
    env.namespace(ns, &[]);
    let repos: Vec<String> = (0..IMAGES).map(|i| format!("questions/img-{i}")).collect();
    let images: Vec<String> = repos
        .iter()
        .zip(3000..)
        .map(|(repo, seed)| env.push_fresh(repo, seed))
        .collect();
    let objects = (0..WORKLOADS)
        .map(|i| {
            let image = &images[i % IMAGES];
            workload(
                "Deployment",
                ns,
                &format!("q-{i:03}"),
                &[("app", image)],
                &[],
                json!({}),
            )
        })
        .collect();
    env.create_many(objects);

    let mut daemon = Daemon::start(env.cloner(&[ns], &[("MAX_CONCURRENT_RECONCILES", "5")]));
    daemon.wait_until(
        Duration::from_secs(120),
        "every workload patched to its copy",
        || env.on_copies("Deployment", ns) == WORKLOADS,
    );
    let metrics = daemon.get("/metrics").1;
    assert_eq!(daemon.stop(), Some(0), "{}", daemon.log());

    let copies = format!("image_cloner_copies_total{{result=\"succeeded\"}} {IMAGES}\n");
    assert!(metrics.contains(&copies), "{copies} in:\n{metrics}");
    let mut digests = Vec::new();
    for repo in &repos {
        assert_eq!(
            env.cloner_heads_in_source(repo),
            ["1"],
            "image-cloner's manifest HEADs of {repo} in the source registry"
        );
        let (tags, pinned): (Vec<String>, Vec<String>) = env
            .cloner_heads_in_backup(repo)
            .into_iter()
            .partition(|reference| reference == "1");
        assert_eq!(
            tags.len(),
            2,
            "HEADs of {repo}'s backup tag: before the copy and to verify it"
        );
        digests.extend(pinned);
    }
    assert!(
        digests.len() == 1 && digests[0].starts_with("sha256:"),
        "one HEAD of a pinned copy without credentials, for the backup registry: {digests:?}"
    );
    env.clear(ns);
}
