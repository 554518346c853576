//! The leader-election settings: off by default; on, the Lease's namespace is the daemon's own
//! or given, and a daemon outside a cluster that cannot know it does not start.

use super::*;

fn run(pairs: &[(&str, &str)]) -> Inputs {
    let mut all = vec![("BACKUP_REGISTRY", "q.io/x")];
    all.extend_from_slice(pairs);
    let mut i = inputs(&all);
    i.task = Task::Run;
    i
}

/// The machine these tests run on is not a pod (no service account namespace file).
fn outside_a_pod() -> bool {
    !std::path::Path::new("/var/run/secrets/kubernetes.io/serviceaccount/namespace").exists()
}

#[test]
fn off_by_default_with_client_gos_duration() {
    let s = load(&run(&[])).unwrap().settings;
    assert!(!s.leader_election);
    assert_eq!(s.lease_name, "image-cloner");
    assert_eq!(s.lease_duration, Duration::from_secs(15));
    assert_eq!(s.lease(), None);
}

#[test]
fn on_in_a_pod_the_lease_is_in_the_daemons_namespace() {
    let s = load(&run(&[
        ("IMAGE_CLONER_LEADER_ELECTION", "on"),
        ("POD_NAMESPACE", "image-cloner"),
    ]))
    .unwrap()
    .settings;
    let lease = s.lease().expect("leader election is on");
    assert_eq!(
        (
            lease.name.as_str(),
            lease.namespace.as_str(),
            lease.duration
        ),
        ("image-cloner", "image-cloner", Duration::from_secs(15))
    );
    assert_eq!(
        s.origins["lease_namespace"],
        "default, the daemon's own namespace"
    );
}

#[test]
fn on_outside_a_cluster_the_namespace_is_given() {
    let s = load(&run(&[
        ("IMAGE_CLONER_LEADER_ELECTION", "on"),
        ("IMAGE_CLONER_LEASE_NAMESPACE", "ops"),
        ("IMAGE_CLONER_LEASE_NAME", "cloner.bastions"),
        ("IMAGE_CLONER_LEASE_DURATION", "30s"),
    ]))
    .unwrap()
    .settings;
    let lease = s.lease().expect("leader election is on");
    assert_eq!(
        (
            lease.name.as_str(),
            lease.namespace.as_str(),
            lease.duration
        ),
        ("cloner.bastions", "ops", Duration::from_secs(30))
    );
}

#[test]
fn on_outside_a_cluster_without_a_namespace_is_refused() {
    if !outside_a_pod() {
        return;
    }
    let p = problems(&run(&[("IMAGE_CLONER_LEADER_ELECTION", "on")]));
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(
        p[0].starts_with("missing setting lease_namespace: leader_election = on")
            && p[0].contains("IMAGE_CLONER_LEASE_NAMESPACE"),
        "{p:?}"
    );
    // Off, nothing needs it.
    assert!(load(&run(&[("IMAGE_CLONER_LEADER_ELECTION", "off")])).is_ok());
}

#[test]
fn bad_values_are_named() {
    let p = problems(&run(&[
        ("IMAGE_CLONER_LEADER_ELECTION", "true"),
        ("IMAGE_CLONER_LEASE_NAME", "Image_Cloner"),
        ("IMAGE_CLONER_LEASE_NAMESPACE", "-ops"),
        ("IMAGE_CLONER_LEASE_DURATION", "1s"),
    ]));
    for expected in [
        r#"invalid setting leader_election = "true" (from environment variable IMAGE_CLONER_LEADER_ELECTION): expected "on" or "off""#,
        r#"invalid setting lease_name = "Image_Cloner""#,
        r#"invalid setting lease_namespace = "-ops""#,
        r#"invalid setting lease_duration = "1s""#,
    ] {
        assert!(
            p.iter().any(|l| l.starts_with(expected)),
            "{expected} not in {p:?}"
        );
    }
}

#[test]
fn other_commands_do_not_read_them() {
    let mut i = run(&[("IMAGE_CLONER_LEADER_ELECTION", "maybe")]);
    i.task = Task::Copy;
    let s = load(&i)
        .expect("copy does not use leader_election")
        .settings;
    assert!(!s.leader_election);
    assert_eq!(s.origins["leader_election"], "not used by copy");
}
