//! `kubectl auth can-i`: creates of authorization.k8s.io/v1 SelfSubjectAccessReview and
//! SubjectAccessReview. The simulator stores RBAC objects but enforces none of them: every
//! request with its token is allowed. So it answers every well-formed review `allowed: true`
//! and says why in `status.reason`, rather than pretend to evaluate Roles; the real server's
//! answer depends on its RBAC (envtest's admin token is in `system:masters`, where both say
//! yes). Malformed reviews get the real server's 422s (checked against kube-apiserver 1.20).

use serde_json::{Value, json};

use crate::resources::ResourceType;
use crate::status::{ApiError, Cause};

const GROUP: &str = "authorization.k8s.io";

/// Why every review is allowed; shown by `kubectl auth can-i -v=8` and in the object.
pub const REASON: &str = "kube-sim does not enforce RBAC: every request with its token is allowed";

/// Whether `r` is an access review, answered here rather than stored.
pub fn is_review(r: &ResourceType) -> bool {
    r.group == GROUP
}

/// The answered review: the spec as sent, the status the simulator can truthfully give.
pub fn answer(r: &ResourceType, review: Value) -> Result<Value, ApiError> {
    check_type(r, &review)?;
    let mut causes = spec_causes(r, &review["spec"]);
    let mut meta = review["metadata"].as_object().cloned().unwrap_or_default();
    meta.remove("managedFields");
    meta.retain(|k, v| !(k == "creationTimestamp" && v.is_null()));
    if !meta.is_empty() {
        causes.push(Cause::invalid(
            "metadata",
            &format!("{}: must be empty", Value::Object(meta)),
        ));
    }
    if !causes.is_empty() {
        return Err(invalid(&causes));
    }
    Ok(json!({
        "kind": r.kind,
        "apiVersion": r.api_version(),
        "metadata": {"creationTimestamp": null},
        "spec": review["spec"],
        "status": {"allowed": true, "reason": REASON},
    }))
}

fn check_type(r: &ResourceType, review: &Value) -> Result<(), ApiError> {
    for (field, expected) in [("kind", r.kind.to_owned()), ("apiVersion", r.api_version())] {
        if let Some(given) = review[field].as_str()
            && given != expected
        {
            return Err(ApiError::bad_request(format!(
                "the {field} in the data ({given}) does not match the expected {field} ({expected})"
            )));
        }
    }
    Ok(())
}

/// pkg/apis/authorization/validation: exactly one kind of attributes; a SubjectAccessReview
/// names a user or a group.
fn spec_causes(r: &ResourceType, spec: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    let resource = &spec["resourceAttributes"];
    let non_resource = &spec["nonResourceAttributes"];
    match (resource.is_object(), non_resource.is_object()) {
        (false, false) => causes.push(Cause::invalid(
            "spec.resourceAttributes",
            "\"null\": exactly one of nonResourceAttributes or resourceAttributes must be specified",
        )),
        (true, true) => causes.push(Cause::invalid(
            "spec.nonResourceAttributes",
            &format!("{non_resource}: cannot be specified in combination with resourceAttributes"),
        )),
        _ => {}
    }
    let named = |k: &str| {
        spec[k].as_str().is_some_and(|s| !s.is_empty())
            || spec[k].as_array().is_some_and(|a| !a.is_empty())
    };
    if r.kind == "SubjectAccessReview" && !named("user") && !named("groups") {
        causes.push(Cause::invalid(
            "spec.user",
            "\"\": at least one of user or group must be specified",
        ));
    }
    causes
}

/// The registry answers `NewInvalid(Kind(review.Kind), "", errs)` with the decoded review's
/// kind, which is empty by then: the message starts `.authorization.k8s.io "" is invalid`
/// and the details name only the group.
fn invalid(causes: &[Cause]) -> ApiError {
    let text: Vec<String> = causes
        .iter()
        .map(|c| format!("{}: {}", c.field, c.message))
        .collect();
    let text = match &text[..] {
        [one] => one.clone(),
        many => format!("[{}]", many.join(", ")),
    };
    let details = json!({
        "group": GROUP,
        "causes": causes.iter().map(|c| json!({
            "reason": c.reason, "message": c.message, "field": c.field,
        })).collect::<Vec<_>>(),
    });
    ApiError::new(
        422,
        "Invalid",
        format!(".{GROUP} \"\" is invalid: {text}"),
        Some(details),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::by_path;

    fn review(plural: &str) -> &'static ResourceType {
        by_path(GROUP, "v1", plural).expect("served")
    }

    #[test]
    fn every_well_formed_review_is_allowed_and_says_why() {
        let r = review("selfsubjectaccessreviews");
        let spec =
            json!({"resourceAttributes": {"namespace": "a", "verb": "create", "resource": "pods"}});
        let sent = json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
            "metadata": {"creationTimestamp": null}, "spec": spec, "status": {"allowed": false}});
        let got = answer(r, sent).expect("allowed");
        assert_eq!(got["spec"], spec);
        assert_eq!(got["status"], json!({"allowed": true, "reason": REASON}));
        assert_eq!(got["kind"], "SelfSubjectAccessReview");
        let sar = review("subjectaccessreviews");
        let got = answer(
            sar,
            json!({"spec": {"user": "bob", "nonResourceAttributes": {"path": "/healthz", "verb": "get"}}}),
        )
        .expect("allowed");
        assert_eq!(got["status"]["allowed"], true);
    }

    #[test]
    fn malformed_reviews_get_the_real_servers_422s() {
        let fields = |r, v| {
            let e = answer(review(r), v).expect_err("invalid");
            assert_eq!((e.code, e.reason()), (422, "Invalid"));
            assert_eq!(e.body["details"]["group"], GROUP);
            assert!(e.body["details"].get("kind").is_none());
            let causes = e.body["details"]["causes"].as_array().cloned();
            causes
                .unwrap_or_default()
                .iter()
                .map(|c| c["field"].as_str().unwrap_or_default().to_owned())
                .collect::<Vec<_>>()
        };
        let both =
            json!({"resourceAttributes": {"verb": "get"}, "nonResourceAttributes": {"path": "/x"}});
        assert_eq!(
            fields("selfsubjectaccessreviews", json!({"spec": {}})),
            ["spec.resourceAttributes"]
        );
        assert_eq!(
            fields("selfsubjectaccessreviews", json!({"spec": both})),
            ["spec.nonResourceAttributes"]
        );
        assert_eq!(
            fields(
                "subjectaccessreviews",
                json!({"spec": {"resourceAttributes": {"verb": "get"}}})
            ),
            ["spec.user"]
        );
        assert_eq!(
            fields(
                "selfsubjectaccessreviews",
                json!({"metadata": {"name": "x"}, "spec": {"resourceAttributes": {"verb": "get"}}})
            ),
            ["metadata"]
        );
        let e = answer(
            review("selfsubjectaccessreviews"),
            json!({"kind": "SubjectAccessReview", "spec": {"resourceAttributes": {}}}),
        )
        .expect_err("wrong kind");
        assert_eq!(e.code, 400);
    }
}
