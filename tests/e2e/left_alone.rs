//! What image-cloner must leave alone — an ignored namespace (`NAMESPACES_TO_IGNORE`), a
//! namespace that opted out, a workload that opted out, a namespace outside the allow-list,
//! GitOps-managed workloads, a Job — checked for `run --once` and for the daemon from its
//! first reconcile, beside workloads that must converge.
//!
//! The daemon's case is the one issue 12 found broken: its reconciles started before its
//! namespace list was in, so an opted-out namespace looked like any other. Here the namespace
//! list is made the slow one — 300 more namespaces, and on the simulator a latency on namespace
//! lists that makes the race certain — and nothing left alone may ever be written: not in the
//! simulator's request log, not in a resourceVersion.

use std::time::Duration;

use kube_sim::fixtures::workload;
use serde_json::{Value, json};

use crate::common::daemon::Daemon;
use crate::common::e2e::{Env, text};

/// How much longer the simulator takes to list namespaces than anything else.
const NAMESPACE_LIST_LATENCY_MS: u64 = 3000;

/// One workload that must not be written, as it was before image-cloner ran.
struct Untouched {
    kind: &'static str,
    ns: String,
    name: &'static str,
    images: Vec<String>,
    resource_version: String,
}

/// The left-alone cases and the workloads that converge beside them, in namespaces named
/// `<prefix>-…`.
struct Cases {
    ignored: String,
    opted_out: String,
    main: String,
    outside: String,
    untouched: Vec<Untouched>,
}

impl Cases {
    fn create(env: &Env, prefix: &str) -> Cases {
        let ns = |what: &str| format!("{prefix}-{what}");
        let cases = Cases {
            ignored: ns("ignored"),
            opted_out: ns("optout"),
            main: ns("main"),
            outside: ns("outside"),
            untouched: Vec::new(),
        };
        env.namespace(&cases.ignored, &[]);
        env.namespace(&cases.opted_out, &[("image-cloner.io/skip", "true")]);
        env.namespace(&cases.main, &[]);
        env.namespace(&cases.outside, &[]);
        let (app, init) = (&env.images.app.0, &env.images.init.0);
        // Copies nobody made yet: their Events (GitOpsManaged, ImmutablePodTemplate) are news.
        let gitops = env.push_fresh(&format!("{prefix}/gitops"), 40);
        let batch = env.push_fresh(&format!("{prefix}/batch"), 41);
        let create = |kind, ns: &str, name, image: &str, meta: Value| {
            env.create(workload(kind, ns, name, &[("app", image)], &[], meta));
        };
        create("Deployment", &cases.ignored, "web", app, json!({}));
        create("Deployment", &cases.opted_out, "web", app, json!({}));
        create("Deployment", &cases.outside, "web", app, json!({}));
        let skip = json!({"annotations": {"image-cloner.io/skip": "true"}});
        create("Deployment", &cases.main, "skipped", app, skip);
        let argo = json!({"annotations": {"argocd.argoproj.io/tracking-id": format!("shop:apps/Deployment:{}/argo", cases.main)}});
        create("Deployment", &cases.main, "argo", &gitops, argo);
        let flux = json!({"labels": {"kustomize.toolkit.fluxcd.io/name": "apps", "kustomize.toolkit.fluxcd.io/namespace": "flux-system"}});
        create("Deployment", &cases.main, "flux", &gitops, flux);
        create("Job", &cases.main, "export", &batch, json!({}));
        // What must converge meanwhile.
        create("Deployment", &cases.main, "control", app, json!({}));
        create("StatefulSet", &cases.main, "control-db", init, json!({}));
        let mut cases = cases;
        let left: [(&'static str, &str, &'static str); 7] = [
            ("Deployment", &cases.ignored, "web"),
            ("Deployment", &cases.opted_out, "web"),
            ("Deployment", &cases.outside, "web"),
            ("Deployment", &cases.main, "skipped"),
            ("Deployment", &cases.main, "argo"),
            ("Deployment", &cases.main, "flux"),
            ("Job", &cases.main, "export"),
        ];
        let untouched = left
            .iter()
            .map(|(kind, ns, name)| Untouched {
                kind,
                ns: (*ns).to_owned(),
                name,
                images: env.images(kind, ns, name),
                resource_version: env.resource_version(kind, ns, name),
            })
            .collect();
        cases.untouched = untouched;
        cases
    }

    /// The namespaces image-cloner is confined to: all but `outside`.
    fn allow_list(&self) -> [&str; 3] {
        [&self.ignored, &self.opted_out, &self.main]
    }

    fn settings(&self) -> [(&str, &str); 1] {
        [("NAMESPACES_TO_IGNORE", &self.ignored)]
    }

    fn has_event(env: &Env, ns: &str, name: &str, reason: &str) -> Option<String> {
        env.events(ns, name)
            .into_iter()
            .find(|(t, r, _)| t == "Warning" && r == reason)
            .map(|(_, _, note)| note)
    }

    /// Whether everything that must happen happened: the controls patched, the GitOps-managed
    /// workloads and the Job told where their copies are.
    fn converged(&self, env: &Env) -> bool {
        let main = &self.main;
        env.resolves_in_backup(&env.images("Deployment", main, "control")[0])
            && env.resolves_in_backup(&env.images("StatefulSet", main, "control-db")[0])
            && ["argo", "flux"]
                .iter()
                .all(|n| Self::has_event(env, main, n, "GitOpsManaged").is_some())
            && Self::has_event(env, main, "export", "ImmutablePodTemplate").is_some()
    }

    /// Nothing left alone was written; the copies they were told about are in the backup.
    fn assert_left_alone(&self, env: &Env) {
        for u in &self.untouched {
            let who = format!("{} {}/{}", u.kind, u.ns, u.name);
            assert_eq!(env.images(u.kind, &u.ns, u.name), u.images, "{who}");
            assert_eq!(
                env.resource_version(u.kind, &u.ns, u.name),
                u.resource_version,
                "{who} was written"
            );
            let resource = format!("{}s", u.kind.to_lowercase());
            let writes = env.writes_to(&resource, &u.ns, u.name);
            assert!(writes.is_empty(), "{who} was written: {writes:?}");
        }
        for (ns, name) in [
            (&self.ignored, "web"),
            (&self.opted_out, "web"),
            (&self.outside, "web"),
            (&self.main, "skipped"),
        ] {
            let events = env.events(ns, name);
            assert!(events.is_empty(), "{ns}/{name}: {events:?}");
        }
        for (name, reason) in [
            ("argo", "GitOpsManaged"),
            ("flux", "GitOpsManaged"),
            ("export", "ImmutablePodTemplate"),
        ] {
            let note = Self::has_event(env, &self.main, name, reason)
                .unwrap_or_else(|| panic!("{name}: no {reason} Event"));
            let backup_ref = note.rsplit(" → ").next().unwrap_or_default();
            assert!(env.resolves_in_backup(backup_ref), "{name}: {note}");
        }
    }

    fn clear(&self, env: &Env) {
        for ns in [&self.ignored, &self.opted_out, &self.main, &self.outside] {
            env.clear(ns);
        }
    }
}

/// `run --once`: a one-off read of the namespaces, then every workload.
pub fn left_alone_once(env: &Env) {
    let cases = Cases::create(env, "e2e-once");
    if let Some(sim) = &env.sim {
        sim.faults().reset_counters();
    }
    let out = env.run(&cases.allow_list(), &cases.settings(), &["run", "--once"]);
    let log = text(&out);
    assert!(out.status.success(), "{log}");
    assert!(cases.converged(env), "{log}");
    cases.assert_left_alone(env);
    cases.clear(env);
}

/// The daemon, with the workloads there before it starts and the namespace list the slowest.
pub fn left_alone_daemon(env: &Env) {
    env.fill_namespaces();
    let cases = Cases::create(env, "e2e-dmn");
    if let Some(sim) = &env.sim {
        sim.faults().reset_counters();
        sim.faults().add_latency(kube_sim::LatencyRule {
            verb: Some("list".into()),
            resource: Some("namespaces".into()),
            millis: NAMESPACE_LIST_LATENCY_MS,
        });
    }
    let mut daemon = Daemon::start(env.cloner(&cases.allow_list(), &cases.settings()));
    daemon.wait_until(
        Duration::from_secs(90),
        "the controls patched, the GitOps and Job Events",
        || cases.converged(env),
    );
    // Stopped before checking: running reconciles finish first, so a write they were about
    // to make would be in.
    assert_eq!(daemon.stop(), Some(0), "{}", daemon.log());
    cases.assert_left_alone(env);
    if let Some(sim) = &env.sim {
        sim.faults().clear();
        assert_namespaces_listed_last(sim);
    }
    cases.clear(env);
}

/// The race was real: the daemon had its workload lists before its namespace list.
fn assert_namespaces_listed_last(sim: &kube_sim::Sim) {
    let requests = sim.faults().requests();
    let first = |resource: &str| {
        requests
            .iter()
            .position(|r| r.verb == "list" && r.resource == resource && r.code == 200)
            .unwrap_or_else(|| panic!("no list of {resource}"))
    };
    let namespaces = first("namespaces");
    for resource in ["deployments", "statefulsets", "jobs"] {
        assert!(
            first(resource) < namespaces,
            "{resource} were listed after namespaces: the scenario did not race"
        );
    }
}
