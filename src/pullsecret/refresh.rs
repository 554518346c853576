//! Keeping the provisioned Secrets current: the docker config is read again every
//! [`INTERVAL`], by path (a Secret mounted into the pod changes by a symlink swap, which a
//! file watch on the path would miss; a read follows it), and when the backup registry's
//! entry changed, every Secret this daemon provisioned or saw in use is updated — well within
//! a minute of the change.

use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use crate::pullsecret::entry::{SecretBody, backup_entry};
use crate::pullsecret::error::PullSecretError;
use crate::pullsecret::{PullOptions, PullSecrets};

/// How often the docker config is read again.
pub const INTERVAL: Duration = Duration::from_secs(10);

/// The backup registry's credentials from the docker config, as a pull secret body.
pub(super) fn read(options: &PullOptions) -> Result<SecretBody, PullSecretError> {
    let path = options
        .docker_config
        .as_ref()
        .ok_or(PullSecretError::NoConfig)?;
    let bytes = std::fs::read(path).map_err(|source| PullSecretError::ReadConfig {
        path: path.clone(),
        source,
    })?;
    backup_entry(&bytes, &options.backup).map_err(|why| PullSecretError::NoCredentials {
        path: path.clone(),
        why,
    })
}

/// Reads the docker config again every [`INTERVAL`] and updates what changed, forever.
pub async fn keep_current(secrets: Arc<PullSecrets>) {
    if secrets.options().secret.is_none() {
        return;
    }
    let mut ticker = tokio::time::interval(INTERVAL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        secrets.refresh().await;
    }
}

impl PullSecrets {
    /// One round: the credentials read again, then every known namespace whose Secret does
    /// not hold them is provisioned. A docker config that became unreadable keeps the last
    /// good credentials (said once).
    pub async fn refresh(&self) {
        let Some(name) = self.options.secret.clone() else {
            return;
        };
        self.reload();
        let Ok(body) = self.credentials() else {
            return;
        };
        let slots: Vec<_> = self
            .namespaces
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(ns, slot)| (ns.clone(), Arc::clone(slot)))
            .collect();
        for (namespace, slot) in slots {
            let stale = {
                let state = slot.lock().await;
                !state.not_ours && !state.body.as_ref().is_some_and(|b| b.same_as(&body))
            };
            if stale && let Err(e) = self.provision(&namespace, &name, &body).await {
                tracing::warn!(namespace, error = %e, "pull secret not updated; trying again in {INTERVAL:?}");
            }
        }
    }

    fn reload(&self) {
        let fresh = read(&self.options);
        let mut current = self
            .credentials
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match (&*current, fresh) {
            (Ok(old), Ok(new)) if old.same_as(&new) => {
                self.unreadable_said.store(false, Ordering::Relaxed);
            }
            (_, Ok(new)) => {
                self.unreadable_said.store(false, Ordering::Relaxed);
                tracing::info!(
                    registry = new.key,
                    "the backup registry's credentials in the docker config changed: updating the pull secrets"
                );
                *current = Ok(new);
            }
            // The last good credentials are kept; said once, until the file is usable again.
            (Ok(_), Err(e)) => {
                if !self.unreadable_said.swap(true, Ordering::Relaxed) {
                    tracing::warn!(error = %e, "the docker config cannot be used now: the pull secrets keep the credentials they hold");
                }
            }
            (Err(_), Err(e)) => *current = Err(e.to_string()),
        }
    }
}
