//! A concurrent editor: another client (a person, CI) changing workloads' images and labels
//! while the daemon runs, with JSON patches that test nothing — the daemon must never undo one.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use serde_json::json;

use crate::recorder::Key;
use crate::rng::Rng;
use crate::scenarios::convergence::Expected;

/// One edit: the workload's first container now runs `image`, and its label `edited` is
/// `label`.
#[derive(Debug, Clone)]
pub struct Edit {
    pub key: Key,
    pub image: String,
    pub label: String,
}

pub struct Editor {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<Vec<Edit>>>,
}

fn pod_spec_pointer(plural: &str) -> &'static str {
    match plural {
        "cronjobs" => "/spec/jobTemplate/spec/template/spec",
        "pods" => "/spec",
        _ => "/spec/template/spec",
    }
}

impl Editor {
    /// Edits a random workload of `expected` every 0.2–1.2 s, to one of `images`.
    pub fn start(
        sim: Arc<kube_sim::Sim>,
        expected: &Expected,
        images: Vec<String>,
        mut rng: Rng,
    ) -> Editor {
        let keys: Vec<Key> = expected.keys().cloned().collect();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let handle = std::thread::spawn(move || {
            let mut edits = Vec::new();
            while !flag.load(Ordering::SeqCst) {
                std::thread::sleep(rng.millis(200, 1200));
                let key = keys[rng.below(keys.len() as u64) as usize].clone();
                let image = images[rng.below(images.len() as u64) as usize].clone();
                let label = format!("e{}", edits.len());
                let r = kube_sim::store::resource(&key.0);
                let has_labels = sim
                    .store()
                    .get(r, &key.1, &key.2)
                    .is_ok_and(|o| o["metadata"]["labels"].is_object());
                let label_op = if has_labels {
                    json!({"op": "add", "path": "/metadata/labels/edited", "value": label})
                } else {
                    json!({"op": "add", "path": "/metadata/labels", "value": {"edited": label}})
                };
                let image_path = format!("{}/containers/0/image", pod_spec_pointer(&key.0));
                let patch = json!([
                    {"op": "replace", "path": image_path, "value": image},
                    label_op,
                ])
                .to_string();
                let done = sim.store().patch(
                    kube_sim::store::resource(&key.0),
                    &key.1,
                    &key.2,
                    kube_sim::store::Patch::Json(patch.as_bytes()),
                    false,
                    false,
                );
                if done.is_ok() {
                    edits.push(Edit { key, image, label });
                }
            }
            edits
        });
        Editor {
            stop,
            handle: Some(handle),
        }
    }

    /// Stops editing; the edits made.
    pub fn finish(mut self) -> Vec<Edit> {
        self.stop.store(true, Ordering::SeqCst);
        self.handle
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default()
    }
}

impl Drop for Editor {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}
