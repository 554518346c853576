//! The reconcile span names the workload in every line: its namespace, kind and name, or its
//! `generateName` when it has no name yet (as `ResourceExt::name_any` gives it).

use super::span;
use crate::ops::captured_lines::Captured;
use crate::workload::partial::Deployment;

fn line_in_span_of(metadata: serde_json::Value) -> String {
    let deployment: Deployment = serde_json::from_value(serde_json::json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": metadata,
        "spec": {"selector": {}, "template": {"spec": {"containers": []}}}
    }))
    .expect("a Deployment");
    let lines = Captured::default();
    tracing::subscriber::with_default(lines.subscriber(), || {
        let _in = span(&deployment).entered();
        tracing::info!("patched");
    });
    lines.text()
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
