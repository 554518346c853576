//! `restore`'s pure planning, on real JSON objects patched by the daemon's own patch.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::plan_tests::{apply, object, plan_and_apply, reread, workload};
use crate::image::naming::Pin;
use crate::reconcile::patch::*;
use crate::reconcile::restore::*;
use crate::workload::{Kind, SKIP_ANNOTATION, Workload};

#[test]
fn the_annotation_round_trip_restores_the_exact_originals() {
    let mut w = workload(
        Kind::CronJob,
        &[
            ("app", "nginx:1.27"),
            (
                "side",
                "ghcr.io/x/y@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            ),
        ],
        &[("init", "busybox")],
    );
    w.annotations.insert("team".into(), "shop".into());
    let original = object(&w);
    let (_, patched) = plan_and_apply(&w, Pin::Digest);
    let after = reread(&w, &patched);
    let recorded = original_images(&after.annotations).unwrap();
    assert_eq!(recorded.len(), 3);
    assert_eq!(recorded["app"].original, "nginx:1.27");

    let keep_in = RestoreOptions {
        opt_out: false,
        allow_unmatched: false,
    };
    let (back, kept, rejected, _) = restored(&after, keep_in);
    assert!(kept.is_empty() && rejected.is_empty());
    assert_eq!(back.changes.len(), 3);
    let restored_doc = apply(&patched, &back.patch).unwrap();
    assert_eq!(
        restored_doc, original,
        "restore gives back the exact object"
    );

    // By default the workload is also opted out, in the same patch.
    let (back, _, _, opts_out) = restored(&after, RestoreOptions::default());
    assert!(opts_out);
    let mut expected = original.clone();
    expected["metadata"]["annotations"][SKIP_ANNOTATION] = json!("true");
    assert_eq!(apply(&patched, &back.patch).unwrap(), expected);
}

/// The restore plan of a workload carrying our annotation.
fn restored(w: &Workload, options: RestoreOptions) -> (PatchPlan, Vec<Kept>, Vec<Rejected>, bool) {
    match restore(w, options) {
        RestorePlan::Restore {
            patch,
            kept,
            rejected,
            opts_out,
        } => (
            patch.unwrap_or(PatchPlan {
                changes: vec![],
                pull_secrets: vec![],
                patch: vec![],
            }),
            kept,
            rejected,
            opts_out,
        ),
        other => panic!("expected a restore plan, got {other:?}"),
    }
}

/// A patched workload whose record someone rewrote: container `a`'s original is `original`.
fn with_recorded_original(original: &str) -> (Workload, Value) {
    let w = workload(
        Kind::Deployment,
        &[("a", "nginx:1.27"), ("b", "redis:7")],
        &[],
    );
    let (_, mut patched) = plan_and_apply(&w, Pin::Digest);
    let mut after = reread(&w, &patched);
    let mut recorded: BTreeMap<String, Value> =
        serde_json::from_str(&after.annotations[ORIGINAL_IMAGES_ANNOTATION]).unwrap();
    recorded.get_mut("a").unwrap()["original"] = json!(original);
    let text = serde_json::to_string(&recorded).unwrap();
    after
        .annotations
        .insert(ORIGINAL_IMAGES_ANNOTATION.into(), text.clone());
    patched["metadata"]["annotations"][ORIGINAL_IMAGES_ANNOTATION] = json!(text);
    (after, patched)
}

#[test]
fn restore_writes_only_originals_that_are_image_references_of_their_backup() {
    let long = "a".repeat(100_000);
    for hostile in [
        "$(touch /tmp/x)",
        "--help",
        "nginx:1.27\nimage: evil",
        long.as_str(),
        "",
        "   ",
        "redis:7",
    ] {
        let (after, patched) = with_recorded_original(hostile);
        let (back, _, rejected, _) = restored(&after, RestoreOptions::default());
        assert_eq!(rejected.len(), 1, "{hostile:.40}: {rejected:?}");
        assert_eq!(rejected[0].container, "a");
        if hostile.trim().is_empty() {
            assert!(rejected[0].reason.contains("empty"), "{rejected:?}");
        }
        let written = apply(&patched, &back.patch).unwrap();
        let image = |doc: &Value| doc["spec"]["template"]["spec"]["containers"][0]["image"].clone();
        assert_eq!(
            image(&written),
            image(&patched),
            "{hostile:.40}: container a keeps its copy"
        );
        // The honest entry is still restored.
        assert_eq!(back.changes.len(), 1, "{hostile:.40}");
        assert_eq!(back.changes[0].container, "b");
    }
}

#[test]
fn an_unmatched_but_valid_original_needs_allow_unmatched() {
    let (after, patched) = with_recorded_original("ghcr.io/someone/else:1");
    let (_, _, rejected, _) = restored(&after, RestoreOptions::default());
    assert!(
        rejected[0].reason.contains("--allow-unmatched"),
        "{rejected:?}"
    );
    let allow = RestoreOptions {
        opt_out: true,
        allow_unmatched: true,
    };
    let (back, _, rejected, _) = restored(&after, allow);
    assert!(rejected.is_empty());
    let doc = apply(&patched, &back.patch).unwrap();
    assert_eq!(
        doc["spec"]["template"]["spec"]["containers"][0]["image"],
        "ghcr.io/someone/else:1"
    );
}

#[test]
fn an_annotation_that_is_not_our_record_is_reported() {
    let mut w = workload(Kind::Deployment, &[("a", "nginx")], &[]);
    w.annotations
        .insert(ORIGINAL_IMAGES_ANNOTATION.into(), "not json".into());
    match restore(&w, RestoreOptions::default()) {
        RestorePlan::Unreadable { error } => {
            assert!(error.contains("not image-cloner's record"), "{error}")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_skip_annotation_already_there_is_tested_and_replaced() {
    let w = workload(Kind::Deployment, &[("a", "nginx:1.27")], &[]);
    let (_, mut patched) = plan_and_apply(&w, Pin::Digest);
    let mut after = reread(&w, &patched);
    after
        .annotations
        .insert(SKIP_ANNOTATION.into(), "false".into());
    patched["metadata"]["annotations"][SKIP_ANNOTATION] = json!("false");
    let (back, _, _, opts_out) = restored(&after, RestoreOptions::default());
    assert!(opts_out);
    let doc = apply(&patched, &back.patch).unwrap();
    assert_eq!(doc["metadata"]["annotations"][SKIP_ANNOTATION], "true");
    // Someone set it to something else meanwhile: the patch fails, nothing is overwritten.
    patched["metadata"]["annotations"][SKIP_ANNOTATION] = json!("maybe");
    assert!(apply(&patched, &back.patch).is_err());
}

#[test]
fn restore_keeps_an_image_changed_since_and_tests_what_it_replaces() {
    let w = workload(Kind::Deployment, &[("a", "nginx:1"), ("b", "redis:7")], &[]);
    let (_, patched) = plan_and_apply(&w, Pin::Digest);
    let mut after = reread(&w, &patched);
    after.containers[1].image = "redis:8".into();
    let mut doc = patched.clone();
    doc["spec"]["template"]["spec"]["containers"][1]["image"] = json!("redis:8");
    let (back, kept, _, _) = restored(&after, RestoreOptions::default());
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].container, "b");
    let restored = apply(&doc, &back.patch).unwrap();
    assert_eq!(
        restored["spec"]["template"]["spec"]["containers"],
        json!([{"name": "a", "image": "nginx:1"}, {"name": "b", "image": "redis:8"}])
    );
    assert!(
        restored["metadata"]
            .get("annotations")
            .is_none_or(|a| a.get(ORIGINAL_IMAGES_ANNOTATION).is_none())
    );
}

#[test]
fn a_workload_without_our_annotation_has_nothing_to_restore() {
    let w = workload(Kind::Deployment, &[("a", "nginx")], &[]);
    assert_eq!(restore(&w, RestoreOptions::default()), RestorePlan::NotOurs);
}
