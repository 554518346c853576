//! Errors as the real API server sends them: `Status` objects with a `reason`, a `code` and
//! `details`, built like k8s.io/apimachinery/pkg/api/errors/errors.go builds them.

use serde_json::{Value, json};

use crate::resources::ResourceType;

/// An error answer: the HTTP status and the `Status` body.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub code: u16,
    pub body: Value,
    /// `Retry-After` seconds, for injected 429s and 503s.
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub(crate) fn new(
        code: u16,
        reason: &str,
        message: String,
        details: Option<Value>,
    ) -> ApiError {
        let mut body = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": message,
            "reason": reason,
            "code": code,
        });
        if let Some(details) = details {
            body["details"] = details;
        }
        ApiError {
            code,
            body,
            retry_after: None,
        }
    }

    pub fn reason(&self) -> &str {
        self.body["reason"].as_str().unwrap_or_default()
    }

    pub fn message(&self) -> &str {
        self.body["message"].as_str().unwrap_or_default()
    }

    fn details(r: &ResourceType, name: &str) -> Value {
        let mut d = json!({"name": name, "kind": r.plural});
        if !r.group.is_empty() {
            d["group"] = json!(r.group);
        }
        d
    }

    pub fn not_found(r: &ResourceType, name: &str) -> ApiError {
        ApiError::new(
            404,
            "NotFound",
            format!("{} \"{name}\" not found", r.qualified()),
            Some(Self::details(r, name)),
        )
    }

    pub fn namespace_not_found(ns: &str) -> ApiError {
        ApiError::new(
            404,
            "NotFound",
            format!("namespaces \"{ns}\" not found"),
            Some(json!({"name": ns, "kind": "namespaces"})),
        )
    }

    pub fn namespace_terminating(ns: &str) -> ApiError {
        ApiError::new(
            403,
            "Forbidden",
            format!(
                "namespaces \"{ns}\" is forbidden: unable to create new content in namespace {ns} because it is being terminated"
            ),
            Some(
                json!({"name": ns, "kind": "namespaces", "causes": [{"reason": "NamespaceTerminating", "message": format!("namespace {ns} is being terminated"), "field": "metadata.namespace"}]}),
            ),
        )
    }

    pub fn already_exists(r: &ResourceType, name: &str) -> ApiError {
        ApiError::new(
            409,
            "AlreadyExists",
            format!("{} \"{name}\" already exists", r.qualified()),
            Some(Self::details(r, name)),
        )
    }

    pub fn conflict(r: &ResourceType, name: &str) -> ApiError {
        ApiError::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; \
                 please apply your changes to the latest version and try again",
                r.qualified()
            ),
            Some(Self::details(r, name)),
        )
    }

    /// A precondition (uid or resourceVersion in DeleteOptions) that does not hold.
    pub fn precondition_failed(r: &ResourceType, name: &str, what: &str) -> ApiError {
        ApiError::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{name}\": {what}",
                r.qualified()
            ),
            Some(Self::details(r, name)),
        )
    }

    /// 422 with field causes: `Deployment.apps "x" is invalid: spec.template: ...`.
    pub fn invalid(r: &ResourceType, name: &str, causes: &[Cause]) -> ApiError {
        let text: Vec<String> = causes
            .iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .collect();
        let message = if text.len() == 1 {
            format!("{} \"{name}\" is invalid: {}", r.qualified_kind(), text[0])
        } else {
            format!(
                "{} \"{name}\" is invalid: [{}]",
                r.qualified_kind(),
                text.join(", ")
            )
        };
        let mut details = json!({"name": name, "kind": r.kind, "causes": causes.iter().map(|c| json!({
            "reason": c.reason, "message": c.message, "field": c.field,
        })).collect::<Vec<_>>()});
        if !r.group.is_empty() {
            details["group"] = json!(r.group);
        }
        ApiError::new(422, "Invalid", message, Some(details))
    }

    /// What the real server answers when a JSON patch cannot be applied, a failed `test` op
    /// included (apiserver's patch.go: `NewGenericServerResponse(422, ...)`); checked against
    /// kube-apiserver 1.20, which sends exactly this with empty details.
    pub fn patch_not_applicable() -> ApiError {
        ApiError::new(
            422,
            "Invalid",
            "the server rejected our request due to an error in our request".to_owned(),
            Some(json!({})),
        )
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(400, "BadRequest", message.into(), None)
    }

    pub fn unauthorized() -> ApiError {
        ApiError::new(401, "Unauthorized", "Unauthorized".to_owned(), None)
    }

    pub fn method_not_allowed() -> ApiError {
        ApiError::new(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource".to_owned(),
            None,
        )
    }

    pub fn page_not_found() -> ApiError {
        ApiError::new(
            404,
            "NotFound",
            "the server could not find the requested resource".to_owned(),
            Some(json!({})),
        )
    }

    pub fn unsupported_media_type(content_type: &str) -> ApiError {
        ApiError::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json (got {content_type:?})"
            ),
            None,
        )
    }

    /// The watch cache's answer for a resourceVersion older than its window.
    pub fn expired(requested: u64, oldest: u64) -> ApiError {
        ApiError::new(
            410,
            "Expired",
            format!("too old resource version: {requested} ({oldest})"),
            None,
        )
    }

    pub fn continue_expired() -> ApiError {
        ApiError::new(
            410,
            "Expired",
            "The provided continue parameter is too old to display a consistent list result. \
             You can start a new list without the continue parameter."
                .to_owned(),
            None,
        )
    }

    /// An injected failure with any code: reason as the real server would pick for that code.
    pub fn injected(code: u16, retry_after: Option<u64>) -> ApiError {
        let (reason, message) = match code {
            409 => (
                "Conflict",
                "Operation cannot be fulfilled: injected conflict",
            ),
            429 => (
                "TooManyRequests",
                "Too many requests, please try again later.",
            ),
            500 => ("InternalError", "Internal error occurred: injected fault"),
            503 => (
                "ServiceUnavailable",
                "The server is currently unable to handle the request",
            ),
            504 => (
                "Timeout",
                "The server was unable to return a response in the time allotted",
            ),
            _ => ("Unknown", "injected fault"),
        };
        let mut e = ApiError::new(code, reason, message.to_owned(), None);
        if let Some(s) = retry_after {
            e.body["details"] = json!({"retryAfterSeconds": s});
            e.retry_after = Some(s);
        }
        e
    }
}

/// One field error in an Invalid answer.
#[derive(Debug, Clone)]
pub struct Cause {
    pub reason: &'static str,
    pub field: String,
    pub message: String,
}

impl Cause {
    pub fn required(field: &str, what: &str) -> Cause {
        Cause {
            reason: "FieldValueRequired",
            field: field.to_owned(),
            message: format!("Required value: {what}"),
        }
    }

    pub fn immutable(field: &str) -> Cause {
        Cause {
            reason: "FieldValueInvalid",
            field: field.to_owned(),
            message: "Invalid value: field is immutable".to_owned(),
        }
    }

    pub fn forbidden(field: &str, what: &str) -> Cause {
        Cause {
            reason: "FieldValueForbidden",
            field: field.to_owned(),
            message: format!("Forbidden: {what}"),
        }
    }

    pub fn invalid(field: &str, what: &str) -> Cause {
        Cause {
            reason: "FieldValueInvalid",
            field: field.to_owned(),
            message: format!("Invalid value: {what}"),
        }
    }
}
