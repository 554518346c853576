//! Calling the webhooks of one write as kube-apiserver's dispatchers do
//! (`webhook/mutating/dispatcher.go`, `webhook/validating/dispatcher.go`): mutating ones one
//! after another, each seeing the previous one's result; validating ones all at once, the
//! first failure to arrive deciding. Denials become the webhook's Status as
//! `errors/statuserror.go` (1.20) rewrites it; a webhook that cannot be called fails the
//! request with a 500 unless its `failurePolicy` is `Ignore`.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Value, json};
use tokio::task::JoinSet;

use super::client::{self, CallError};
use super::config::{Endpoint, Webhook};
use super::matching::{Attributes, should_call};
use crate::status::ApiError;

/// The one user the simulator's bearer token stands for (like envtest's token user).
fn user_info() -> Value {
    json!({"username": "admin", "uid": "admin", "groups": ["system:masters", "system:authenticated"]})
}

/// Warnings for the client, deduplicated as the real server's recorder does.
#[derive(Debug, Default)]
pub struct Warnings(pub Vec<String>);

impl Warnings {
    pub fn add(&mut self, texts: &Value) {
        for t in texts
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            if !t.is_empty() && !self.0.iter().any(|w| w == t) {
                self.0.push(t.to_owned());
            }
        }
    }
}

/// `apierrors.NewInternalError`.
pub fn internal(message: &str) -> ApiError {
    ApiError {
        code: 500,
        body: json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": format!("Internal error occurred: {message}"), "reason": "InternalError",
            "details": {"causes": [{"message": message}]}, "code": 500}),
        retry_after: None,
    }
}

/// How one call went wrong.
enum Failure {
    /// The webhook could not be called or answered nonsense: `failurePolicy` decides.
    Call(String),
    /// Fails the request whatever the policy.
    Fatal(ApiError),
}

impl From<CallError> for Failure {
    fn from(e: CallError) -> Failure {
        Failure::Call(e.to_string())
    }
}

/// What a webhook answered, verified (`request.VerifyAdmissionResponse`).
struct Answer {
    allowed: bool,
    status: Value,
    patch: Option<Vec<u8>>,
    warnings: Value,
}

/// The `admission.k8s.io/v1` AdmissionReview for `a`, as `CreateV1AdmissionReview` fills it.
fn review(uid: &str, a: &Attributes) -> Value {
    let r = a.r;
    let kind = json!({"group": r.group, "version": r.version, "kind": r.kind});
    let resource = json!({"group": r.group, "version": r.version, "resource": r.plural});
    let mut request = json!({
        "uid": uid, "kind": kind, "resource": resource, "requestKind": kind,
        "requestResource": resource, "operation": a.operation, "userInfo": user_info(),
        "object": a.object, "oldObject": a.old_object, "dryRun": a.dry_run, "options": a.options,
    });
    for (key, value) in [
        ("subResource", &a.subresource),
        ("requestSubResource", &a.subresource),
        ("name", &a.name),
        ("namespace", &a.namespace),
    ] {
        if !value.is_empty() {
            request[key] = json!(value);
        }
    }
    json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request})
}

fn verify(uid: &str, body: &[u8], mutating: bool) -> Result<Answer, Failure> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| Failure::Call(format!("couldn't get version/kind; json parse error: {e}")))?;
    let (av, kind) = (
        v["apiVersion"].as_str().unwrap_or_default(),
        v["kind"].as_str().unwrap_or_default(),
    );
    if (av, kind) != ("admission.k8s.io/v1", "AdmissionReview") {
        return Err(Failure::Call(format!(
            "expected webhook response of admission.k8s.io/v1, Kind=AdmissionReview, got {av}, Kind={kind}"
        )));
    }
    let resp = &v["response"];
    if !resp.is_object() {
        return Err(Failure::Call("webhook response was absent".to_owned()));
    }
    let got = resp["uid"].as_str().unwrap_or_default();
    if got != uid {
        return Err(Failure::Call(format!(
            "expected response.uid={uid:?}, got {got:?}"
        )));
    }
    let patch =
        match resp["patch"].as_str().filter(|p| !p.is_empty()) {
            None => None,
            Some(p) => Some(B64.decode(p).map_err(|e| {
                Failure::Call(format!("illegal base64 data in response.patch: {e}"))
            })?),
        };
    let patch_type = resp["patchType"].as_str().unwrap_or_default();
    if patch.is_some() && patch_type.is_empty() {
        return Err(Failure::Call(
            "webhook returned response.patch but not response.patchType".to_owned(),
        ));
    }
    if patch.is_some() && !mutating {
        return Err(Failure::Call(
            "validating webhook may not return response.patch".to_owned(),
        ));
    }
    if patch.is_some() && patch_type != "JSONPatch" {
        return Err(Failure::Call(format!(
            "unsupported patch type {patch_type:?}"
        )));
    }
    Ok(Answer {
        allowed: resp["allowed"].as_bool().unwrap_or(false),
        status: resp["status"].clone(),
        patch,
        warnings: resp["warnings"].clone(),
    })
}

/// One call: checks that may refuse it first, then the POST and the verified answer.
async fn call(hook: Webhook, a: Attributes, mutating: bool) -> Result<Answer, Failure> {
    if a.dry_run && !matches!(hook.side_effects.as_str(), "None" | "NoneOnDryRun") {
        return Err(Failure::Fatal(ApiError::bad_request(format!(
            "admission webhook {:?} does not support dry run",
            hook.name
        ))));
    }
    if !hook.review_versions.iter().any(|v| v == "v1") {
        return Err(Failure::Call(
            "webhook does not accept the v1 AdmissionReview (the simulator sends no other)"
                .to_owned(),
        ));
    }
    let (url, ca_pem) = match &hook.endpoint {
        Endpoint::Url { url, ca_pem } => (url, ca_pem),
        Endpoint::Service { namespace, name } => {
            return Err(Failure::Call(format!(
                "service \"{namespace}/{name}\": the simulator does not route to Services (use clientConfig.url)"
            )));
        }
    };
    let uid = uuid::Uuid::new_v4().to_string();
    let body = client::post(url, ca_pem, &review(&uid, &a), hook.timeout).await?;
    verify(&uid, &body, mutating)
}

/// `ToStatusErr` of 1.20: the webhook's Status, a code of at least 400, Failure, and a
/// message naming the webhook.
fn denied(hook: &str, status: &Value) -> ApiError {
    let mut s = if status.is_object() {
        status.clone()
    } else {
        json!({})
    };
    let code = s["code"].as_u64().filter(|c| *c >= 400).unwrap_or(400);
    s["code"] = json!(code);
    if matches!(s["status"].as_str(), None | Some("" | "Success")) {
        s["status"] = json!("Failure");
    }
    let denied_by = format!("admission webhook {hook:?} denied the request");
    let message = match (s["message"].as_str(), s["reason"].as_str()) {
        (Some(m), _) if !m.is_empty() => format!("{denied_by}: {m}"),
        (_, Some(r)) if !r.is_empty() => format!("{denied_by}: {r}"),
        _ => format!("{denied_by} without explanation"),
    };
    s["message"] = json!(message);
    s["kind"] = json!("Status");
    s["apiVersion"] = json!("v1");
    s["metadata"] = json!({});
    ApiError {
        code: u16::try_from(code).unwrap_or(400),
        body: s,
        retry_after: None,
    }
}

/// How a failed call ends the request, or None when `failurePolicy: Ignore` lets it pass.
fn failed(hook: &Webhook, f: Failure) -> Option<ApiError> {
    match f {
        Failure::Fatal(e) => Some(e),
        Failure::Call(_) if hook.ignore_failures => None,
        Failure::Call(reason) => Some(internal(&format!(
            "failed calling webhook {:?}: {reason}",
            hook.name
        ))),
    }
}

/// The mutating webhooks in order; `a.object` ends up as the last one left it.
pub async fn mutate(
    hooks: &[Webhook],
    a: &mut Attributes,
    warnings: &mut Warnings,
) -> Result<(), ApiError> {
    for hook in hooks {
        // Matched against the object as the webhooks before left it.
        if !should_call(hook, a) {
            continue;
        }
        let answer = match call(hook.clone(), a.clone(), true).await {
            Ok(answer) => answer,
            Err(f) => match failed(hook, f) {
                Some(e) => return Err(e),
                None => continue,
            },
        };
        warnings.add(&answer.warnings);
        if !answer.allowed {
            return Err(denied(&hook.name, &answer.status));
        }
        if let Some(bytes) = answer.patch {
            a.object = apply(&bytes, &a.object)?;
        }
    }
    Ok(())
}

/// A webhook's JSONPatch on the object: a patch that does not decode or apply is the
/// server's internal error, whatever the failurePolicy (as in 1.20).
fn apply(bytes: &[u8], object: &Value) -> Result<Value, ApiError> {
    let patch: json_patch::Patch =
        serde_json::from_slice(bytes).map_err(|e| internal(&e.to_string()))?;
    let mut out = object.clone();
    json_patch::patch(&mut out, &patch).map_err(|e| internal(&e.to_string()))?;
    Ok(out)
}

/// The validating webhooks, called at once.
pub async fn validate(
    hooks: &[Webhook],
    a: &Attributes,
    warnings: &mut Warnings,
) -> Result<(), ApiError> {
    let mut calls = JoinSet::new();
    for hook in hooks.iter().filter(|h| should_call(h, a)) {
        let (hook, a) = (hook.clone(), a.clone());
        calls.spawn(async move {
            let outcome = call(hook.clone(), a, false).await;
            (hook, outcome)
        });
    }
    let mut first_error = None;
    while let Some(joined) = calls.join_next().await {
        let Ok((hook, outcome)) = joined else {
            continue;
        };
        let error = match outcome {
            Ok(answer) => {
                warnings.add(&answer.warnings);
                (!answer.allowed).then(|| denied(&hook.name, &answer.status))
            }
            Err(f) => failed(&hook, f),
        };
        if first_error.is_none() {
            first_error = error;
        }
    }
    first_error.map_or(Ok(()), Err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn denials_read_as_in_kube_apiserver_1_20() {
        let d = denied(
            "v.kube-sim.test",
            &json!({"code": 403, "reason": "Forbidden", "message": "no"}),
        );
        assert_eq!(d.code, 403);
        assert_eq!(d.reason(), "Forbidden");
        assert_eq!(
            d.message(),
            "admission webhook \"v.kube-sim.test\" denied the request: no"
        );
        let d = denied("v.kube-sim.test", &Value::Null);
        assert_eq!((d.code, d.body["status"].as_str()), (400, Some("Failure")));
        assert_eq!(
            d.message(),
            "admission webhook \"v.kube-sim.test\" denied the request without explanation"
        );
        assert!(d.body.get("reason").is_none());
        let d = denied(
            "v.kube-sim.test",
            &json!({"code": 200, "status": "Success", "reason": "Nope"}),
        );
        assert_eq!((d.code, d.body["status"].as_str()), (400, Some("Failure")));
        assert_eq!(
            d.message(),
            "admission webhook \"v.kube-sim.test\" denied the request: Nope"
        );
    }

    #[test]
    fn patches_apply_in_order_and_failures_are_internal_errors() {
        let obj = json!({"spec": {"containers": [{"image": "nginx"}]}});
        let p =
            br#"[{"op": "replace", "path": "/spec/containers/0/image", "value": "backup/nginx"},
                     {"op": "add", "path": "/metadata", "value": {"labels": {"a": "b"}}}]"#;
        let out = apply(p, &obj).expect("applies");
        assert_eq!(out["spec"]["containers"][0]["image"], "backup/nginx");
        assert_eq!(out["metadata"]["labels"]["a"], "b");
        let e = apply(br#"[{"op": "remove", "path": "/nothing"}]"#, &obj).expect_err("fails");
        assert_eq!((e.code, e.reason()), (500, "InternalError"));
        assert!(apply(b"{}", &obj).is_err(), "a patch is a list");
    }

    #[test]
    fn answers_are_verified() {
        let ok =
            |v: Value, mutating| verify("u1", &serde_json::to_vec(&v).expect("json"), mutating);
        let review = |resp: Value| json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": resp});
        let reason = |r: Result<Answer, Failure>| match r {
            Err(Failure::Call(m)) => m,
            _ => String::new(),
        };
        assert!(ok(review(json!({"uid": "u1", "allowed": true})), false).is_ok());
        assert_eq!(
            reason(ok(review(json!({"uid": "u2", "allowed": true})), false)),
            "expected response.uid=\"u1\", got \"u2\""
        );
        let patched = json!({"uid": "u1", "allowed": true, "patch": B64.encode("[]")});
        assert_eq!(
            reason(ok(review(patched.clone()), true)),
            "webhook returned response.patch but not response.patchType"
        );
        let mut typed = patched;
        typed["patchType"] = json!("JSONPatch");
        assert!(ok(review(typed.clone()), true).is_ok());
        assert_eq!(
            reason(ok(review(typed), false)),
            "validating webhook may not return response.patch"
        );
        assert_eq!(
            reason(ok(review(Value::Null), true)),
            "webhook response was absent"
        );
        assert!(reason(ok(json!({"response": {}}), true)).starts_with("expected webhook response"));
    }
}
