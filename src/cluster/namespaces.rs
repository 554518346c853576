//! The daemon's view of namespace opt-outs (`image-cloner.io/skip: "true"` on a namespace),
//! kept by a watch, and trusted only while that watch is whole.
//!
//! A workload in a namespace whose opt-out is not known is not planned: before the initial list
//! of namespaces has completed, while the watch is broken, and for a namespace the cache has
//! not seen yet (a namespace created with the annotation together with its workloads, whose
//! workload events can arrive first). Any watch error drops the trust and starts a fresh watch
//! (a new list), so trust comes back only from a complete, current list — not from a resumed
//! watch that cannot say what it missed. A namespace that stops opting out is announced, so
//! that the controllers reconcile its workloads at once instead of at their next change.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::StreamExt as _;
use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::Api;
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use tokio::sync::{broadcast, watch};

use crate::reconcile::context::NamespaceOptOuts;
use crate::workload;

/// First wait before a broken watch is started again; doubled up to [`RESTART_CAP`].
const RESTART_BASE: Duration = Duration::from_millis(500);
const RESTART_CAP: Duration = Duration::from_secs(30);

#[derive(Default)]
struct Known {
    /// Namespace name → opted out.
    opted_out: HashMap<String, bool>,
    /// Whether `opted_out` is a complete, current picture.
    trusted: bool,
}

/// The namespaces' opt-outs, as the watch last saw them.
pub struct NamespaceCache {
    known: Mutex<Known>,
    /// Bumped on every change, so that waiters wake.
    changed: watch::Sender<u64>,
    /// Namespaces that stopped opting out (or appeared without opting out).
    opted_in: broadcast::Sender<String>,
}

impl NamespaceCache {
    fn new() -> Arc<Self> {
        Arc::new(NamespaceCache {
            known: Mutex::default(),
            changed: watch::channel(0).0,
            opted_in: broadcast::channel(1024).0,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Known> {
        self.known.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Namespaces to reconcile again because they stopped opting out.
    pub fn subscribe(&self) -> broadcast::Receiver<String> {
        self.opted_in.subscribe()
    }

    /// The announcer itself, for the controllers to subscribe to.
    pub fn announcements(&self) -> broadcast::Sender<String> {
        self.opted_in.clone()
    }

    /// Whether the cache holds a complete, current list.
    pub fn trusted(&self) -> bool {
        self.lock().trusted
    }

    fn bump(&self) {
        self.changed.send_modify(|n| *n = n.wrapping_add(1));
    }

    fn untrust(&self) {
        self.lock().trusted = false;
        self.bump();
    }

    /// One namespace seen: announced when it no longer opts out.
    fn apply(&self, name: String, opted_out: bool) {
        let before = self.lock().opted_out.insert(name.clone(), opted_out);
        if !opted_out && before != Some(false) {
            let _ = self.opted_in.send(name);
        }
        self.bump();
    }

    fn delete(&self, name: &str) {
        self.lock().opted_out.remove(name);
        self.bump();
    }

    /// A complete list replaces what was known; what changed is announced.
    fn replace(&self, fresh: HashMap<String, bool>) {
        let opted_in: Vec<String> = {
            let mut known = self.lock();
            let changed = fresh
                .iter()
                .filter(|(name, out)| !**out && known.opted_out.get(*name) != Some(&false))
                .map(|(name, _)| name.clone())
                .collect();
            known.opted_out = fresh;
            known.trusted = true;
            changed
        };
        for name in opted_in {
            let _ = self.opted_in.send(name);
        }
        self.bump();
    }
}

impl NamespaceOptOuts for NamespaceCache {
    fn opted_out(&self, namespace: &str) -> Option<bool> {
        let known = self.lock();
        if !known.trusted {
            return None;
        }
        known.opted_out.get(namespace).copied()
    }

    fn wait_known<'a>(&'a self, namespace: &'a str, limit: Duration) -> BoxFuture<'a, ()> {
        let mut changes = self.changed.subscribe();
        Box::pin(async move {
            let known = async {
                while self.opted_out(namespace).is_none() {
                    if changes.changed().await.is_err() {
                        return;
                    }
                }
            };
            let _ = tokio::time::timeout(limit, known).await;
        })
    }
}

fn opted_out(ns: &Namespace) -> bool {
    workload::opted_out(ns.annotations())
}

/// Starts watching namespaces; the cache is trusted once the first list completes.
pub fn watch(client: Client) -> (Arc<NamespaceCache>, tokio::task::JoinHandle<()>) {
    let cache = NamespaceCache::new();
    let task = tokio::spawn(keep_watching(Api::all(client), Arc::clone(&cache)));
    (cache, task)
}

async fn keep_watching(api: Api<Namespace>, cache: Arc<NamespaceCache>) {
    let mut delay = RESTART_BASE;
    loop {
        let listed = watch_once(api.clone(), &cache).await;
        cache.untrust();
        if listed {
            delay = RESTART_BASE;
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(RESTART_CAP);
    }
}

/// One watch, from a fresh list, until its first error; whether its list completed.
async fn watch_once(api: Api<Namespace>, cache: &NamespaceCache) -> bool {
    let mut stream = watcher(api, watcher::Config::default()).boxed();
    let mut listing: HashMap<String, bool> = HashMap::new();
    let mut listed = false;
    while let Some(event) = stream.next().await {
        match event {
            Ok(watcher::Event::Init) => listing.clear(),
            Ok(watcher::Event::InitApply(ns)) => {
                listing.insert(ns.name_any(), opted_out(&ns));
            }
            Ok(watcher::Event::InitDone) => {
                cache.replace(std::mem::take(&mut listing));
                if !listed {
                    tracing::debug!("namespace opt-outs known");
                }
                listed = true;
            }
            Ok(watcher::Event::Apply(ns)) => cache.apply(ns.name_any(), opted_out(&ns)),
            Ok(watcher::Event::Delete(ns)) => cache.delete(&ns.name_any()),
            Err(e) => {
                tracing::warn!(error = %e, "namespace watch broken: workloads wait until namespaces are listed again");
                return listed;
            }
        }
    }
    listed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache_with(pairs: &[(&str, bool)]) -> Arc<NamespaceCache> {
        let cache = NamespaceCache::new();
        cache.replace(pairs.iter().map(|(n, o)| ((*n).to_owned(), *o)).collect());
        cache
    }

    #[test]
    fn nothing_is_known_before_the_first_list() {
        let cache = NamespaceCache::new();
        assert_eq!(cache.opted_out("shop"), None);
        cache.apply("shop".into(), false);
        assert_eq!(cache.opted_out("shop"), None, "a watch event is not a list");
    }

    #[test]
    fn a_listed_cache_answers_and_a_broken_watch_forgets() {
        let cache = cache_with(&[("shop", false), ("frozen", true)]);
        assert_eq!(cache.opted_out("shop"), Some(false));
        assert_eq!(cache.opted_out("frozen"), Some(true));
        assert_eq!(cache.opted_out("new"), None, "not seen yet");
        cache.untrust();
        assert_eq!(cache.opted_out("shop"), None);
    }

    #[test]
    fn a_namespace_that_stops_opting_out_is_announced() {
        let cache = cache_with(&[("frozen", true), ("shop", false)]);
        let mut opted_in = cache.subscribe();
        cache.apply("shop".into(), false);
        assert!(opted_in.try_recv().is_err(), "no change, no news");
        cache.apply("frozen".into(), false);
        assert_eq!(opted_in.try_recv().ok().as_deref(), Some("frozen"));
        cache.apply("frozen".into(), true);
        assert!(opted_in.try_recv().is_err());
        cache.replace(HashMap::from([("frozen".into(), false)]));
        assert_eq!(opted_in.try_recv().ok().as_deref(), Some("frozen"));
    }

    #[tokio::test(start_paused = true)]
    async fn waiters_wake_when_their_namespace_is_known() {
        let cache = NamespaceCache::new();
        let waiter = {
            let cache = Arc::clone(&cache);
            tokio::spawn(async move {
                cache.wait_known("shop", Duration::from_secs(30)).await;
                cache.opted_out("shop")
            })
        };
        tokio::task::yield_now().await;
        cache.replace(HashMap::from([("shop".into(), true)]));
        assert_eq!(waiter.await.expect("joined"), Some(true));
        // Unknown for good: the wait ends at its limit.
        assert!(
            tokio::time::timeout(
                Duration::from_secs(60),
                cache.wait_known("never", Duration::from_secs(30))
            )
            .await
            .is_ok()
        );
    }
}
