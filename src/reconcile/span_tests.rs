//! The reconcile span names the workload in every line: its namespace, kind and name, or its
//! `generateName` when it has no name yet (as `ResourceExt::name_any` gives it).

use std::io;
use std::sync::{Arc, Mutex};

use super::span;
use crate::workload::partial::Deployment;

/// What the subscriber wrote.
#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<u8>>>);

impl io::Write for Lines {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.0
            .lock()
            .expect("not poisoned")
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn line_in_span_of(metadata: serde_json::Value) -> String {
    let deployment: Deployment = serde_json::from_value(serde_json::json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": metadata,
        "spec": {"selector": {}, "template": {"spec": {"containers": []}}}
    }))
    .expect("a Deployment");
    let lines = Lines::default();
    let writer = lines.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .without_time()
        .finish();
    tracing::subscriber::with_default(subscriber, || {
        let _in = span(&deployment).entered();
        tracing::info!("patched");
    });
    let text = lines.0.lock().expect("not poisoned").clone();
    String::from_utf8(text).expect("UTF-8")
}

#[test]
fn the_span_names_the_workload_or_its_generate_name() {
    let named = line_in_span_of(serde_json::json!({"name": "web", "namespace": "shop"}));
    assert!(
        named.contains(r#"reconcile{namespace="shop" kind=Deployment name="web"}: "#),
        "{named}"
    );
    let generated =
        line_in_span_of(serde_json::json!({"generateName": "web-", "namespace": "shop"}));
    assert!(
        generated.contains(r#"reconcile{namespace="shop" kind=Deployment name="web-"}: "#),
        "{generated}"
    );
    let bare = line_in_span_of(serde_json::json!({}));
    assert!(
        bare.contains(r#"reconcile{namespace="" kind=Deployment name=""}: "#),
        "{bare}"
    );
}
