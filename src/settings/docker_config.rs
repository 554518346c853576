//! The operator's docker `config.json`: checked at start-up so that a broken file is reported
//! once, by name, instead of as a confusing skopeo failure on every copy.
//!
//! The file itself is handed to skopeo by path; this module reads it to validate it and to list
//! which registries it holds credentials for. The one exception, [`credentials_for_head`],
//! hands the `auth` values to the manifest HEAD client, which only ever puts them in an
//! Authorization header; nothing here logs or prints one.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde::Deserialize;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum DockerConfigError {
    #[error("cannot read docker config {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("docker config {path} is not valid JSON of the docker config.json format: {source}")]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error(
        "docker config {path}: the entry for {registry:?} has an `auth` that is not base64 of \"user:password\" (run `docker login {registry}` again)"
    )]
    InvalidAuth { path: PathBuf, registry: String },
}

#[derive(Deserialize)]
struct RawConfig {
    #[serde(default)]
    auths: BTreeMap<String, RawAuth>,
    #[serde(default, rename = "credHelpers")]
    cred_helpers: BTreeMap<String, String>,
    #[serde(default, rename = "credsStore")]
    creds_store: Option<String>,
}

#[derive(Deserialize)]
struct RawAuth {
    auth: Option<String>,
    #[serde(rename = "identitytoken")]
    identity_token: Option<String>,
}

/// What a docker config provides, without the secrets: safe to print and log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DockerConfig {
    pub path: PathBuf,
    /// Registries with a stored credential (`auths` entries).
    pub registries: Vec<String>,
    /// Registries served by a credential helper, and the default helper if any.
    pub helpers: Vec<String>,
}

impl DockerConfig {
    /// Reads and checks the file; the path kept is absolute, since it goes on skopeo's command
    /// line (`--authfile`), where a relative `-config.json` would look like a flag.
    pub fn load(path: &Path) -> Result<Self, DockerConfigError> {
        let path = &std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
        let bytes = std::fs::read(path).map_err(|source| DockerConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(path, &bytes)
    }

    fn parse(path: &Path, bytes: &[u8]) -> Result<Self, DockerConfigError> {
        let raw: RawConfig =
            serde_json::from_slice(bytes).map_err(|source| DockerConfigError::Parse {
                path: path.to_owned(),
                source,
            })?;
        for (registry, entry) in &raw.auths {
            if let Some(auth) = &entry.auth {
                let decoded = base64::engine::general_purpose::STANDARD
                    .decode(auth.trim())
                    .ok();
                let valid = decoded.is_some_and(|d| d.contains(&b':'));
                if !valid && entry.identity_token.is_none() {
                    return Err(DockerConfigError::InvalidAuth {
                        path: path.to_owned(),
                        registry: registry.clone(),
                    });
                }
            }
        }
        let mut helpers: Vec<String> = raw
            .cred_helpers
            .iter()
            .map(|(r, h)| format!("{r} (docker-credential-{h})"))
            .collect();
        if let Some(store) = raw.creds_store {
            helpers.push(format!("* (docker-credential-{store})"));
        }
        Ok(DockerConfig {
            path: path.to_owned(),
            registries: raw.auths.into_keys().collect(),
            helpers,
        })
    }
}

/// What the manifest HEAD client may use: `(registry key, base64 "user:pass")` for the `auths`
/// entries, and the registries whose credentials it cannot produce (credential helpers, a
/// default `credsStore` as `*`, identity tokens), for which it defers to skopeo.
pub fn credentials_for_head(path: &Path) -> (Vec<(String, String)>, Vec<String>) {
    let Ok(bytes) = std::fs::read(path) else {
        return (Vec::new(), vec!["*".to_owned()]);
    };
    let Ok(raw) = serde_json::from_slice::<RawConfig>(&bytes) else {
        return (Vec::new(), vec!["*".to_owned()]);
    };
    let mut basic = Vec::new();
    let mut deferred: Vec<String> = raw.cred_helpers.into_keys().collect();
    if raw.creds_store.is_some() {
        deferred.push("*".to_owned());
    }
    for (registry, entry) in raw.auths {
        match (entry.auth, entry.identity_token) {
            (_, Some(_)) => deferred.push(registry),
            (Some(auth), None) => basic.push((registry, auth.trim().to_owned())),
            (None, None) => {}
        }
    }
    (basic, deferred)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<DockerConfig, DockerConfigError> {
        DockerConfig::parse(Path::new("/x/config.json"), s.as_bytes())
    }

    #[test]
    fn lists_registries_without_secrets() {
        let c = parse(r#"{"auths":{"quay.io":{"auth":"dXNlcjpzM2NyZXQ="},"ghcr.io":{"identitytoken":"t"}},"credHelpers":{"123.dkr.ecr.us-east-1.amazonaws.com":"ecr-login"}}"#).unwrap();
        assert_eq!(c.registries, ["ghcr.io", "quay.io"]);
        assert_eq!(
            c.helpers,
            ["123.dkr.ecr.us-east-1.amazonaws.com (docker-credential-ecr-login)"]
        );
        assert!(
            !format!("{c:?}").contains("s3cret") && !format!("{c:?}").contains("dXNlcjpzM2NyZXQ=")
        );
    }

    #[test]
    fn empty_object_is_anonymous() {
        assert!(parse("{}").unwrap().registries.is_empty());
    }

    #[test]
    fn broken_files_name_the_file_and_entry() {
        let e = parse("{bad").unwrap_err().to_string();
        assert!(
            e.contains("/x/config.json") && e.contains("not valid JSON"),
            "{e}"
        );
        let e = parse(r#"{"auths":{"quay.io":{"auth":"not base64!"}}}"#)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("\"quay.io\"") && e.contains("docker login quay.io"),
            "{e}"
        );
        // The secret itself is never echoed.
        let e = parse(r#"{"auths":{"quay.io":{"auth":"bm9jb2xvbg=="}}}"#)
            .unwrap_err()
            .to_string();
        assert!(!e.contains("bm9jb2xvbg"), "{e}");
    }

    #[test]
    fn a_relative_path_is_kept_absolute() {
        let file = tempfile::Builder::new()
            .prefix("-config")
            .tempfile_in(".")
            .expect("a file in the working directory");
        std::fs::write(file.path(), "{}").expect("write it");
        let name = file.path().file_name().expect("a name");
        let c = DockerConfig::load(Path::new(name)).expect("a valid config");
        assert!(c.path.is_absolute(), "{}", c.path.display());
        assert_eq!(c.path.file_name(), Some(name));
    }

    #[test]
    fn missing_file_is_a_read_error() {
        let e = DockerConfig::load(Path::new("/nonexistent/config.json")).unwrap_err();
        assert!(matches!(e, DockerConfigError::Read { .. }));
        assert!(e.to_string().contains("/nonexistent/config.json"));
    }
}
