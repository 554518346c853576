//! Patched pods can pull their copies: the pull secret provisioned in each namespace before its
//! first patch, and the check that the nodes could pull the copies at all.
//!
//! [`PullSecrets`] is the reconcile's [`PullGate`]. Before a namespace's patch it answers how
//! that namespace's pods will pull from the backup registry, in this order:
//!
//! 1. `pull_secret` set and the docker config holds a user and password for the backup
//!    registry → Secret `pull_secret` (`kubernetes.io/dockerconfigjson`, that one entry,
//!    labelled `app.kubernetes.io/managed-by: image-cloner`) is created or updated in the
//!    namespace ([`secret`]), and the patch adds it to the pod template's `imagePullSecrets`;
//! 2. `pull_check = off` → the operator says the nodes have their own credentials;
//! 3. the backup registry answers an anonymous pull of the copy ([`check`]) → nothing needed;
//! 4. otherwise the workload is copied, not patched (`BackupNotPullable`).
//!
//! The docker config is read again every [`refresh::INTERVAL`] (a mounted Secret changes by a
//! symlink swap, a file on a bastion host by an edit); when the backup registry's entry
//! changed, every Secret this daemon provisioned or saw in use is updated ([`refresh`]).
//! Nothing here logs, prints or puts in an Event any part of a credential: Secrets are named
//! by namespace, name and registry host.

pub mod check;
pub mod cleanup;
pub mod entry;
pub mod error;
pub mod refresh;
pub mod secret;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use kube::Client;

use crate::image::naming::BackupRegistry;
use crate::reconcile::api::ApiObserver;
use crate::reconcile::context::ReconcileObserver;
use crate::reconcile::pull::{FIX, PullAccess, PullGate};
use crate::registry::manifest_head::ManifestHead;

pub use self::check::{AnonymousCheck, Verdict};
pub use self::entry::SecretBody;
pub use self::error::PullSecretError;
pub use self::secret::{SecretsApi, Written};

/// The label on every Secret image-cloner creates; one without it is never changed.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
pub const MANAGED_BY_VALUE: &str = "image-cloner";
/// Names the registry host the Secret holds credentials for (never a credential).
pub const REGISTRY_ANNOTATION: &str = "image-cloner.io/registry";

/// The repository asked about at start-up, before any copy is known.
const PROBE_REPOSITORY: &str = "image-cloner-pull-check";

/// A provisioned Secret is read again at a namespace's next patch after this long, so one
/// deleted by hand comes back.
const RECHECK: Duration = Duration::from_secs(300);

/// What the settings say about pulling.
#[derive(Debug, Clone)]
pub struct PullOptions {
    /// `pull_secret`; `None`: none is provisioned.
    pub secret: Option<String>,
    /// `pull_check`.
    pub check: bool,
    /// The docker config the credentials come from.
    pub docker_config: Option<PathBuf>,
    pub backup: BackupRegistry,
}

/// What this daemon knows of the Secret in one namespace.
#[derive(Debug, Default)]
struct Provisioned {
    /// The credentials it holds, when this daemon wrote or read them.
    body: Option<SecretBody>,
    at: Option<Instant>,
    /// The Secret of that name is not ours: never touched.
    not_ours: bool,
}

/// The pull gate of a running daemon (or `run --once`).
pub struct PullSecrets {
    options: PullOptions,
    api: SecretsApi,
    anonymous: AnonymousCheck,
    observer: Arc<dyn ReconcileObserver>,
    /// The backup registry's credentials as last read from the docker config.
    credentials: Mutex<Result<SecretBody, String>>,
    /// The docker config became unusable and that was said.
    unreadable_said: AtomicBool,
    namespaces:
        Mutex<HashMap<String, Arc<tokio::sync::Mutex<Provisioned>>, foldhash::fast::RandomState>>,
}

impl PullSecrets {
    /// `anonymous`: a manifest HEAD client without credentials.
    pub fn new(
        options: PullOptions,
        client: Client,
        anonymous: Option<ManifestHead>,
        api_observer: Arc<dyn ApiObserver>,
        observer: Arc<dyn ReconcileObserver>,
    ) -> Self {
        let credentials = refresh::read(&options).map_err(|e| e.to_string());
        PullSecrets {
            options,
            api: SecretsApi::new(client, api_observer),
            anonymous: AnonymousCheck::new(anonymous),
            observer,
            credentials: Mutex::new(credentials),
            unreadable_said: AtomicBool::new(false),
            namespaces: Mutex::default(),
        }
    }

    pub fn options(&self) -> &PullOptions {
        &self.options
    }

    fn credentials(&self) -> Result<SecretBody, String> {
        self.credentials
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn slot(&self, namespace: &str) -> Arc<tokio::sync::Mutex<Provisioned>> {
        let mut map = self
            .namespaces
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        Arc::clone(map.entry(namespace.to_owned()).or_default())
    }

    /// What to warn the operator of at start-up about how pods will pull: a pull secret that
    /// cannot be provisioned, and (without one, `pull_check` on) a backup registry that refuses
    /// anonymous requests — asked about a probe repository, since no copy is known yet (each
    /// copy is still checked itself before its first patch).
    pub async fn startup_warnings(&self) -> Vec<String> {
        let backup = &self.options.backup;
        let mut out = Vec::new();
        let credentials = self.credentials();
        if let (Some(name), Err(why)) = (&self.options.secret, &credentials) {
            out.push(format!(
                "pull_secret = {name}, but no pull secret can be provisioned: {why}"
            ));
        }
        if (self.options.secret.is_some() && credentials.is_ok()) || !self.options.check {
            return out;
        }
        let probe = format!("{backup}/{PROBE_REPOSITORY}:latest");
        if let Verdict::Refused(why) = self.anonymous.probe(&probe).await {
            out.push(format!(
                "no pull secret is provisioned and {why}: workloads are copied, not patched, unless their copies answer anonymous pulls (Event BackupNotPullable); to fix it, {FIX}"
            ));
        }
        out
    }

    /// Puts the backup registry's credentials in Secret `name` of `namespace`, unless this
    /// daemon did so recently with the same credentials.
    async fn provision(
        &self,
        namespace: &str,
        name: &str,
        body: &SecretBody,
    ) -> Result<(), PullSecretError> {
        let slot = self.slot(namespace);
        let mut state = slot.lock().await;
        let fresh = state.at.is_some_and(|at| at.elapsed() < RECHECK);
        if fresh && state.not_ours {
            return Err(PullSecretError::NotOurs {
                namespace: namespace.to_owned(),
                name: name.to_owned(),
            });
        }
        if fresh && state.body.as_ref().is_some_and(|b| b.same_as(body)) {
            return Ok(());
        }
        match self.api.ensure(namespace, name, body).await {
            Ok(written) => {
                if written != Written::Unchanged {
                    self.observer.pull_secret_written(written.label());
                    tracing::info!(
                        namespace,
                        secret = name,
                        registry = body.key,
                        "pull secret {}",
                        written.label()
                    );
                }
                *state = Provisioned {
                    body: Some(body.clone()),
                    at: Some(Instant::now()),
                    not_ours: false,
                };
                Ok(())
            }
            Err(e) => {
                state.not_ours = matches!(e, PullSecretError::NotOurs { .. });
                state.at = Some(Instant::now());
                state.body = None;
                Err(e)
            }
        }
    }

    /// Step 1 of the order above: the pull secret, when one can be provisioned.
    async fn provisioned(&self, namespace: &str) -> Result<Option<String>, PullSecretError> {
        let Some(name) = &self.options.secret else {
            return Ok(None);
        };
        let Ok(body) = self.credentials() else {
            return Ok(None);
        };
        self.provision(namespace, name, &body).await?;
        Ok(Some(name.clone()))
    }

    async fn decide(&self, namespace: &str, copy: &str) -> PullAccess {
        // Boxed, and only with a pull secret to provision: inline, the provisioning's API
        // calls sized every decision (see `check`).
        let provisioned = match self.options.secret {
            Some(_) => Box::pin(self.provisioned(namespace)).await,
            None => Ok(None),
        };
        let failed = match provisioned {
            Ok(Some(name)) => return PullAccess::Secret(name),
            Ok(None) => None,
            Err(e) => {
                tracing::warn!(namespace, error = %e, "pull secret not provisioned");
                Some(e)
            }
        };
        if !self.options.check {
            return PullAccess::NodeCredentials;
        }
        match self.anonymous.check(copy).await {
            Verdict::Pullable => PullAccess::Anonymous,
            Verdict::Refused(_) if failed.as_ref().is_some_and(|e| e.is_transient()) => {
                PullAccess::Unknown {
                    error: failed.map(|e| e.to_string()).unwrap_or_default(),
                }
            }
            Verdict::Refused(why) => PullAccess::NotPullable {
                why: match failed {
                    Some(e) => format!("{why}, and the pull secret could not be provisioned: {e}"),
                    None => format!("{why}, and no pull secret is provisioned"),
                },
            },
            Verdict::Unknown(error) => PullAccess::Unknown {
                error: format!(
                    "asking {} for an anonymous pull: {error}",
                    self.options.backup
                ),
            },
        }
    }
}

impl PullGate for PullSecrets {
    fn access<'a>(&'a self, namespace: &'a str, copy: &'a str) -> BoxFuture<'a, PullAccess> {
        Box::pin(self.decide(namespace, copy))
    }

    fn provisions(&self) -> bool {
        self.options.secret.is_some()
    }

    fn in_use(&self, namespace: &str, secrets: &[String]) {
        let Some(name) = &self.options.secret else {
            return;
        };
        if secrets.iter().any(|s| s == name) {
            // Known from now on: the refresh keeps it current (an empty slot is read at once).
            let _ = self.slot(namespace);
        }
    }
}
