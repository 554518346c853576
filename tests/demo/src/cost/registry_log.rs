//! Requests and connections to one registry, read from its own log: docker-registry at level
//! info writes one `response completed` line per request, naming the client's address *and
//! port*, the method, the URI and the user agent. Distinct client ports are distinct TCP
//! connections (the kernel hands out ephemeral ports in turn, so one is not reused within a
//! run). Nothing stands between the client and the registry: the figures cost the timed run
//! nothing but the log line.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read as _, Seek as _, SeekFrom};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};

/// Who sent a request, from its user agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Client {
    /// skopeo (containers/image).
    Skopeo,
    /// image-cloner's own manifest HEAD client.
    ImageCloner,
    Other,
}

impl Client {
    fn of(user_agent: &str) -> Client {
        if user_agent.starts_with("image-cloner") {
            Client::ImageCloner
        } else if user_agent.contains("containers/") || user_agent.contains("skopeo") {
            Client::Skopeo
        } else {
            Client::Other
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Client::Skopeo => "skopeo",
            Client::ImageCloner => "image-cloner",
            Client::Other => "other",
        }
    }
}

/// What one client did to the registry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Traffic {
    /// Distinct client `address:port`: TCP connections that carried at least one request.
    pub connections: BTreeSet<String>,
    /// Requests by `METHOD what` (`HEAD manifest`, `PUT blob upload`, ...).
    pub requests: BTreeMap<String, u64>,
}

impl Traffic {
    pub fn total_requests(&self) -> u64 {
        self.requests.values().sum()
    }
}

/// A registry's log from a point on.
#[derive(Debug, Clone)]
pub struct RequestLog {
    path: PathBuf,
    offset: u64,
}

impl RequestLog {
    /// From the log's current end: only what is logged after this counts.
    pub fn from_now(path: &Path) -> Result<RequestLog> {
        let offset = std::fs::metadata(path)
            .with_context(|| format!("the registry log {}", path.display()))?
            .len();
        Ok(RequestLog {
            path: path.to_owned(),
            offset,
        })
    }

    /// The requests logged since, by client.
    pub fn traffic(&self) -> Result<BTreeMap<Client, Traffic>> {
        let mut file = std::fs::File::open(&self.path)
            .with_context(|| format!("opening {}", self.path.display()))?;
        file.seek(SeekFrom::Start(self.offset))?;
        let mut text = String::new();
        file.read_to_string(&mut text)
            .with_context(|| format!("reading {}", self.path.display()))?;
        Ok(parse(&text))
    }
}

/// What a registry URI addresses, coarsely.
fn what(uri: &str) -> &'static str {
    let path = uri.split('?').next().unwrap_or(uri);
    if path == "/v2/" || path == "/v2" {
        "ping"
    } else if path.contains("/manifests/") {
        "manifest"
    } else if path.contains("/blobs/uploads") {
        "blob upload"
    } else if path.contains("/blobs/") {
        "blob"
    } else if path.contains("/tags/list") {
        "tag list"
    } else {
        "other"
    }
}

/// The `response completed` lines of a docker-registry log, by client (requests refused for
/// want of credentials are not counted: the bench's registries ask for none).
pub fn parse(text: &str) -> BTreeMap<Client, Traffic> {
    let mut by_client: BTreeMap<Client, Traffic> = BTreeMap::new();
    for r in testbed::logged_requests(text).filter(|r| !r.refused) {
        let Some(addr) = r.remote_addr else {
            continue;
        };
        let t = by_client.entry(Client::of(r.user_agent)).or_default();
        t.connections.insert(addr.to_owned());
        *t.requests
            .entry(format!("{} {}", r.method, what(r.uri)))
            .or_default() += 1;
    }
    by_client
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = r#"time="x" level=info msg="listening on 127.0.0.1:45871" go.version=go1.19.8
time="x" level=error msg="response completed with error" err.code="manifest unknown" http.request.host="127.0.0.1:45871" http.request.method=HEAD http.request.remoteaddr="127.0.0.1:51472" http.request.uri=/v2/mirror/manifests/1 http.request.useragent=image-cloner http.response.status=404
time="x" level=info msg="response completed" http.request.host="127.0.0.1:45871" http.request.method=GET http.request.remoteaddr="127.0.0.1:51474" http.request.uri=/v2/ http.request.useragent="containers/5.24.1 (github.com/containers/image)" http.response.status=200
time="x" level=info msg="response completed" http.request.host="127.0.0.1:45871" http.request.method=PUT http.request.remoteaddr="127.0.0.1:51474" http.request.uri="/v2/mirror/blobs/uploads/abc?digest=sha256%3A00" http.request.useragent="containers/5.24.1 (github.com/containers/image)" http.response.status=201
time="x" level=info msg="response completed" http.request.host="127.0.0.1:45871" http.request.method=HEAD http.request.remoteaddr="127.0.0.1:51472" http.request.uri=/v2/mirror/manifests/1 http.request.useragent=image-cloner http.response.status=200
"#;

    #[test]
    fn requests_and_connections_are_told_apart_by_client() {
        let t = parse(LOG);
        let cloner = &t[&Client::ImageCloner];
        assert_eq!(cloner.connections.len(), 1, "two HEADs on one connection");
        assert_eq!(cloner.requests["HEAD manifest"], 2, "errors count too");
        let skopeo = &t[&Client::Skopeo];
        assert_eq!(skopeo.connections.len(), 1);
        assert_eq!(skopeo.requests["GET ping"], 1);
        assert_eq!(skopeo.requests["PUT blob upload"], 1);
        assert_eq!(skopeo.total_requests(), 2);
        assert!(
            !t.contains_key(&Client::Other),
            "other lines are not requests"
        );
    }
}
