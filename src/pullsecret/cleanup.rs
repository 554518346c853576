//! `restore`'s clean-up: once the `imagePullSecrets` entries image-cloner added are gone, its
//! Secret in a namespace is deleted — but only when no workload there still names it (a user
//! may have added the same entry to a workload of their own), and only if image-cloner made it.
//!
//! "A workload" is one image-cloner would reconcile: objects owned by another controller (a
//! Deployment's ReplicaSets, a Job's Pods) follow their owner and do not count, or an old
//! ReplicaSet kept for rollback would keep the Secret forever.

use std::collections::BTreeSet;

use futures::future::BoxFuture;
use kube::Client;

use crate::cluster::list;
use crate::pullsecret::error::PullSecretError;
use crate::pullsecret::secret::{Removed, SecretsApi};
use crate::reconcile::pull;
use crate::workload::{self, Kind, KindVisitor, WorkloadKind, dispatch};

/// What happened to a namespace's pull secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cleanup {
    Deleted,
    /// There was none (deleted already).
    Absent,
    /// Still named by these workloads (`Kind/name`): kept.
    StillUsed(Vec<String>),
}

/// Lists one kind in a namespace and collects the workloads naming the secret.
struct Users<'a> {
    client: &'a Client,
    namespace: &'a str,
    secret: &'a str,
    found: &'a mut Vec<String>,
}

impl<'a> KindVisitor for Users<'a> {
    type Output = BoxFuture<'a, Result<(), kube::Error>>;
    fn visit<K: WorkloadKind>(self) -> Self::Output {
        Box::pin(async move {
            let objects = list::list::<K>(self.client, Some(self.namespace), None).await?;
            for obj in objects.iter().filter(|o| !o.left_to_owner()) {
                let w = workload::view(obj, false);
                if pull::uses(&w, self.secret) {
                    self.found.push(format!("{}/{}", K::KIND, w.name));
                }
            }
            Ok(())
        })
    }
}

/// The workloads of `kinds` in `namespace` whose pod template names `secret`.
pub async fn users(
    client: &Client,
    kinds: &BTreeSet<Kind>,
    namespace: &str,
    secret: &str,
) -> Result<Vec<String>, PullSecretError> {
    let mut found = Vec::new();
    for kind in kinds {
        let visitor = Users {
            client,
            namespace,
            secret,
            found: &mut found,
        };
        dispatch(*kind, visitor)
            .await
            .map_err(|source| PullSecretError::ListUsers {
                namespace: namespace.to_owned(),
                name: secret.to_owned(),
                source,
            })?;
    }
    Ok(found)
}

/// Deletes image-cloner's Secret `secret` in `namespace` unless a workload still names it.
pub async fn remove_if_unused(
    api: &SecretsApi,
    client: &Client,
    kinds: &BTreeSet<Kind>,
    namespace: &str,
    secret: &str,
) -> Result<Cleanup, PullSecretError> {
    let users = users(client, kinds, namespace, secret).await?;
    if !users.is_empty() {
        return Ok(Cleanup::StillUsed(users));
    }
    Ok(match api.delete_if_ours(namespace, secret).await? {
        Removed::Deleted => Cleanup::Deleted,
        Removed::Absent => Cleanup::Absent,
    })
}
