//! [`for_each_page`](super::list::for_each_page) against the simulator: a small first page,
//! so that `run --once` starts its first copies early, then full pages, and every object once.

use kube_sim::{Options, Sim};
use serde_json::json;

use super::list::{FIRST_PAGE_SIZE, PAGE_SIZE, for_each_page};
use crate::sim_client::{client, create};
use crate::workload::partial::Deployment;

fn cluster(workloads: usize) -> Sim {
    let sim = Sim::start(Options::default()).expect("the simulator starts");
    create(
        &sim,
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}),
    );
    for i in 0..workloads {
        create(
            &sim,
            kube_sim::fixtures::workload(
                "Deployment",
                "shop",
                &format!("app-{i:04}"),
                &[("app", "nginx:1.27")],
                &[],
                json!({}),
            ),
        );
    }
    sim
}

#[tokio::test]
async fn the_first_page_is_small_and_the_rest_are_full() {
    let total = (FIRST_PAGE_SIZE + PAGE_SIZE + 7) as usize;
    let sim = cluster(total);
    let client = client(&sim).await;
    let mut pages = Vec::new();
    let mut names = Vec::new();
    for_each_page::<Deployment>(&client, None, None, |page| {
        pages.push(page.len());
        names.extend(
            page.into_iter()
                .map(|d| d.metadata.name.unwrap_or_default()),
        );
    })
    .await
    .expect("listed");
    assert_eq!(
        pages,
        [FIRST_PAGE_SIZE as usize, PAGE_SIZE as usize, 7],
        "pages of {FIRST_PAGE_SIZE}, then {PAGE_SIZE}"
    );
    names.sort();
    names.dedup();
    assert_eq!(names.len(), total, "every object once");
    assert_eq!(sim.faults().count("list", "deployments"), 3);
}
