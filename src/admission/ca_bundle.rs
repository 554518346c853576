//! `webhook_tls = self-signed`: the CA generated at start goes into the daemon's own webhook
//! configurations — the `MutatingWebhookConfiguration` and `ValidatingWebhookConfiguration`
//! named [`CONFIGURATION_NAME`], and no other object (the manifests' RBAC names exactly these
//! two by `resourceNames`). It is written again every [`REWRITE_INTERVAL`], so that a
//! configuration created or re-applied after the daemon started gets it too.
//!
//! With leader election, each replica makes its own CA, and only the one holding the Lease
//! writes it (within [`LEADERSHIP_POLL`] of taking the Lease over): the API server then trusts
//! the replica whose answers count, and a standby's certificate is refused, which the
//! configurations' `failurePolicy: Ignore` turns into "admitted unchanged" — what a standby
//! answers anyway.
//!
//! The certificate covers the hosts those configurations call: each `clientConfig.url`'s host,
//! each `clientConfig.service` as `NAME.NAMESPACE.svc` (and `.svc.cluster.local`), the Service
//! of the manifests, `localhost` and the loopback addresses.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration, WebhookClientConfig,
};
use kube::api::{Api, PostParams};
use kube::{Client, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::admission::error::AdmissionError;
use crate::reconcile::guard::WriteGuard;

/// The name of both webhook configurations the daemon owns.
pub const CONFIGURATION_NAME: &str = "image-cloner";
/// The Service of `manifests/webhooks/`, in the daemon's namespace.
pub const SERVICE_NAME: &str = "image-cloner-webhook";
pub const REWRITE_INTERVAL: Duration = Duration::from_secs(60);
/// How often a replica that does not lead looks again whether it does.
pub const LEADERSHIP_POLL: Duration = Duration::from_secs(2);

/// A webhook configuration: where its webhooks' client configs are.
trait Configuration:
    Resource<DynamicType = ()>
    + Clone
    + std::fmt::Debug
    + Serialize
    + DeserializeOwned
    + Send
    + Sync
    + 'static
{
    const WHAT: &'static str;
    fn client_configs(&mut self) -> Vec<&mut WebhookClientConfig>;
}

impl Configuration for MutatingWebhookConfiguration {
    const WHAT: &'static str = "MutatingWebhookConfiguration";
    fn client_configs(&mut self) -> Vec<&mut WebhookClientConfig> {
        self.webhooks
            .iter_mut()
            .flatten()
            .map(|w| &mut w.client_config)
            .collect()
    }
}

impl Configuration for ValidatingWebhookConfiguration {
    const WHAT: &'static str = "ValidatingWebhookConfiguration";
    fn client_configs(&mut self) -> Vec<&mut WebhookClientConfig> {
        self.webhooks
            .iter_mut()
            .flatten()
            .map(|w| &mut w.client_config)
            .collect()
    }
}

/// The host of an `https://HOST[:PORT]/...` URL (IPv6 without brackets).
fn url_host(url: &str) -> Option<String> {
    let rest = url.strip_prefix("https://")?;
    let authority = rest.split('/').next()?;
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next()?,
        None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
    };
    (!host.is_empty()).then(|| host.to_owned())
}

/// The names a client config reaches the daemon by. Pure.
pub fn names_of(config: &WebhookClientConfig) -> Vec<String> {
    let mut names = Vec::new();
    names.extend(config.url.as_deref().and_then(url_host));
    if let Some(s) = &config.service {
        names.push(format!("{}.{}.svc", s.name, s.namespace));
        names.push(format!("{}.{}.svc.cluster.local", s.name, s.namespace));
    }
    names
}

async fn configured_names<C: Configuration>(client: &Client) -> Vec<String> {
    match Api::<C>::all(client.clone())
        .get_opt(CONFIGURATION_NAME)
        .await
    {
        Ok(Some(mut c)) => c
            .client_configs()
            .iter()
            .flat_map(|cc| names_of(cc))
            .collect(),
        Ok(None) => Vec::new(),
        Err(e) => {
            tracing::warn!(what = C::WHAT, error = %e, "reading the webhook configuration for its hosts");
            Vec::new()
        }
    }
}

/// Every name the generated certificate must hold.
pub async fn hosts(client: &Client, address: SocketAddr, namespace: &str) -> Vec<String> {
    let mut names = vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
        format!("{SERVICE_NAME}.{namespace}.svc"),
        format!("{SERVICE_NAME}.{namespace}.svc.cluster.local"),
    ];
    if !address.ip().is_unspecified() {
        names.push(address.ip().to_string());
    }
    names.extend(configured_names::<MutatingWebhookConfiguration>(client).await);
    names.extend(configured_names::<ValidatingWebhookConfiguration>(client).await);
    let mut seen = std::collections::BTreeSet::new();
    names.retain(|n| seen.insert(n.clone()));
    names
}

/// Sets every webhook's `caBundle` of configuration `C` to `bundle`; `Ok(false)` when the
/// configuration does not exist.
async fn write<C: Configuration>(
    client: &Client,
    bundle: &ByteString,
) -> Result<bool, AdmissionError> {
    let api = Api::<C>::all(client.clone());
    let failed = |source| AdmissionError::WriteCaBundle {
        what: C::WHAT,
        name: CONFIGURATION_NAME.to_owned(),
        source,
    };
    let Some(mut config) = api.get_opt(CONFIGURATION_NAME).await.map_err(failed)? else {
        return Ok(false);
    };
    let mut changed = false;
    for cc in config.client_configs() {
        if cc.ca_bundle.as_ref() != Some(bundle) {
            cc.ca_bundle = Some(bundle.clone());
            changed = true;
        }
    }
    if changed {
        // The resourceVersion read above makes this a compare-and-swap: a concurrent edit
        // fails it (409) and the next round reads again.
        api.replace(CONFIGURATION_NAME, &PostParams::default(), &config)
            .await
            .map_err(failed)?;
        tracing::info!(
            what = C::WHAT,
            name = CONFIGURATION_NAME,
            "wrote the webhook CA bundle"
        );
    }
    Ok(true)
}

/// Writes the CA into both configurations now and every [`REWRITE_INTERVAL`], while `guard`
/// allows writes (always, without leader election).
pub fn keep_written(
    client: Client,
    ca_pem: String,
    guard: Arc<dyn WriteGuard>,
) -> tokio::task::JoinHandle<()> {
    let bundle = ByteString(ca_pem.into_bytes());
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(LEADERSHIP_POLL);
        let mut first = true;
        let mut written_at: Option<Instant> = None;
        loop {
            ticker.tick().await;
            if !guard.allows() {
                written_at = None;
                continue;
            }
            if written_at.is_some_and(|at| at.elapsed() < REWRITE_INTERVAL) {
                continue;
            }
            written_at = Some(Instant::now());
            for result in [
                write::<MutatingWebhookConfiguration>(&client, &bundle).await,
                write::<ValidatingWebhookConfiguration>(&client, &bundle).await,
            ] {
                match result {
                    Ok(true) => {}
                    Ok(false) if first => tracing::info!(
                        name = CONFIGURATION_NAME,
                        "a webhook configuration does not exist (yet): the CA bundle is written once it does"
                    ),
                    Ok(false) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, reason = e.label(), "the webhook CA bundle is not written; trying again")
                    }
                }
            }
            first = false;
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::admissionregistration::v1::ServiceReference;

    #[test]
    fn the_certificate_names_every_host_a_configuration_calls() {
        let url = |u: &str| WebhookClientConfig {
            url: Some(u.to_owned()),
            ..Default::default()
        };
        assert_eq!(
            names_of(&url("https://127.0.0.1:8443/mutate")),
            ["127.0.0.1"]
        );
        assert_eq!(
            names_of(&url("https://bastion.example:8443/validate")),
            ["bastion.example"]
        );
        assert_eq!(names_of(&url("https://[fd00::1]:8443/mutate")), ["fd00::1"]);
        assert_eq!(
            names_of(&url("https://hooks.example/mutate")),
            ["hooks.example"]
        );
        let service = WebhookClientConfig {
            service: Some(ServiceReference {
                name: "image-cloner-webhook".into(),
                namespace: "image-cloner".into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(
            names_of(&service),
            [
                "image-cloner-webhook.image-cloner.svc",
                "image-cloner-webhook.image-cloner.svc.cluster.local"
            ]
        );
    }
}
