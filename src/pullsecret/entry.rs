//! Pure: which entry of the operator's docker config is the backup registry's, and the body of
//! the pull secret made from it — that entry alone, never another registry's.
//!
//! The key is kept as `docker login` wrote it (`quay.io`, `https://index.docker.io/v1/`,
//! `registry.example.com:5000`, or a `host/path` key as podman writes): the kubelet reads the
//! same keys. When several keys cover the backup registry, the most specific one (the longest
//! path that is a prefix of the backup location) wins, as it would for skopeo. Only a stored
//! user and password can be copied: an identity token or a credential helper cannot be used by
//! a kubelet from a Secret.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde::Deserialize;
use serde_json::json;
use sha2::Digest as _;

use crate::image::naming::BackupRegistry;

/// Why no pull secret can be made (never holds any part of a credential).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoEntry {
    /// Not JSON of the docker config format; where it stopped (serde's message can quote a
    /// value, so only the position is kept).
    Unreadable { line: usize, column: usize },
    /// No `auths` key covers the backup registry.
    Missing,
    /// The entry holds an identity token (or nothing a kubelet can use).
    NoPassword { key: String },
    /// The backup registry's credentials come from a credential helper.
    Helper { helper: String },
}

impl std::fmt::Display for NoEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NoEntry::Unreadable { line, column } => write!(
                f,
                "it is not JSON of the docker config.json format (at line {line}, column {column})"
            ),
            NoEntry::Missing => f.write_str("it has no `auths` entry for the backup registry"),
            NoEntry::NoPassword { key } => write!(
                f,
                "its entry {key:?} holds no user and password (an identity token cannot be used by a kubelet)"
            ),
            NoEntry::Helper { helper } => write!(
                f,
                "the backup registry's credentials come from docker-credential-{helper}, which cannot be copied into a Secret"
            ),
        }
    }
}

#[derive(Deserialize)]
struct RawConfig {
    #[serde(default)]
    auths: BTreeMap<String, RawEntry>,
    #[serde(default, rename = "credHelpers")]
    cred_helpers: BTreeMap<String, String>,
    #[serde(default, rename = "credsStore")]
    creds_store: Option<String>,
}

#[derive(Deserialize)]
struct RawEntry {
    auth: Option<String>,
    username: Option<String>,
    password: Option<String>,
}

/// The `.dockerconfigjson` of a pull secret: one entry, the backup registry's.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretBody {
    /// The docker config key the entry is stored under (a host, never a credential).
    pub key: String,
    bytes: Vec<u8>,
    fingerprint: [u8; 32],
}

impl std::fmt::Debug for SecretBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretBody({}: ***)", self.key)
    }
}

impl SecretBody {
    /// The Secret's `.dockerconfigjson` value.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Whether `other` holds the same credentials (compared by hash: never logged or shown).
    pub fn same_as(&self, other: &SecretBody) -> bool {
        self.fingerprint == other.fingerprint
    }
}

/// A docker config key as `host[/path]`: scheme, trailing slashes and the `/v1`, `/v2` API
/// suffixes dropped, the host lowercased, Docker Hub's hosts as `docker.io`.
fn normalize_key(key: &str) -> (String, String) {
    let k = key
        .trim()
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .trim_end_matches('/');
    let k = k
        .strip_suffix("/v1")
        .or_else(|| k.strip_suffix("/v2"))
        .unwrap_or(k);
    let (host, path) = k.split_once('/').unwrap_or((k, ""));
    let host = match host.to_ascii_lowercase().as_str() {
        "index.docker.io" | "registry-1.docker.io" => "docker.io".to_owned(),
        h => h.to_owned(),
    };
    (host, path.trim_matches('/').to_owned())
}

/// How specific `key` is for `backup`: the length of its path when it covers the backup
/// location, `None` when it does not.
fn covers(key: &str, backup: &BackupRegistry) -> Option<usize> {
    let (host, path) = normalize_key(key);
    if host != backup.domain() {
        return None;
    }
    if path.is_empty() {
        return Some(0);
    }
    let location = backup.to_string();
    let backup_path = location
        .strip_prefix(backup.domain())
        .unwrap_or("")
        .trim_start_matches('/');
    (backup_path == path
        || backup_path
            .strip_prefix(path.as_str())
            .is_some_and(|r| r.starts_with('/')))
    .then_some(path.len())
}

/// The pull secret body for `backup` from the docker config's bytes.
pub fn backup_entry(config: &[u8], backup: &BackupRegistry) -> Result<SecretBody, NoEntry> {
    let raw: RawConfig = serde_json::from_slice(config).map_err(|e| NoEntry::Unreadable {
        line: e.line(),
        column: e.column(),
    })?;
    let best = raw
        .auths
        .iter()
        .filter_map(|(key, entry)| Some((covers(key, backup)?, key, entry)))
        .max_by_key(|(specificity, _, _)| *specificity);
    let Some((_, key, entry)) = best else {
        let helper = raw
            .cred_helpers
            .iter()
            .find(|(k, _)| covers(k, backup).is_some())
            .map(|(_, h)| h.clone())
            .or(raw.creds_store);
        return Err(match helper {
            Some(helper) => NoEntry::Helper { helper },
            None => NoEntry::Missing,
        });
    };
    let auth = match (&entry.auth, &entry.username, &entry.password) {
        (Some(auth), _, _) if usable(auth) => auth.trim().to_owned(),
        (_, Some(user), Some(password)) if !user.is_empty() => {
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
        }
        _ => return Err(NoEntry::NoPassword { key: key.clone() }),
    };
    let bytes = json!({"auths": {key.as_str(): {"auth": auth}}})
        .to_string()
        .into_bytes();
    Ok(SecretBody {
        key: key.clone(),
        fingerprint: sha2::Sha256::digest(&bytes).into(),
        bytes,
    })
}

/// base64 of `user:password`, as `docker login` writes it.
fn usable(auth: &str) -> bool {
    base64::engine::general_purpose::STANDARD
        .decode(auth.trim())
        .is_ok_and(|d| d.iter().position(|b| *b == b':').is_some_and(|i| i > 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "pw-never-shown-4711";

    fn backup(s: &str) -> BackupRegistry {
        BackupRegistry::parse(s).expect("a backup location")
    }

    fn auth(user: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{SECRET}"))
    }

    fn only_auths(body: &SecretBody) -> serde_json::Value {
        let v: serde_json::Value = serde_json::from_slice(body.bytes()).expect("JSON");
        v["auths"].clone()
    }

    #[test]
    fn only_the_backup_registrys_entry_is_kept() {
        let config = json!({"auths": {
            "quay.io": {"auth": auth("backup-robot")},
            "ghcr.io": {"auth": auth("someone-else")},
            "registry.example.com:5000": {"auth": auth("third")}
        }, "credHelpers": {"gcr.io": "gcloud"}})
        .to_string();
        let body = backup_entry(config.as_bytes(), &backup("quay.io/my-org")).expect("an entry");
        assert_eq!(body.key, "quay.io");
        let auths = only_auths(&body);
        assert_eq!(auths.as_object().map(|m| m.len()), Some(1), "{auths}");
        assert_eq!(auths["quay.io"]["auth"], json!(auth("backup-robot")));
        assert!(!format!("{body:?}").contains(SECRET));
        assert!(!format!("{body:?}").contains(&auth("backup-robot")));
    }

    #[test]
    fn keys_are_matched_the_way_docker_login_and_podman_write_them() {
        let pick = |keys: &[&str], location: &str| {
            let auths: serde_json::Map<String, serde_json::Value> = keys
                .iter()
                .map(|k| ((*k).to_owned(), json!({"auth": auth(k)})))
                .collect();
            let config = json!({ "auths": auths }).to_string();
            backup_entry(config.as_bytes(), &backup(location)).map(|b| b.key)
        };
        assert_eq!(
            pick(&["https://index.docker.io/v1/"], "docker.io/acme"),
            Ok("https://index.docker.io/v1/".to_owned())
        );
        assert_eq!(
            pick(
                &["https://Registry.Example.com:5000"],
                "registry.example.com:5000/b"
            ),
            Ok("https://Registry.Example.com:5000".to_owned())
        );
        // The most specific key covering the backup location wins; a sibling path never does.
        assert_eq!(
            pick(
                &["quay.io", "quay.io/acme", "quay.io/acme-other"],
                "quay.io/acme/mirror"
            ),
            Ok("quay.io/acme".to_owned())
        );
        assert_eq!(
            pick(&["quay.io/acme-other"], "quay.io/acme"),
            Err(NoEntry::Missing)
        );
        assert_eq!(pick(&["ghcr.io"], "quay.io/acme"), Err(NoEntry::Missing));
    }

    #[test]
    fn a_user_and_password_become_an_auth() {
        let config =
            json!({"auths": {"quay.io": {"username": "robot", "password": SECRET}}}).to_string();
        let body = backup_entry(config.as_bytes(), &backup("quay.io/x")).expect("an entry");
        assert_eq!(only_auths(&body)["quay.io"], json!({"auth": auth("robot")}));
    }

    #[test]
    fn what_cannot_be_copied_is_said_without_the_secret() {
        let helper = json!({"auths": {}, "credHelpers": {"123.dkr.ecr.us-east-1.amazonaws.com": "ecr-login"}}).to_string();
        let e = backup_entry(
            helper.as_bytes(),
            &backup("123.dkr.ecr.us-east-1.amazonaws.com/mirror"),
        )
        .expect_err("a helper");
        assert_eq!(
            e,
            NoEntry::Helper {
                helper: "ecr-login".into()
            }
        );
        let token = json!({"auths": {"quay.io": {"identitytoken": SECRET}}}).to_string();
        let e = backup_entry(token.as_bytes(), &backup("quay.io/x")).expect_err("a token");
        assert!(e.to_string().contains("identity token"), "{e}");
        let broken = format!("{{\"auths\": \"{SECRET}\"}}");
        let e = backup_entry(broken.as_bytes(), &backup("quay.io/x")).expect_err("broken");
        assert!(!e.to_string().contains(SECRET), "{e}");
        assert!(matches!(e, NoEntry::Unreadable { line: 1, .. }), "{e:?}");
    }

    #[test]
    fn rotated_credentials_are_a_different_body() {
        let body = |user: &str| {
            let config = json!({"auths": {"quay.io": {"auth": auth(user)}}}).to_string();
            backup_entry(config.as_bytes(), &backup("quay.io/x")).expect("an entry")
        };
        assert!(body("a").same_as(&body("a")));
        assert!(!body("a").same_as(&body("b")));
    }
}
