//! Pushing test images and reading manifests with the real `skopeo`.
//!
//! Every call passes `--policy` with a file it writes itself
//! (`{"default":[{"type":"insecureAcceptAnything"}]}`), so nothing depends on
//! the host's `/etc/containers/policy.json`. Commands are argument vectors,
//! never a shell.

use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use serde_json::Value;
use tempfile::TempDir;

use crate::error::{Result, TestbedError};
use crate::image::{BuiltImage, sha256_digest};
use crate::process::{self, program};
use crate::registry::{Credentials, Registry};

/// Longest a single skopeo command may run before it is killed.
pub const SKOPEO_TIMEOUT: Duration = Duration::from_secs(120);

/// Which credentials skopeo presents.
#[derive(Clone, Debug, Default)]
pub enum Creds {
    /// `--no-creds` (`--dest-no-creds` for copy): anonymous, whatever auth files exist.
    #[default]
    Anonymous,
    /// `--creds user:pass` (`--dest-creds` for copy).
    Basic(Credentials),
    /// `--authfile PATH` (`--dest-authfile` for copy), e.g. from
    /// [`write_docker_config`](crate::write_docker_config).
    AuthFile(PathBuf),
}

/// How skopeo reaches a registry.
#[derive(Clone, Debug, Default)]
pub struct Access {
    pub creds: Creds,
    /// `--tls-verify=<bool>`: `true` requires HTTPS with a verified
    /// certificate; `false` tries HTTPS without verification, then plain HTTP.
    pub tls_verify: bool,
    /// `--cert-dir` (`--dest-cert-dir`): a directory of `*.crt` CA files.
    pub cert_dir: Option<PathBuf>,
}

impl Registry {
    /// What it takes to reach this registry: its credentials, TLS verification
    /// with its CA when it serves TLS, otherwise `tls_verify = false` (plain HTTP).
    pub fn access(&self) -> Access {
        Access {
            creds: self
                .credentials()
                .cloned()
                .map_or(Creds::Anonymous, Creds::Basic),
            tls_verify: self.tls(),
            cert_dir: self.ca_dir().map(Path::to_path_buf),
        }
    }
}

/// Manifest format to convert to while copying (`--format`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Docker schema 1, signed (needs a registry with [`schema1`](crate::RegistryOptions::schema1)).
    V2s1,
    /// Docker schema 2.
    V2s2,
    /// OCI.
    Oci,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::V2s1 => "v2s1",
            Self::V2s2 => "v2s2",
            Self::Oci => "oci",
        }
    }
}

/// Options of [`push`].
#[derive(Clone, Copy, Debug, Default)]
pub struct PushOptions {
    /// `--format`: `None` keeps the built format (OCI), so digests are preserved.
    pub format: Option<Format>,
    /// `--all`: copy an index with every platform's manifest. Without it, skopeo
    /// copies only the manifest matching the host's platform out of an index.
    pub all: bool,
}

/// Pushes `image` to `registry` as `<repo>:<tag>` with `skopeo copy` and
/// returns the digest skopeo reports (`--digestfile`). Without format
/// conversion this is [`BuiltImage::digest`] (for an index, only with `all`).
pub fn push(
    image: &BuiltImage,
    registry: &Registry,
    repo: &str,
    tag: &str,
    opts: PushOptions,
) -> Result<String> {
    push_to(image, &registry.host(), &registry.access(), repo, tag, opts)
}

/// [`push`] to any registry by host, with explicit [`Access`].
pub fn push_to(
    image: &BuiltImage,
    host: &str,
    access: &Access,
    repo: &str,
    tag: &str,
    opts: PushOptions,
) -> Result<String> {
    let scratch = Scratch::new()?;
    let digest_file = scratch.dir.path().join("digest");
    let mut args = scratch.global_args();
    args.push("copy".into());
    if opts.all {
        args.push("--all".into());
    }
    if let Some(format) = opts.format {
        args.push("--format".into());
        args.push(format.as_str().into());
    }
    args.push("--digestfile".into());
    args.push(digest_file.clone().into());
    access_args(&mut args, access, "--dest-");
    args.push(image.oci_reference().into());
    args.push(format!("docker://{host}/{repo}:{tag}").into());

    let done = process::run(&skopeo(), &args, SKOPEO_TIMEOUT)?;
    let failed = |stderr_tail: String| TestbedError::Push {
        command: done.command.clone(),
        status: done.status_text(),
        stderr_tail,
    };
    if !done.success() {
        return Err(failed(done.stderr_tail()));
    }
    let digest = fs::read_to_string(&digest_file).map_err(|e| {
        failed(format!(
            "reading --digestfile {}: {e}",
            digest_file.display()
        ))
    })?;
    Ok(digest.trim().to_string())
}

/// The raw manifest of `reference` (`repo:tag` or `repo@sha256:…`) in
/// `registry`, via `skopeo inspect --raw` with the registry's own access.
pub fn inspect_raw(registry: &Registry, reference: &str) -> Result<Vec<u8>> {
    inspect_raw_at(&registry.host(), &registry.access(), reference)
}

/// [`inspect_raw`] against any registry by host, with explicit [`Access`].
pub fn inspect_raw_at(host: &str, access: &Access, reference: &str) -> Result<Vec<u8>> {
    let scratch = Scratch::new()?;
    let mut args = scratch.global_args();
    args.push("inspect".into());
    args.push("--raw".into());
    access_args(&mut args, access, "--");
    args.push(format!("docker://{host}/{reference}").into());
    let done = process::run(&skopeo(), &args, SKOPEO_TIMEOUT)?;
    if !done.success() {
        return Err(TestbedError::Inspect {
            command: done.command.clone(),
            status: done.status_text(),
            stderr_tail: done.stderr_tail(),
        });
    }
    Ok(done.stdout)
}

/// Deletes the manifest `reference` (`repo@sha256:…`; a tag is resolved to its digest by
/// skopeo first) from `registry` through the registry API (`DELETE
/// /v2/<repo>/manifests/<digest>`, which [`Registry`] enables), with `skopeo delete`. The
/// distribution registry removes the tags naming that digest with it: what a retention
/// policy or a clean-up does to a copy.
pub fn delete(registry: &Registry, reference: &str) -> Result<()> {
    let scratch = Scratch::new()?;
    let mut args = scratch.global_args();
    args.push("delete".into());
    access_args(&mut args, &registry.access(), "--");
    args.push(format!("docker://{}/{reference}", registry.host()).into());
    let done = process::run(&skopeo(), &args, SKOPEO_TIMEOUT)?;
    if !done.success() {
        return Err(TestbedError::Delete {
            command: done.command.clone(),
            status: done.status_text(),
            stderr_tail: done.stderr_tail(),
        });
    }
    Ok(())
}

/// The manifest digest of `reference` in `registry`, or `None` when the
/// registry answers "manifest unknown" (or "name unknown" for a repository it
/// has never seen). Other failures are errors.
pub fn digest_of(registry: &Registry, reference: &str) -> Result<Option<String>> {
    digest_of_at(&registry.host(), &registry.access(), reference)
}

/// [`digest_of`] against any registry by host, with explicit [`Access`].
pub fn digest_of_at(host: &str, access: &Access, reference: &str) -> Result<Option<String>> {
    match inspect_raw_at(host, access, reference) {
        Ok(raw) => Ok(Some(manifest_digest(&raw))),
        Err(e) if e.stderr_tail().is_some_and(is_manifest_unknown) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Whether skopeo's stderr says the manifest (or repository) does not exist.
pub fn is_manifest_unknown(stderr: &str) -> bool {
    stderr.contains("manifest unknown") || stderr.contains("name unknown")
}

/// The digest a registry gives a manifest: sha256 of the raw bytes, except for
/// signed schema 1 manifests, whose digest is that of the JWS payload (the
/// bytes without the `signatures` member, as libtrust defines it).
pub fn manifest_digest(raw: &[u8]) -> String {
    schema1_payload(raw)
        .map(|payload| sha256_digest(&payload))
        .unwrap_or_else(|| sha256_digest(raw))
}

/// For a signed schema 1 manifest: `raw[..formatLength] + base64url(formatTail)`
/// from the first signature's protected header.
fn schema1_payload(raw: &[u8]) -> Option<Vec<u8>> {
    let doc: Value = serde_json::from_slice(raw).ok()?;
    if doc.get("schemaVersion")?.as_u64()? != 1 {
        return None;
    }
    let protected = doc.get("signatures")?.get(0)?.get("protected")?.as_str()?;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let header: Value =
        serde_json::from_slice(&b64.decode(protected.trim_end_matches('=')).ok()?).ok()?;
    let length = usize::try_from(header.get("formatLength")?.as_u64()?).ok()?;
    let tail = b64
        .decode(header.get("formatTail")?.as_str()?.trim_end_matches('='))
        .ok()?;
    let mut payload = raw.get(..length)?.to_vec();
    payload.extend_from_slice(&tail);
    Some(payload)
}

fn skopeo() -> OsString {
    program("TESTBED_SKOPEO", "skopeo")
}

fn access_args(args: &mut Vec<OsString>, access: &Access, prefix: &str) {
    match &access.creds {
        Creds::Anonymous => args.push(format!("{prefix}no-creds").into()),
        Creds::Basic(c) => {
            args.push(format!("{prefix}creds").into());
            args.push(c.to_creds_arg().into());
        }
        Creds::AuthFile(path) => {
            args.push(format!("{prefix}authfile").into());
            args.push(path.clone().into());
        }
    }
    args.push(format!("{prefix}tls-verify={}", access.tls_verify).into());
    if let Some(dir) = &access.cert_dir {
        args.push(format!("{prefix}cert-dir").into());
        args.push(dir.clone().into());
    }
}

/// A temporary directory with the policy file (and room for a digest file).
struct Scratch {
    dir: TempDir,
}

impl Scratch {
    fn new() -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("testbed-skopeo-")
            .tempdir()
            .map_err(TestbedError::file(
                "creating directory",
                std::env::temp_dir(),
            ))?;
        let policy = dir.path().join("policy.json");
        fs::write(
            &policy,
            r#"{"default":[{"type":"insecureAcceptAnything"}]}"#,
        )
        .map_err(TestbedError::file("writing", &policy))?;
        Ok(Self { dir })
    }

    fn global_args(&self) -> Vec<OsString> {
        vec![
            "--policy".into(),
            self.dir.path().join("policy.json").into(),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_manifest_digest_is_sha256_of_bytes() {
        assert_eq!(manifest_digest(b"{}"), sha256_digest(b"{}"));
    }

    #[test]
    fn schema1_digest_strips_signatures() {
        // A payload and its signed form as libtrust produces it: the
        // "signatures" member replaces the final "\n}" of the payload.
        let payload = b"{\n   \"schemaVersion\": 1,\n   \"name\": \"x\"\n}";
        let format_length = payload.len() - 2;
        let tail = &payload[format_length..];
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let protected = b64.encode(format!(
            r#"{{"formatLength":{format_length},"formatTail":"{}","time":"2020-01-01T00:00:00Z"}}"#,
            b64.encode(tail)
        ));
        let signed = format!(
            "{},\n   \"signatures\": [{{\"header\": {{}}, \"signature\": \"x\", \"protected\": \"{protected}\"}}]\n}}",
            std::str::from_utf8(&payload[..format_length]).unwrap()
        );
        assert_eq!(manifest_digest(signed.as_bytes()), sha256_digest(payload));
        assert_ne!(
            manifest_digest(signed.as_bytes()),
            sha256_digest(signed.as_bytes())
        );
    }

    #[test]
    fn access_flags() {
        let mut args = Vec::new();
        access_args(
            &mut args,
            &Access {
                creds: Creds::Basic(Credentials::new("u", "p")),
                tls_verify: true,
                cert_dir: Some("/ca".into()),
            },
            "--dest-",
        );
        let args: Vec<String> = args.iter().map(|a| a.to_string_lossy().into()).collect();
        assert_eq!(
            args,
            [
                "--dest-creds",
                "u:p",
                "--dest-tls-verify=true",
                "--dest-cert-dir",
                "/ca"
            ]
        );
    }
}
