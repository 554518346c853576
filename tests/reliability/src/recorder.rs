//! The watch that records every state of every workload: it follows the simulator's change
//! history (every committed write, none coalesced) on a thread, from before the first daemon
//! starts until the end of the world.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::Value;

use crate::world::containers;

/// `(plural, namespace, name)`.
pub type Key = (String, String, String);

/// One state of a workload.
#[derive(Debug, Clone, PartialEq)]
pub struct State {
    pub images: Vec<(String, String)>,
    pub labels: BTreeMap<String, String>,
    pub original_images: Option<String>,
}

impl State {
    pub fn of(plural: &str, obj: &Value) -> State {
        let meta = &obj["metadata"];
        let strings = |v: &Value| -> BTreeMap<String, String> {
            v.as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                        .collect()
                })
                .unwrap_or_default()
        };
        State {
            images: containers(plural, obj),
            labels: strings(&meta["labels"]),
            original_images: meta["annotations"]["image-cloner.io/original-images"]
                .as_str()
                .map(str::to_owned),
        }
    }
}

#[derive(Debug, Default)]
pub struct History {
    pub states: BTreeMap<Key, Vec<State>>,
    /// Times the history window moved past the recorder (states may have been missed).
    pub gaps: u64,
    pub changes: u64,
}

impl History {
    /// Every image any workload ever ran.
    pub fn images(&self) -> impl Iterator<Item = &str> {
        self.states
            .values()
            .flatten()
            .flat_map(|s| s.images.iter().map(|(_, i)| i.as_str()))
    }
}

const WORKLOADS: &[&str] = &[
    "deployments",
    "statefulsets",
    "daemonsets",
    "replicasets",
    "jobs",
    "cronjobs",
    "pods",
];

pub struct Recorder {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<History>>,
}

impl Recorder {
    /// Records from the store's current resourceVersion on.
    pub fn start(sim: Arc<kube_sim::Sim>) -> Recorder {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let handle = std::thread::spawn(move || {
            let store = sim.store();
            let mut cursor = store.resource_version();
            let mut history = History::default();
            loop {
                let last = flag.load(Ordering::SeqCst);
                match store.changes_after(cursor) {
                    Some((changes, head)) => {
                        for c in changes {
                            if WORKLOADS.contains(&c.storage) {
                                history.changes += 1;
                                let key = (
                                    c.storage.to_owned(),
                                    c.namespace.clone(),
                                    c.object["metadata"]["name"]
                                        .as_str()
                                        .unwrap_or_default()
                                        .to_owned(),
                                );
                                let state = State::of(c.storage, &c.object);
                                let states = history.states.entry(key).or_default();
                                if states.last() != Some(&state) {
                                    states.push(state);
                                }
                            }
                        }
                        cursor = head;
                    }
                    None => {
                        history.gaps += 1;
                        cursor = store.resource_version();
                    }
                }
                if last {
                    return history;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        Recorder {
            stop,
            handle: Some(handle),
        }
    }

    /// Stops after one last read; everything recorded.
    pub fn finish(mut self) -> History {
        self.stop.store(true, Ordering::SeqCst);
        self.handle
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default()
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}
