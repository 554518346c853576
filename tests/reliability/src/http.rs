//! Plain HTTP/1.1 over loopback, enough for the daemon's `/metrics` and a registry's manifest
//! HEAD: one request per connection, `Connection: close`.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::time::Duration;

/// What a manifest request may accept: indexes and manifests, OCI and Docker.
const MANIFEST_TYPES: &str = "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";

/// One request: `(status, head, body)`.
pub fn request(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> std::io::Result<(u16, String, String)> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(20)))?;
    let mut text = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        text.push_str(&format!("{k}: {v}\r\n"));
    }
    text.push_str("\r\n");
    stream.write_all(text.as_bytes())?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let raw = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_owned()
    };
    Ok((status, head.to_owned(), body))
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// `GET path`: `(status, body)`.
pub fn get(addr: &str, path: &str) -> std::io::Result<(u16, String)> {
    request(addr, "GET", path, &[]).map(|(s, _, b)| (s, b))
}

/// Whether `repo` at `reference` (a tag or a digest) exists in the registry at `addr`, and its
/// digest (`Docker-Content-Digest`).
pub fn manifest_digest(addr: &str, repo: &str, reference: &str) -> Option<String> {
    let path = format!("/v2/{repo}/manifests/{reference}");
    let (status, head, _) = request(addr, "HEAD", &path, &[("Accept", MANIFEST_TYPES)]).ok()?;
    if status != 200 {
        return None;
    }
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case("docker-content-digest")
            .then(|| v.trim().to_owned())
    })
}

/// Whether a reference as written into a workload (`host/repo:tag@digest` or `host/repo:tag`)
/// resolves in the registry at `addr`: at its pinned digest when it has one (and its tag to
/// that same digest), else at its tag.
pub fn resolves(addr: &str, reference: &str) -> bool {
    let Some((_, rest)) = reference.split_once('/') else {
        return false;
    };
    let (name_tag, digest) = match rest.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (rest, None),
    };
    let Some((repo, tag)) = name_tag.rsplit_once(':') else {
        return false;
    };
    let by_tag = manifest_digest(addr, repo, tag);
    match digest {
        Some(d) => {
            manifest_digest(addr, repo, d).as_deref() == Some(d) && by_tag.as_deref() == Some(d)
        }
        None => by_tag.is_some(),
    }
}
