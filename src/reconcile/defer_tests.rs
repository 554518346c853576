//! When a reconcile patches the copies it verified, and when it waits for the rest.

use super::defer_patch;
use crate::registry::mirror::MirrorError;

fn passing() -> MirrorError {
    MirrorError::Aborted { image: "a".into() }
}

fn lasting() -> MirrorError {
    MirrorError::SourceNotFound { image: "b".into() }
}

/// Found by make reliability (a throttling source): a workload with three images was written
/// three times, once per image as each copy got through, rolling its pods three times.
#[test]
fn a_workload_waits_for_copies_that_failed_for_a_passing_reason() {
    assert!(defer_patch(&[passing()]));
    assert!(defer_patch(&[passing(), passing()]));
}

#[test]
fn the_verified_copies_are_patched_when_nothing_failed_or_a_failure_lasts() {
    assert!(!defer_patch(&[]));
    assert!(!defer_patch(&[lasting()]));
    assert!(!defer_patch(&[passing(), lasting()]));
}
