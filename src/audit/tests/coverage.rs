//! The coverage report's classification, its Events reading, and `status`'s output.

use std::collections::HashMap;

use k8s_openapi::api::events::v1::Event;
use serde_json::json;

use super::{BACKUP, digest, policy, workload};
use crate::audit::WorkloadKey;
use crate::audit::check::Liveness;
use crate::audit::coverage::{LastWord, State, classify, count};
use crate::audit::failures::copy_failures;
use crate::workload::Kind;

fn state_of(
    w: &crate::workload::Workload,
    liveness: &HashMap<&str, Liveness>,
    error: Option<&str>,
) -> (State, Option<String>) {
    said(
        w,
        liveness,
        error.map(|e| LastWord::new("SourceNotFound", e)),
    )
}

fn said(
    w: &crate::workload::Workload,
    liveness: &HashMap<&str, Liveness>,
    word: Option<LastWord>,
) -> (State, Option<String>) {
    let c = classify(w, &policy(), &|i| liveness.get(i).cloned(), word.as_ref());
    (c.state, c.detail)
}

#[test]
fn a_workload_held_back_by_a_decision_is_in_that_decisions_state() {
    let public = workload(Kind::Deployment, "a", &[("a", "corp.example/app:1")], &[]);
    let none = HashMap::new();
    let private = LastWord::new(
        "PrivateSource",
        "corp.example/app:1: served only with credentials",
    );
    assert_eq!(
        said(&public, &none, Some(private)),
        (
            State::PrivateSource,
            Some("corp.example/app:1: served only with credentials".into())
        )
    );
    let unpullable = LastWord::new("BackupNotPullable", "no pull secret");
    assert_eq!(said(&public, &none, Some(unpullable)).0, State::NotPullable);
    let throttled = LastWord::new("RateLimited", "429");
    assert_eq!(said(&public, &none, Some(throttled)).0, State::CopyFailing);
    let mut excluding = policy();
    excluding.sources.filter.exclude =
        vec![crate::source_policy::Glob::parse("corp.example/*").expect("a glob")];
    let c = classify(&public, &excluding, &|_| None, None);
    assert_eq!(c.state, State::Excluded, "{c:?}");
}

#[test]
fn each_workload_gets_its_worst_containers_state() {
    let copy = format!("{BACKUP}/docker.io_library_nginx:1.27@{}", digest("n"));
    let gone = format!("{BACKUP}/docker.io_library_redis:7@{}", digest("r"));
    let liveness = HashMap::from([
        (copy.as_str(), Liveness::Alive),
        (gone.as_str(), Liveness::Missing),
    ]);
    let protected = workload(Kind::Deployment, "a", &[("app", &copy)], &[]);
    assert_eq!(state_of(&protected, &liveness, None).0, State::Protected);
    let missing = workload(Kind::Deployment, "b", &[("a", &copy), ("b", &gone)], &[]);
    let (state, detail) = state_of(&missing, &liveness, None);
    assert_eq!(state, State::BackupMissing);
    assert!(detail.is_some_and(|d| d.contains(&gone)));
    // A copy not audited yet was verified when it was patched.
    let fresh = format!("{BACKUP}/docker.io_library_busybox:1@{}", digest("b"));
    let unaudited = workload(Kind::Deployment, "c", &[("app", &fresh)], &[]);
    assert_eq!(state_of(&unaudited, &liveness, None).0, State::Protected);

    let public = workload(
        Kind::Deployment,
        "d",
        &[("a", "nginx:1.27"), ("b", &copy)],
        &[],
    );
    assert_eq!(state_of(&public, &liveness, None).0, State::NotYetCopied);
    let (state, detail) = state_of(&public, &liveness, Some("nginx:1.27: not found"));
    assert_eq!(state, State::CopyFailing);
    assert_eq!(detail.as_deref(), Some("nginx:1.27: not found"));
    let job = workload(Kind::Job, "e", &[("a", "nginx:1.27")], &[]);
    assert_eq!(state_of(&job, &liveness, None).0, State::Immutable);
    let bad = workload(Kind::Deployment, "f", &[("a", "Not/Valid")], &[]);
    assert_eq!(state_of(&bad, &liveness, None).0, State::InvalidReference);
    let mut argo = workload(Kind::Deployment, "g", &[("a", "nginx:1.27")], &[]);
    argo.annotations
        .insert("argocd.argoproj.io/tracking-id".into(), "x".into());
    assert_eq!(state_of(&argo, &liveness, None).0, State::GitopsManaged);
    let mut opted = workload(Kind::Deployment, "h", &[("a", "nginx:1.27")], &[]);
    opted.namespace_opted_out = true;
    assert_eq!(state_of(&opted, &liveness, None).0, State::OptedOut);
    let mut ignored = opted.clone();
    ignored.namespace = "kube-system".into();
    assert_eq!(
        state_of(&ignored, &liveness, None).0,
        State::IgnoredNamespace
    );
    let unknown = HashMap::from([(
        copy.as_str(),
        Liveness::Unknown {
            error: "503".into(),
        },
    )]);
    assert_eq!(state_of(&protected, &unknown, None).0, State::Unknown);
}

fn event(name: &str, type_: &str, reason: &str, at: &str, controller: &str) -> Event {
    serde_json::from_value(json!({
        "metadata": {"name": format!("{name}.{reason}"), "namespace": "shop"},
        "eventTime": at,
        "type": type_,
        "reason": reason,
        "note": format!("{reason} note"),
        "action": "Clone",
        "reportingController": controller,
        "reportingInstance": "x",
        "regarding": {"kind": "Deployment", "namespace": "shop", "name": name},
    }))
    .expect("an Event")
}

#[test]
fn a_copy_fails_when_the_latest_event_says_so() {
    let events = [
        event(
            "a",
            "Warning",
            "SourceNotFound",
            "2025-01-01T00:00:00.000000Z",
            "image-cloner",
        ),
        event(
            "b",
            "Warning",
            "SourceNotFound",
            "2025-01-01T00:00:00.000000Z",
            "image-cloner",
        ),
        event(
            "b",
            "Normal",
            "Cloned",
            "2025-01-01T00:01:00.000000Z",
            "image-cloner",
        ),
        event(
            "c",
            "Warning",
            "GitOpsManaged",
            "2025-01-01T00:00:00.000000Z",
            "image-cloner",
        ),
        event(
            "d",
            "Warning",
            "BackOff",
            "2025-01-01T00:00:00.000000Z",
            "kubelet",
        ),
    ];
    let failing = copy_failures(&events);
    let key = WorkloadKey {
        kind: Kind::Deployment,
        namespace: "shop".into(),
        name: "a".into(),
    };
    assert_eq!(failing.len(), 1, "{failing:?}");
    assert_eq!(
        failing[&key],
        LastWord::new("SourceNotFound", "SourceNotFound note")
    );
}

#[test]
fn count_gives_every_state_zero_included() {
    let counts = count([State::Protected, State::Protected]);
    assert_eq!(counts.len(), State::ALL.len());
    assert_eq!(counts[&State::Protected], 2);
    assert_eq!(counts[&State::BackupMissing], 0);
}
