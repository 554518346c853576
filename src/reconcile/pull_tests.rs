//! The pull secret in the patch and in `restore`, on real JSON objects: added once, guarded,
//! recorded, and taken out again exactly.

use serde_json::{Value, json};

use super::plan_tests::{apply, mirrored, object, policy, reread, workload};
use crate::image::naming::Pin;
use crate::reconcile::patch::{PatchPlan, patch_pulling};
use crate::reconcile::plan::{Decision, decide};
use crate::reconcile::pull::*;
use crate::reconcile::report::{AfterRejection, after_rejection, unpatched};
use crate::reconcile::restore::{RestoreOptions, RestorePlan, restore};
use crate::workload::{Kind, Workload};

const SECRET: &str = "image-cloner-pull";

fn patched(w: &Workload) -> (PatchPlan, Value) {
    let plans = decide(w, &policy());
    let p = patch_pulling(w, &plans, &mirrored(Pin::Digest), Some(SECRET)).expect("a patch");
    let after = apply(&object(w), &p.patch).expect("the patch applies");
    (p, after)
}

fn pull_secrets_of(doc: &Value, kind: Kind) -> Value {
    doc.pointer(kind.pod_spec_pointer()).expect("a pod spec")["imagePullSecrets"].clone()
}

fn restore_patch(w: &Workload) -> PatchPlan {
    let options = RestoreOptions {
        opt_out: false,
        allow_unmatched: false,
    };
    match restore(w, options) {
        RestorePlan::Restore {
            patch: Some(patch), ..
        } => patch,
        other => panic!("expected a restore patch, got {other:?}"),
    }
}

#[test]
fn the_pull_secret_is_added_with_the_images_and_restore_takes_exactly_it_out() {
    for &kind in Kind::ALL {
        if kind == Kind::Job {
            continue;
        }
        let mut w = workload(kind, &[("app", "nginx:1.27")], &[]);
        w.resource_version = Some("41".into());
        let original = object(&w);
        let (p, after) = patched(&w);
        assert_eq!(p.pull_secrets, [SECRET]);
        assert_eq!(
            pull_secrets_of(&after, kind),
            json!([{ "name": SECRET }]),
            "{kind}"
        );
        assert_eq!(
            after["metadata"]["annotations"][PULL_SECRET_ANNOTATION],
            json!(SECRET)
        );
        // A list that was absent is guarded by the resourceVersion: any write since the read
        // fails the patch.
        let mut moved = object(&w);
        moved["metadata"]["resourceVersion"] = json!("42");
        assert!(apply(&moved, &p.patch).is_err(), "{kind}");

        let back = restore_patch(&reread(&w, &after));
        assert_eq!(back.pull_secrets, [SECRET]);
        let restored = apply(&after, &back.patch).expect("the restore applies");
        let mut expected = original.clone();
        expected["metadata"]["annotations"] = json!({});
        assert_eq!(restored, expected, "{kind}: exactly what was added is gone");
    }
}

#[test]
fn an_existing_list_is_tested_and_appended_to_and_a_users_entries_stay() {
    let mut w = workload(Kind::Deployment, &[("app", "nginx:1.27")], &[]);
    w.pull_secrets = Some(vec!["team-registry".into()]);
    let (_, after) = patched(&w);
    assert_eq!(
        pull_secrets_of(&after, Kind::Deployment),
        json!([{"name": "team-registry"}, {"name": SECRET}])
    );
    // Someone changed the list meanwhile: the whole patch fails, nothing is overwritten.
    let mut edited = w.clone();
    edited.pull_secrets = Some(vec!["other".into()]);
    let plans = decide(&w, &policy());
    let p = patch_pulling(&w, &plans, &mirrored(Pin::Digest), Some(SECRET)).expect("a patch");
    assert!(apply(&object(&edited), &p.patch).is_err());

    let back = restore_patch(&reread(&w, &after));
    let restored = apply(&after, &back.patch).expect("applies");
    assert_eq!(
        pull_secrets_of(&restored, Kind::Deployment),
        json!([{"name": "team-registry"}])
    );
}

#[test]
fn an_entry_already_there_is_never_duplicated_nor_removed_by_restore() {
    let mut w = workload(Kind::StatefulSet, &[("app", "nginx:1.27")], &[]);
    w.pull_secrets = Some(vec![SECRET.into()]);
    let (p, after) = patched(&w);
    assert!(p.pull_secrets.is_empty());
    assert_eq!(
        pull_secrets_of(&after, Kind::StatefulSet),
        json!([{ "name": SECRET }])
    );
    assert!(after["metadata"]["annotations"][PULL_SECRET_ANNOTATION].is_null());
    let again = reread(&w, &after);
    let back = restore_patch(&again);
    assert!(back.pull_secrets.is_empty());
    let restored = apply(&after, &back.patch).expect("applies");
    assert_eq!(
        pull_secrets_of(&restored, Kind::StatefulSet),
        json!([{ "name": SECRET }]),
        "the user's entry stays"
    );
}

#[test]
fn without_a_pull_secret_the_patch_is_what_it_was() {
    let w = workload(Kind::Deployment, &[("app", "nginx:1.27")], &[]);
    let plans = decide(&w, &policy());
    let with_none = patch_pulling(&w, &plans, &mirrored(Pin::Digest), None).expect("a patch");
    let plain =
        crate::reconcile::patch::patch(&w, &plans, &mirrored(Pin::Digest)).expect("a patch");
    assert_eq!(with_none, plain);
    assert!(
        !serde_json::to_string(&with_none.patch)
            .unwrap()
            .contains("imagePullSecrets")
    );
}

#[test]
fn pods_that_could_not_pull_get_their_images_copied_only_with_an_event_naming_the_fix() {
    let w = workload(Kind::Deployment, &[("app", "nginx:1.27")], &[]);
    let why = "backup.example.com does not serve x without credentials, and no pull secret is provisioned";
    let plans = hold(decide(&w, &policy()), why);
    assert!(matches!(
        plans[0].decision,
        Decision::BackupNotPullable { .. }
    ));
    assert!(plans[0].decision.copies());
    assert!(
        patch_pulling(&w, &plans, &mirrored(Pin::Digest), None).is_none(),
        "never patched"
    );
    let source = plans[0].source.clone().expect("parsed");
    let copy = crate::registry::mirror::MirroredImage {
        backup: source.clone(),
        backup_ref: mirrored(Pin::Digest)(&source).expect("a reference"),
        digest: crate::image::reference::Digest::sha256_of(b"x"),
        source: source.clone(),
        converted: false,
        outcome: crate::registry::mirror::Outcome::Copied,
    };
    let verified = [(source.canonical().into_owned(), copy)]
        .into_iter()
        .collect();
    let got = unpatched(&plans, &verified, &[], false);
    assert_eq!(got.notices.len(), 1, "{got:?}");
    let notice = &got.notices[0];
    assert!(notice.warning);
    assert_eq!(notice.reason, "BackupNotPullable");
    assert!(notice.note.contains(why), "{}", notice.note);
    assert!(notice.note.contains("set pull_secret"), "{}", notice.note);
    assert!(notice.note.contains("pull_check = off"), "{}", notice.note);
    assert_eq!(got.cloned_only.len(), 1);
}

#[test]
fn a_rejected_pull_secret_patch_is_replanned_when_the_object_moved() {
    let mut before = workload(Kind::Deployment, &[("app", "nginx:1.27")], &[]);
    before.resource_version = Some("7".into());
    let mut moved = before.clone();
    moved.resource_version = Some("8".into());
    assert_eq!(after_rejection(&before, &moved), AfterRejection::Replan);
    let mut listed = before.clone();
    listed.pull_secrets = Some(vec!["x".into()]);
    assert_eq!(after_rejection(&before, &listed), AfterRejection::Replan);
    assert_eq!(after_rejection(&before, &before), AfterRejection::Refused);
}

#[test]
fn recorded_names_are_read_back_and_the_gate_answers() {
    let mut w = workload(Kind::Deployment, &[("app", "nginx:1.27")], &[]);
    w.annotations
        .insert(PULL_SECRET_ANNOTATION.into(), "a, b".into());
    assert_eq!(recorded(&w.annotations), ["a", "b"]);
    assert!(!uses(&w, "a"));
    w.pull_secrets = Some(vec!["a".into()]);
    assert!(uses(&w, "a"));
    assert!(PullAccess::Secret("a".into()).pullable());
    assert!(!PullAccess::Unknown { error: "x".into() }.pullable());
    assert_eq!(PullAccess::Secret("a".into()).secret(), Some("a"));
}
