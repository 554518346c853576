//! The requests a [`Registry`](crate::Registry) started with
//! [`request_log`](crate::RegistryOptions::request_log) wrote to its log: docker-registry's
//! logrus text, one line per request as it ends — `response completed` (or `… with error`),
//! or, for a request refused for want of credentials, `error authorizing context` and nothing
//! else. What the bench counts connections and requests from, and what tests count a client's
//! requests from, at the registry's own door.

/// One request, as its line tells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoggedRequest<'a> {
    pub method: &'a str,
    pub uri: &'a str,
    /// The client's address and port: one per TCP connection.
    pub remote_addr: Option<&'a str>,
    pub user_agent: &'a str,
    /// Refused for want of credentials (a 401 challenge).
    pub refused: bool,
}

/// The requests of a registry's log text, in order.
pub fn logged_requests(log: &str) -> impl Iterator<Item = LoggedRequest<'_>> {
    log.lines().filter_map(|line| {
        let refused = if line.contains("msg=\"response completed") {
            false
        } else if line.contains("msg=\"error authorizing context") {
            true
        } else {
            return None;
        };
        Some(LoggedRequest {
            method: field(line, "http.request.method")?,
            uri: field(line, "http.request.uri")?,
            remote_addr: field(line, "http.request.remoteaddr"),
            user_agent: field(line, "http.request.useragent").unwrap_or_default(),
            refused,
        })
    })
}

/// The value of `key=` in a logrus text line: quoted (`key="a b"`) or bare (`key=a`).
fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let start = line.find(&format!(" {key}="))? + key.len() + 2;
    let rest = &line[start..];
    match rest.strip_prefix('"') {
        Some(quoted) => quoted.split('"').next(),
        None => rest.split_whitespace().next(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = r#"time="x" level=info msg="listening on 127.0.0.1:45871" go.version=go1.19.8
time="x" level=warning msg="error authorizing context: basic authentication challenge for realm \"testbed\": invalid authorization credential" http.request.host="127.0.0.1:45871" http.request.method=HEAD http.request.remoteaddr="127.0.0.1:51470" http.request.uri=/v2/mirror/app/manifests/1 http.request.useragent=image-cloner
time="x" level=error msg="response completed with error" err.code="manifest unknown" http.request.method=HEAD http.request.remoteaddr="127.0.0.1:51472" http.request.uri=/v2/mirror/app/manifests/1 http.request.useragent=image-cloner http.response.status=404
time="x" level=info msg="response completed" http.request.method=PUT http.request.remoteaddr="127.0.0.1:51474" http.request.uri="/v2/mirror/blobs/uploads/abc?digest=sha256%3A00" http.request.useragent="containers/5.24.1 (github.com/containers/image)" http.response.status=201
"#;

    #[test]
    fn answered_and_refused_requests_are_read_with_their_fields() {
        let r: Vec<LoggedRequest> = logged_requests(LOG).collect();
        assert_eq!(r.len(), 3, "{r:?}");
        assert!(r[0].refused && r[0].method == "HEAD" && r[0].user_agent == "image-cloner");
        assert_eq!(r[0].uri, "/v2/mirror/app/manifests/1");
        assert!(!r[1].refused);
        assert_eq!(r[1].remote_addr, Some("127.0.0.1:51472"));
        assert_eq!(r[2].uri, "/v2/mirror/blobs/uploads/abc?digest=sha256%3A00");
        assert_eq!(
            r[2].user_agent,
            "containers/5.24.1 (github.com/containers/image)"
        );
    }
}
