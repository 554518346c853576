//! The questions the suite asks over plain HTTP: the daemon's `/metrics`, and whether a
//! registry holds a reference (`testbed::http` makes the requests).

/// What a manifest request may accept: indexes and manifests, OCI and Docker.
const MANIFEST_TYPES: &str = "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";

pub use testbed::http::request;

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
