//! Cluster access: the client, from an explicit kubeconfig, `$KUBECONFIG`, `~/.kube/config` or
//! the in-cluster service account, in that order; and which workload kinds the server serves,
//! so that a kind it lacks (`batch/v1` CronJob before Kubernetes 1.21) is skipped with one
//! warning instead of a crash loop.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use kube::config::{InferConfigError, KubeConfigOptions, Kubeconfig, KubeconfigError};
use kube::{Client, Config};
use thiserror::Error;

use crate::reconcile::writer;
use crate::workload::Kind;

#[derive(Debug, Error)]
pub enum ClusterError {
    #[error("reading kubeconfig {path}: {source}")]
    ReadKubeconfig {
        path: PathBuf,
        #[source]
        source: KubeconfigError,
    },
    #[error("kubeconfig context {context:?}: {source}")]
    Context {
        context: String,
        #[source]
        source: KubeconfigError,
    },
    #[error(
        "no cluster configuration found ($KUBECONFIG, ~/.kube/config, in-cluster service account): {0}"
    )]
    Infer(#[source] InferConfigError),
    #[error("building the Kubernetes client: {0}")]
    Client(#[source] kube::Error),
    #[error("asking the API server which {group_version} resources it serves: {source}")]
    Discovery {
        group_version: &'static str,
        #[source]
        source: kube::Error,
    },
    /// One of the above, once the configuration named a server: which server, and where the
    /// configuration came from, so that an operator with several clusters knows which failed.
    #[error("API server {server} (from {kubeconfig}): {source}")]
    At {
        server: String,
        kubeconfig: String,
        #[source]
        source: Box<ClusterError>,
    },
}

impl ClusterError {
    /// This error, about the API server at `server` configured by `kubeconfig`.
    pub fn at(self, server: &str, kubeconfig: &str) -> ClusterError {
        ClusterError::At {
            server: server.to_owned(),
            kubeconfig: kubeconfig.to_owned(),
            source: Box::new(self),
        }
    }
}

/// The client configuration the way kubectl would find its cluster; every request carries
/// `user_agent`.
pub async fn config(
    kubeconfig: Option<&Path>,
    context: Option<&str>,
    user_agent: &str,
) -> Result<Config, ClusterError> {
    let options = KubeConfigOptions {
        context: context.map(str::to_owned),
        ..Default::default()
    };
    let mut config = match (kubeconfig, context) {
        (Some(path), _) => {
            let file = Kubeconfig::read_from(path).map_err(|e| ClusterError::ReadKubeconfig {
                path: path.to_owned(),
                source: e,
            })?;
            Config::from_custom_kubeconfig(file, &options)
                .await
                .map_err(|e| ClusterError::ReadKubeconfig {
                    path: path.to_owned(),
                    source: e,
                })?
        }
        (None, Some(context)) => {
            Config::from_kubeconfig(&options)
                .await
                .map_err(|e| ClusterError::Context {
                    context: context.to_owned(),
                    source: e,
                })?
        }
        (None, None) => Config::infer().await.map_err(ClusterError::Infer)?,
    };
    if let Ok(agent) = http::HeaderValue::from_str(user_agent) {
        config.headers.push((http::header::USER_AGENT, agent));
    }
    if let Some(host) = writer::host_header(&config.cluster_url) {
        config.headers.push((http::header::HOST, host));
    }
    Ok(config)
}

/// The kinds among `wanted` that the server serves, and a warning for each it does not.
pub async fn served_kinds(
    client: &Client,
    wanted: &[Kind],
) -> Result<(BTreeSet<Kind>, Vec<String>), ClusterError> {
    let mut served = BTreeSet::new();
    let mut warnings = Vec::new();
    let mut group_versions: Vec<&'static str> =
        wanted.iter().map(|k| k.facts().api_version).collect();
    group_versions.sort_unstable();
    group_versions.dedup();
    for gv in group_versions {
        let list = if gv == "v1" {
            client.list_core_api_resources("v1").await
        } else {
            client.list_api_group_resources(gv).await
        };
        let names: BTreeSet<String> = match list {
            Ok(list) => list.resources.into_iter().map(|r| r.name).collect(),
            // A group/version the server does not have at all answers 404.
            Err(kube::Error::Api(e)) if e.code == 404 => BTreeSet::new(),
            Err(e) => {
                return Err(ClusterError::Discovery {
                    group_version: gv,
                    source: e,
                });
            }
        };
        for kind in wanted.iter().filter(|k| k.facts().api_version == gv) {
            let resource = kind.facts().plural;
            if names.contains(resource) {
                served.insert(*kind);
            } else {
                warnings.push(format!(
                    "the API server does not serve {gv} {resource}: {kind} workloads are skipped (batch/v1 CronJob needs Kubernetes 1.21 or later)"
                ));
            }
        }
    }
    Ok((served, warnings))
}

/// The daemon's own namespace when it runs in a pod: `POD_NAMESPACE` (set by the manifests
/// through the downward API), else the service account's namespace file.
pub fn own_namespace(env_pod_namespace: Option<&str>) -> Option<String> {
    crate::settings::own_namespace(env_pod_namespace)
}
