//! DESIGN.md's cold-start promise at test scale: 2,000 workloads over 50 images cost 50 copies
//! and one write per workload.

use kube_sim::fixtures::workload;
use serde_json::json;

use crate::common::e2e::{Env, text};

pub fn two_thousand_workloads(env: &Env) {
    let ns = "e2e-scale";
    env.namespace(ns, &[]);
    let images: Vec<String> = (0..50)
        .map(|i| env.push_fresh(&format!("scale/img-{i}"), 1000 + i))
        .collect();
    let objects: Vec<serde_json::Value> = (0..2000)
        .map(|i| {
            workload(
                "Deployment",
                ns,
                &format!("w-{i:04}"),
                &[("app", &images[i % images.len()])],
                &[],
                json!({}),
            )
        })
        .collect();
    env.create_many(objects);

    if let Some(sim) = &env.sim {
        sim.faults().reset_counters();
    }
    let out = env.run(
        &[ns],
        &[("MAX_CONCURRENT_RECONCILES", "5")],
        &["run", "--once"],
    );
    let log = text(&out);
    assert!(
        out.status.success(),
        "{}",
        &log[log.len().saturating_sub(3000)..]
    );
    let summary = log
        .lines()
        .find(|l| l.contains("workload(s)") && l.contains("patched"))
        .unwrap_or_else(|| panic!("no summary in {}", &log[log.len().saturating_sub(3000)..]));
    eprintln!("{summary}");
    if let Some(sim) = &env.sim {
        let patches = sim.faults().count("patch", "deployments");
        eprintln!(
            "simulator counters: {patches} patch(es) of deployments, {} write(s) to deployments, {} write(s) in all",
            sim.faults().writes_to("deployments"),
            sim.faults().writes()
        );
        assert_eq!(patches, 2000, "one patch per workload");
        assert_eq!(sim.faults().writes_to("deployments"), 2000);
    }
    assert!(
        summary.contains("2000 patched (2000 image(s))")
            && summary.contains("0 failed; 50 cop(y/ies) made")
            && summary.contains("2000 API write(s)"),
        "{summary}"
    );
    // One write per workload: created at generation 1, patched once.
    let generations = env.generations("Deployment", ns);
    assert_eq!(generations.len(), 2000);
    assert!(
        generations
            .iter()
            .all(|(_, g, image)| *g == 2 && image.starts_with(&env.backup_registry())),
        "{:?}",
        generations.iter().find(|(_, g, _)| *g != 2)
    );
    for (_, _, image) in generations.iter().step_by(97) {
        assert!(env.resolves_in_backup(image), "{image}");
    }
    env.clear(ns);
}
