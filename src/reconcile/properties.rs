//! Properties of planning, patching and restoring, over generated workloads: a patched
//! workload plans nothing, and restoring it gives back the exact original object.
//! `make reliability` runs many more cases (`PROPTEST_CASES`).

use proptest::prelude::*;

use super::plan_tests::{apply, mirrored, object, policy, reread, workload};
use crate::image::naming::{Naming, Pin};
use crate::image::properties::reference;
use crate::image::reference::ImageRef;
use crate::reconcile::patch::patch;
use crate::reconcile::plan::{Decision, decide, to_mirror};
use crate::reconcile::restore::{RestoreOptions, RestorePlan, restore};
use crate::workload::{Kind, Workload};

/// A workload of a kind whose pod template can change, with one to three containers and up
/// to two init containers, each running a generated reference that gets a backup name.
fn patchable() -> impl Strategy<Value = (Workload, Pin)> {
    let kinds = prop::sample::select(
        Kind::ALL
            .iter()
            .copied()
            .filter(|k| k.pod_template_mutable())
            .collect::<Vec<_>>(),
    );
    let images = prop::collection::vec(reference(), 1..6);
    (kinds, images, 1usize..4, any::<bool>())
        .prop_filter("every image gets a backup name", |(_, images, _, _)| {
            let p = policy();
            images.iter().all(|i| {
                ImageRef::parse(i).is_ok_and(|r| {
                    !p.backup.contains(&r) && p.backup.target(&r, Naming::Flat).is_ok()
                })
            })
        })
        .prop_map(|(kind, images, split, tag)| {
            let split = split.min(images.len());
            let names: Vec<String> = (0..images.len()).map(|i| format!("c{i}")).collect();
            let main: Vec<(&str, &str)> = names[..split]
                .iter()
                .zip(&images[..split])
                .map(|(n, i)| (n.as_str(), i.as_str()))
                .collect();
            let init: Vec<(&str, &str)> = names[split..]
                .iter()
                .zip(&images[split..])
                .map(|(n, i)| (n.as_str(), i.as_str()))
                .collect();
            let pin = if tag { Pin::Tag } else { Pin::Digest };
            (workload(kind, &main, &init), pin)
        })
}

proptest! {
    #[test]
    fn a_patched_workload_plans_nothing((w, pin) in patchable()) {
        let plans = decide(&w, &policy());
        let p = patch(&w, &plans, &mirrored(pin)).expect("a patch");
        let after = apply(&object(&w), &p.patch).expect("the patch applies");
        let again = reread(&w, &after);
        let plans = decide(&again, &policy());
        prop_assert!(plans.iter().all(|p| p.decision == Decision::AlreadyInBackup), "{:?}", plans);
        prop_assert!(to_mirror(&plans).is_empty());
        prop_assert!(patch(&again, &plans, &mirrored(pin)).is_none());
    }

    #[test]
    fn restore_after_patch_gives_back_the_exact_originals((w, pin) in patchable()) {
        let original = object(&w);
        let plans = decide(&w, &policy());
        let p = patch(&w, &plans, &mirrored(pin)).expect("a patch");
        let patched = apply(&original, &p.patch).expect("the patch applies");
        let after = reread(&w, &patched);
        let options = RestoreOptions { opt_out: false, allow_unmatched: false };
        let RestorePlan::Restore { patch: Some(back), kept, rejected, .. } = restore(&after, options) else {
            return Err(TestCaseError::fail(format!("nothing to restore for {w:?}")));
        };
        prop_assert!(kept.is_empty() && rejected.is_empty(), "kept {:?}, rejected {:?}", kept, rejected);
        let mut restored = apply(&patched, &back.patch).expect("the restore applies");
        // The API server stores an empty annotations map as none (`omitempty`).
        if restored["metadata"]["annotations"] == serde_json::json!({})
            && let Some(m) = restored["metadata"].as_object_mut()
        {
            m.remove("annotations");
        }
        prop_assert_eq!(restored, original);
    }
}
