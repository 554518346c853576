//! Raw requests through kube-rs's client, keeping what typed calls hide: the status code,
//! the body and the `Warning` headers.

use serde_json::{Value, json};

use crate::common::without_noise;

/// One API answer as a client sees it.
pub struct Reply {
    pub code: u16,
    pub body: Value,
    pub warnings: Vec<String>,
}

/// A request as the test writes it; the answer with the `Warning` headers a client gets.
pub async fn send(
    client: &kube::Client,
    method: &str,
    path: &str,
    ct: &str,
    body: Option<Value>,
) -> Reply {
    let bytes = body
        .map(|b| serde_json::to_vec(&b).unwrap())
        .unwrap_or_default();
    let req = http::Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", ct)
        .body(bytes)
        .unwrap();
    let resp = client
        .send(req.map(kube::client::Body::from))
        .await
        .expect("send");
    let code = resp.status().as_u16();
    let warnings = resp
        .headers()
        .get_all("warning")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    let body = resp.into_body().collect_bytes().await.expect("read body");
    Reply {
        code,
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        warnings,
    }
}

/// What of an answer two servers must agree on.
pub fn reply_essence(r: &Reply) -> Value {
    let body = if r.body["kind"] == "Status" {
        r.body.clone()
    } else {
        without_noise(&r.body)
    };
    json!({"code": r.code, "body": body, "warnings": r.warnings})
}
