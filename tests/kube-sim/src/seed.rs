//! `--seed DIR`: every Kubernetes object in the YAML (and JSON) files of a directory, loaded
//! before the server listens, namespaces first.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

use crate::store::{Store, resource_of};

#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    #[error("reading the seed directory {path}: {source}")]
    ReadDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("reading {path}: {source}")]
    ReadFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: document {index} is not valid YAML: {source}")]
    Parse {
        path: PathBuf,
        index: usize,
        source: serde_yaml_ng::Error,
    },
    #[error("{path}: document {index}: {message}")]
    Rejected {
        path: PathBuf,
        index: usize,
        message: String,
    },
}

/// Loads every document; returns how many objects were created.
pub fn load(store: &Store, dir: &Path) -> Result<usize, SeedError> {
    let read_dir = |source| SeedError::ReadDir {
        path: dir.to_owned(),
        source,
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(read_dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension()
                .is_some_and(|e| e == "yaml" || e == "yml" || e == "json")
        })
        .collect();
    files.sort();
    let mut docs = Vec::new();
    for path in files {
        let text = std::fs::read_to_string(&path).map_err(|source| SeedError::ReadFile {
            path: path.clone(),
            source,
        })?;
        for (index, doc) in serde_yaml_ng::Deserializer::from_str(&text).enumerate() {
            let v = Value::deserialize(doc).map_err(|source| SeedError::Parse {
                path: path.clone(),
                index: index + 1,
                source,
            })?;
            if v.is_null() {
                continue;
            }
            // A List (kubectl get -o yaml) holds its objects in items.
            if v["kind"].as_str().is_some_and(|k| k.ends_with("List")) {
                for item in v["items"].as_array().cloned().unwrap_or_default() {
                    docs.push((path.clone(), index + 1, item));
                }
            } else {
                docs.push((path.clone(), index + 1, v));
            }
        }
    }
    docs.sort_by_key(|(_, _, v)| v["kind"] != "Namespace");
    let mut created = 0;
    for (path, index, obj) in docs {
        let rejected = |message: String| SeedError::Rejected {
            path: path.clone(),
            index,
            message,
        };
        let r = resource_of(&obj).map_err(|e| rejected(e.message().to_owned()))?;
        let ns = if r.namespaced {
            obj["metadata"]["namespace"]
                .as_str()
                .unwrap_or("default")
                .to_owned()
        } else {
            String::new()
        };
        match store.create(r, &ns, obj, false) {
            Ok(_) => created += 1,
            // The system namespaces exist already; naming them in a seed is harmless.
            Err(e) if e.reason() == "AlreadyExists" && r.kind == "Namespace" => {}
            Err(e) => return Err(rejected(e.message().to_owned())),
        }
    }
    Ok(created)
}
