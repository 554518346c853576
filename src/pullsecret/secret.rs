//! The provisioned Secret in one namespace, with get, create, patch and (for `restore`'s
//! clean-up) delete of that one name — never a list or a watch of Secrets, so the RBAC can
//! name it. Every call is bounded and counted like the workloads' calls.

use std::collections::BTreeMap;
use std::sync::Arc;

use base64::Engine as _;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Client;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use serde_json::json;

use crate::pullsecret::entry::SecretBody;
use crate::pullsecret::error::PullSecretError;
use crate::pullsecret::{MANAGED_BY_LABEL, MANAGED_BY_VALUE, REGISTRY_ANNOTATION};
use crate::reconcile::api::{ApiObserver, FIELD_MANAGER, Verb, WRITE_TIMEOUT, observed};

/// The Secret type a kubelet reads `imagePullSecrets` from.
pub const DOCKER_CONFIG_JSON: &str = "kubernetes.io/dockerconfigjson";
const KEY: &str = ".dockerconfigjson";

/// What [`SecretsApi::ensure`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    Created,
    Updated,
    Unchanged,
}

impl Written {
    /// A metric label.
    pub fn label(self) -> &'static str {
        match self {
            Written::Created => "created",
            Written::Updated => "updated",
            Written::Unchanged => "unchanged",
        }
    }
}

/// What [`SecretsApi::delete_if_ours`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Removed {
    Deleted,
    Absent,
}

/// The Secret calls, bounded and counted.
pub struct SecretsApi {
    client: Client,
    observer: Arc<dyn ApiObserver>,
}

fn conflict(e: &PullSecretError) -> bool {
    matches!(e, PullSecretError::Create { source, .. } if source.code() == Some(409))
}

fn ours(s: &Secret) -> bool {
    s.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(MANAGED_BY_LABEL))
        .is_some_and(|v| v == MANAGED_BY_VALUE)
}

impl SecretsApi {
    pub fn new(client: Client, observer: Arc<dyn ApiObserver>) -> Self {
        SecretsApi { client, observer }
    }

    fn api(&self, namespace: &str) -> Api<Secret> {
        Api::namespaced(self.client.clone(), namespace)
    }

    async fn get(&self, namespace: &str, name: &str) -> Result<Option<Secret>, PullSecretError> {
        let api = self.api(namespace);
        observed(
            self.observer.as_ref(),
            Verb::GetSecret,
            WRITE_TIMEOUT,
            api.get_opt(name),
        )
        .await
        .map_err(|source| PullSecretError::Get {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            source,
        })
    }

    /// Puts `body` in Secret `namespace/name`: created when absent, patched when it holds
    /// something else; a Secret of that name that image-cloner did not create is left alone.
    pub async fn ensure(
        &self,
        namespace: &str,
        name: &str,
        body: &SecretBody,
    ) -> Result<Written, PullSecretError> {
        if let Some(found) = self.get(namespace, name).await? {
            return self.update(namespace, name, body, &found).await;
        }
        match self.create(namespace, name, body).await {
            Ok(()) => Ok(Written::Created),
            // Created meanwhile (by a person, or another daemon): read it and update that one.
            Err(e @ PullSecretError::Create { .. }) if conflict(&e) => {
                match self.get(namespace, name).await? {
                    Some(found) => self.update(namespace, name, body, &found).await,
                    None => Err(e),
                }
            }
            Err(e) => Err(e),
        }
    }

    async fn create(
        &self,
        namespace: &str,
        name: &str,
        body: &SecretBody,
    ) -> Result<(), PullSecretError> {
        let secret = Secret {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                namespace: Some(namespace.to_owned()),
                labels: Some(BTreeMap::from([(
                    MANAGED_BY_LABEL.to_owned(),
                    MANAGED_BY_VALUE.to_owned(),
                )])),
                annotations: Some(BTreeMap::from([(
                    REGISTRY_ANNOTATION.to_owned(),
                    body.key.clone(),
                )])),
                ..ObjectMeta::default()
            },
            type_: Some(DOCKER_CONFIG_JSON.to_owned()),
            data: Some(BTreeMap::from([(
                KEY.to_owned(),
                ByteString(body.bytes().to_vec()),
            )])),
            ..Secret::default()
        };
        let params = PostParams {
            field_manager: Some(FIELD_MANAGER.to_owned()),
            ..PostParams::default()
        };
        let api = self.api(namespace);
        observed(
            self.observer.as_ref(),
            Verb::CreateSecret,
            WRITE_TIMEOUT,
            api.create(&params, &secret),
        )
        .await
        .map(|_| ())
        .map_err(|source| PullSecretError::Create {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            source,
        })
    }

    /// Patches `found` to hold `body`, unless it already does; the resourceVersion read is a
    /// precondition, so a concurrent change is never overwritten.
    async fn update(
        &self,
        namespace: &str,
        name: &str,
        body: &SecretBody,
        found: &Secret,
    ) -> Result<Written, PullSecretError> {
        if !ours(found) {
            return Err(PullSecretError::NotOurs {
                namespace: namespace.to_owned(),
                name: name.to_owned(),
            });
        }
        let type_ = found.type_.as_deref().unwrap_or_default();
        if type_ != DOCKER_CONFIG_JSON {
            return Err(PullSecretError::WrongType {
                namespace: namespace.to_owned(),
                name: name.to_owned(),
                found: type_.to_owned(),
            });
        }
        let held = found.data.as_ref().and_then(|d| d.get(KEY));
        if held.is_some_and(|b| b.0 == body.bytes()) {
            return Ok(Written::Unchanged);
        }
        let patch = json!({
            "metadata": {
                "resourceVersion": found.metadata.resource_version,
                "annotations": {REGISTRY_ANNOTATION: body.key},
            },
            "data": {KEY: base64::engine::general_purpose::STANDARD.encode(body.bytes())},
        });
        let params = PatchParams {
            field_manager: Some(FIELD_MANAGER.to_owned()),
            ..PatchParams::default()
        };
        let api = self.api(namespace);
        observed(
            self.observer.as_ref(),
            Verb::PatchSecret,
            WRITE_TIMEOUT,
            api.patch(name, &params, &Patch::Merge(&patch)),
        )
        .await
        .map(|_| Written::Updated)
        .map_err(|source| PullSecretError::Patch {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            source,
        })
    }

    /// Deletes Secret `namespace/name` if image-cloner created it (its uid and resourceVersion
    /// as read are preconditions: a Secret replaced meanwhile is not deleted).
    pub async fn delete_if_ours(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Removed, PullSecretError> {
        let Some(found) = self.get(namespace, name).await? else {
            return Ok(Removed::Absent);
        };
        if !ours(&found) {
            return Err(PullSecretError::NotOurs {
                namespace: namespace.to_owned(),
                name: name.to_owned(),
            });
        }
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                uid: found.metadata.uid.clone(),
                resource_version: found.metadata.resource_version.clone(),
            }),
            ..DeleteParams::default()
        };
        let api = self.api(namespace);
        match observed(
            self.observer.as_ref(),
            Verb::DeleteSecret,
            WRITE_TIMEOUT,
            api.delete(name, &params),
        )
        .await
        {
            Ok(_) => Ok(Removed::Deleted),
            Err(e) if e.code() == Some(404) => Ok(Removed::Absent),
            Err(source) => Err(PullSecretError::Delete {
                namespace: namespace.to_owned(),
                name: name.to_owned(),
                source,
            }),
        }
    }
}
