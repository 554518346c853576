use super::*;
use crate::image::naming::{BackupRegistry, Naming};
use crate::image::reference::{Digest, ImageRef};
use crate::reconcile::plan::{Policy, decide};
use crate::registry::mirror::MirroredImage;
use crate::workload::Kind;

/// A workload whose containers `c0`, `c1`, … run `images`.
fn workload(kind: Kind, images: &[&str]) -> Workload {
    let names: Vec<String> = (0..images.len()).map(|i| format!("c{i}")).collect();
    let pairs: Vec<(&str, &str)> = names
        .iter()
        .map(String::as_str)
        .zip(images.iter().copied())
        .collect();
    crate::reconcile::plan_tests::workload(kind, &pairs, &[])
}

fn policy() -> Policy {
    Policy {
        backup: BackupRegistry::parse("backup.example.com/m").expect("backup"),
        naming: Naming::Flat,
        ignored_namespaces: Default::default(),
        only_namespaces: Default::default(),
        patch_gitops_managed: false,
        sources: Default::default(),
        refs: Default::default(),
    }
}

fn verified(images: &[&str], outcome: Outcome) -> Verified {
    images
        .iter()
        .map(|i| {
            let source = ImageRef::parse(i).expect("valid");
            let d = Digest::sha256_of(i.as_bytes());
            let m = MirroredImage {
                backup: source.clone(),
                backup_ref: format!("backup.example.com/m/x@{d}"),
                source: source.clone(),
                digest: d,
                converted: false,
                outcome,
            };
            (source.canonical().into_owned(), m)
        })
        .collect()
}

#[test]
fn a_job_copy_made_now_is_reported_once_per_workload() {
    let w = workload(Kind::Job, &["redis:7", "redis:7"]);
    let plans = decide(&w, &policy());
    let got = unpatched(&plans, &verified(&["redis:7"], Outcome::Copied), &[], false);
    assert_eq!(got.notices.len(), 1, "{got:?}");
    assert_eq!(got.notices[0].reason, reasons::IMMUTABLE);
    assert!(
        got.notices[0]
            .note
            .contains("docker.io/library/redis:7 → backup.example.com/m/x@sha256:")
    );
    assert_eq!(got.cloned_only.len(), 2);
}

#[test]
fn a_converged_gitops_workload_seen_again_gets_no_event() {
    let mut w = workload(Kind::Deployment, &["nginx:1.27"]);
    w.labels
        .insert("kustomize.toolkit.fluxcd.io/name".into(), "apps".into());
    let plans = decide(&w, &policy());
    let present = verified(&["nginx:1.27"], Outcome::AlreadyInBackup);
    let old = unpatched(&plans, &present, &[], false);
    assert!(old.notices.is_empty(), "{old:?}");
    assert_eq!(old.cloned_only.len(), 1);
    let new = unpatched(&plans, &present, &[], true);
    assert_eq!(new.notices[0].reason, reasons::GITOPS_MANAGED);
}

#[test]
fn invalid_references_and_failures_are_warnings() {
    let w = workload(Kind::Deployment, &["Not/Valid", "nginx:1.27"]);
    let plans = decide(&w, &policy());
    let failure = MirrorError::SourceNotFound {
        image: "docker.io/library/nginx:1.27".into(),
    };
    let got = unpatched(&plans, &Verified::default(), &[failure], false);
    let reasons: Vec<_> = got.notices.iter().map(|n| (n.warning, n.reason)).collect();
    assert_eq!(
        reasons,
        [(true, reasons::INVALID_REFERENCE), (true, "SourceNotFound")]
    );
    assert_eq!(got.invalid, 1);
    assert!(got.cloned_only.is_empty());
}

#[test]
fn a_rejected_patch_is_replanned_only_when_what_it_tested_changed() {
    let before = workload(Kind::Deployment, &["nginx:1.27"]);
    let mut labelled = before.clone();
    labelled.labels.insert("team".into(), "a".into());
    assert_eq!(after_rejection(&before, &labelled), AfterRejection::Refused);
    let edited = workload(Kind::Deployment, &["nginx:1.28"]);
    assert_eq!(after_rejection(&before, &edited), AfterRejection::Replan);
    let mut recorded = before.clone();
    recorded
        .annotations
        .insert(ORIGINAL_IMAGES_ANNOTATION.into(), "{}".into());
    assert_eq!(after_rejection(&before, &recorded), AfterRejection::Replan);
}

#[test]
fn private_sources_get_one_warning_naming_them() {
    let w = workload(
        Kind::Deployment,
        &["corp.example/app:1", "corp.example/app:1", "nginx:1"],
    );
    let mut plans = decide(&w, &policy());
    crate::reconcile::plan::mark_private(&mut plans, &["corp.example/app:1".to_owned()].into());
    let out = unpatched(&plans, &Verified::default(), &[], false);
    assert_eq!(out.notices.len(), 1, "{:?}", out.notices);
    let n = &out.notices[0];
    assert!(n.warning);
    assert_eq!(n.reason, reasons::PRIVATE_SOURCE);
    assert!(
        n.note.ends_with("copy it anyway: corp.example/app:1"),
        "{}",
        n.note
    );
}

#[test]
fn a_private_source_or_an_unpullable_copy_holds_the_workload_back() {
    let w = workload(Kind::Deployment, &["nginx:1", "corp.example/app:1"]);
    let mut plans = decide(&w, &policy());
    assert_eq!(held_back(&plans), None, "a workload to copy and patch");
    crate::reconcile::plan::mark_private(&mut plans, &["corp.example/app:1".to_owned()].into());
    let (reason, note) = held_back(&plans).expect("held back");
    assert_eq!(reason, reasons::PRIVATE_SOURCE);
    assert!(note.starts_with("corp.example/app:1: "), "{note}");
    let held = crate::reconcile::pull::hold(decide(&w, &policy()), "no pull secret");
    assert_eq!(
        held_back(&held),
        Some((reasons::BACKUP_NOT_PULLABLE, "no pull secret".to_owned()))
    );
}

#[test]
fn once_per_episode_keeps_one_notice_per_reason_and_everything_else() {
    let n = |reason: &'static str| Notice {
        warning: true,
        reason,
        note: String::new(),
    };
    let batch = vec![
        n(reasons::RATE_LIMITED),
        n(reasons::RATE_LIMITED),
        n("SourceNotFound"),
        n(reasons::PRIVATE_SOURCE),
    ];
    let (keep, met) = once_per_episode(batch.clone(), &Default::default());
    assert_eq!(keep.len(), 3, "{keep:?}");
    assert_eq!(met, [reasons::RATE_LIMITED, reasons::PRIVATE_SOURCE].into());
    let (keep, _) = once_per_episode(batch, &met);
    assert_eq!(keep, [n("SourceNotFound")]);
}

#[test]
fn the_cloned_note_names_each_change_from_and_to() {
    let change = |from: &str, to: &str| crate::reconcile::patch::ImageChange {
        container: "c".into(),
        init: false,
        from: from.into(),
        to: to.into(),
    };
    let one = patched_notice(&[change("nginx:1.27", "b.example/m/nginx@sha256:1")]);
    assert_eq!(one.note, "nginx:1.27 → b.example/m/nginx@sha256:1");
    assert_eq!((one.reason, one.warning), (reasons::CLONED, false));
    let two = patched_notice(&[change("a:1", "b/a:1"), change("c:2", "b/c:2")]);
    assert_eq!(two.note, "a:1 → b/a:1; c:2 → b/c:2");
    assert_eq!(patched_notice(&[]).note, "");
}
