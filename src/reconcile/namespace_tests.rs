//! A namespace whose opt-out cannot be known is retried, never taken as an answer.

use std::sync::Mutex;
use std::time::Duration;

use futures::future::BoxFuture;

use super::known_opt_out;
use crate::reconcile::ReconcileError;
use crate::reconcile::context::NamespaceOptOuts;
use crate::workload::Kind;

/// A cache whose answer is set by the test, and that becomes `after_wait` when waited on (as
/// the daemon's cache does when its watch lists again).
struct Cache {
    now: Mutex<Option<bool>>,
    after_wait: Option<bool>,
}

impl NamespaceOptOuts for Cache {
    fn opted_out(&self, _namespace: &str) -> Option<bool> {
        *self.now.lock().unwrap()
    }

    fn wait_known<'a>(&'a self, _namespace: &'a str, _limit: Duration) -> BoxFuture<'a, ()> {
        *self.now.lock().unwrap() = self.after_wait;
        Box::pin(async {})
    }
}

fn cache(now: Option<bool>, after_wait: Option<bool>) -> Cache {
    Cache {
        now: Mutex::new(now),
        after_wait,
    }
}

/// Found by `sim::watch_faults` under load: the namespace watch restarted (410) while a copy
/// ran, the patch step read "not known" as "opted out", and the workload stayed unpatched
/// until its next change.
#[tokio::test]
async fn an_unknown_opt_out_is_an_error_to_retry() {
    let unknown = cache(None, None);
    let answer = known_opt_out(&unknown, Kind::Deployment, "shop", "web").await;
    assert!(
        matches!(answer, Err(ReconcileError::NamespaceUnknown { .. })),
        "{answer:?}"
    );
    assert!(answer.unwrap_err().is_transient());
}

#[tokio::test]
async fn the_answer_is_awaited_while_the_cache_lists_again() {
    let relisting = cache(None, Some(false));
    let answer = known_opt_out(&relisting, Kind::Deployment, "shop", "web").await;
    assert!(matches!(answer, Ok(false)), "{answer:?}");
    let opted_out = cache(None, Some(true));
    let answer = known_opt_out(&opted_out, Kind::Deployment, "shop", "web").await;
    assert!(matches!(answer, Ok(true)), "{answer:?}");
}

#[tokio::test]
async fn a_known_answer_is_not_waited_for() {
    // Were it waited for, the cache would answer None.
    let known = cache(Some(true), None);
    let answer = known_opt_out(&known, Kind::StatefulSet, "shop", "db").await;
    assert!(matches!(answer, Ok(true)), "{answer:?}");
}
