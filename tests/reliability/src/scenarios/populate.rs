//! Workloads for a world, and what the simulator's request log says about the daemon's
//! writes.

use std::collections::BTreeMap;

use anyhow::Result;
use serde_json::json;

use crate::scenarios::convergence::Expected;
use crate::source::Source;
use crate::world::{KINDS, World};

/// `count` workloads over `images` of `source` (named through `host`) in `namespaces`
/// namespaces `<prefix>-<n>`: kinds in turn, every fourth with a sidecar, every fifth with an
/// init container.
pub fn workloads(
    world: &World,
    source: &Source,
    host: &str,
    prefix: &str,
    namespaces: usize,
    count: usize,
    images: usize,
) -> Result<Expected> {
    let mut expected = Expected::new();
    for ns in 0..namespaces {
        world.namespace(&format!("{prefix}-{ns}"), json!({}))?;
    }
    for i in 0..count {
        let (kind, plural) = KINDS[i % KINDS.len()];
        let ns = format!("{prefix}-{}", i % namespaces);
        let name = format!("w-{i}");
        let mut containers = vec![("app".to_owned(), source.reference(host, i % images))];
        if i % 4 == 1 {
            containers.push(("side".into(), source.reference(host, (i * 7 + 3) % images)));
        }
        let mut init = Vec::new();
        if i % 5 == 2 {
            init.push((
                "init".to_owned(),
                source.reference(host, (i * 3 + 1) % images),
            ));
        }
        let pairs = |v: &[(String, String)]| -> Vec<(String, String)> { v.to_vec() };
        let c = pairs(&containers);
        let ic = pairs(&init);
        let c: Vec<(&str, &str)> = c.iter().map(|(n, i)| (n.as_str(), i.as_str())).collect();
        let ic: Vec<(&str, &str)> = ic.iter().map(|(n, i)| (n.as_str(), i.as_str())).collect();
        world.create(kube_sim::fixtures::workload(
            kind,
            &ns,
            &name,
            &c,
            &ic,
            json!({}),
        ))?;
        expected.insert(
            (plural.to_owned(), ns, name),
            containers.into_iter().chain(init).collect(),
        );
    }
    Ok(expected)
}

/// Successful (2xx) patches per workload, from the simulator's request log.
pub fn successful_patches(world: &World) -> BTreeMap<(String, String, String), u64> {
    let mut out = BTreeMap::new();
    for r in world.sim.faults().requests() {
        if r.verb == "patch" && (200..300).contains(&r.code) && r.resource != "events" {
            *out.entry((r.resource.clone(), r.namespace.clone(), r.name.clone()))
                .or_default() += 1;
        }
    }
    out
}
