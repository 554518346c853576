//! The daemon's own patches, until the watch brings each back.
//!
//! Every patch the daemon writes comes back through its watch as a change of the workload, and
//! the controller reconciles it: planning, the privacy screen and the mirror's records once
//! more, to find what the reconcile that wrote the patch already knew — nothing left to do.
//! In the bench's cold start of the daemon that was one reconcile in three. A reconcile that
//! ends by patching records the `resourceVersion` its patch wrote and what it asked for next
//! (its requeue); the next reconcile of that workload takes the record, and when the workload
//! is still at exactly that version — nobody changed it since — it ends with the same requeue
//! instead of planning again. Any other version is somebody else's change (or a later one)
//! and is reconciled in full.
//!
//! kube-runtime never runs two reconciles of one object at once (a trigger during one is held
//! until it ends), so the echo cannot be looked at before its write was recorded.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

/// What the reconcile that wrote a workload's patch asked for next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Echo {
    /// Look at the workload again after this long even if it does not change.
    pub requeue: Option<Duration>,
}

struct Written {
    version: String,
    echo: Echo,
}

/// The last patch written per workload (keyed `kind/namespace/name`), not yet seen back.
#[derive(Default)]
pub struct OwnWrites {
    written: Mutex<HashMap<String, Written>>,
}

impl OwnWrites {
    /// Records that the reconcile of `workload` ended by writing `version`, asking `requeue`.
    pub fn record(&self, workload: String, version: String, requeue: Option<Duration>) {
        let echo = Echo { requeue };
        self.lock().insert(workload, Written { version, echo });
    }

    /// Called as a reconcile of `workload` at `version` starts: the record of its last patch is
    /// taken, and its [`Echo`] returned when `version` is exactly what that patch wrote.
    pub fn take_echo(&self, workload: &str, version: Option<&str>) -> Option<Echo> {
        let written = self.lock().remove(workload)?;
        (version == Some(written.version.as_str())).then_some(written.echo)
    }

    /// Patches recorded and not yet seen back.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Written>> {
        self.written.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: &str = "Deployment/shop/web";

    #[test]
    fn the_version_a_patch_wrote_is_its_echo_once() {
        let own = OwnWrites::default();
        own.record(W.into(), "42".into(), None);
        assert_eq!(own.take_echo(W, Some("42")), Some(Echo { requeue: None }));
        // Seen back: the same version again (a relist, a call to reconcile everything) is
        // reconciled in full.
        assert_eq!(own.take_echo(W, Some("42")), None);
        assert_eq!(own.len(), 0);
    }

    #[test]
    fn the_echo_asks_for_what_the_patching_reconcile_asked() {
        let own = OwnWrites::default();
        let later = Duration::from_secs(600);
        own.record(W.into(), "42".into(), Some(later));
        assert_eq!(
            own.take_echo(W, Some("42")),
            Some(Echo {
                requeue: Some(later)
            })
        );
    }

    #[test]
    fn any_other_version_is_a_change_and_forgets_the_patch() {
        let own = OwnWrites::default();
        own.record(W.into(), "42".into(), None);
        // Somebody edited the workload after the patch: its watch brings 43, never 42.
        assert_eq!(own.take_echo(W, Some("43")), None);
        assert_eq!(own.take_echo(W, Some("42")), None);
        own.record(W.into(), "44".into(), None);
        assert_eq!(own.take_echo(W, None), None);
        assert_eq!(own.len(), 0);
    }

    #[test]
    fn a_workload_without_a_patch_of_ours_is_reconciled() {
        let own = OwnWrites::default();
        own.record(W.into(), "42".into(), None);
        assert_eq!(own.take_echo("Deployment/shop/api", Some("42")), None);
        assert_eq!(own.take_echo(W, Some("42")), Some(Echo { requeue: None }));
    }

    #[test]
    fn a_later_patch_replaces_the_earlier() {
        let own = OwnWrites::default();
        own.record(W.into(), "42".into(), None);
        own.record(W.into(), "45".into(), None);
        assert_eq!(own.take_echo(W, Some("45")), Some(Echo { requeue: None }));
        assert_eq!(own.len(), 0);
    }
}
