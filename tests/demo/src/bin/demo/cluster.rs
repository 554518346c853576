//! The demo's view of the simulated cluster: create, read and annotate objects by kind.

use anyhow::{Context as _, Result, bail};
use kube::api::GroupVersionKind;
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::discovery::ApiResource;
use serde_json::{Value, json};

fn resource(kind: &str) -> Result<ApiResource> {
    let Some(r) = kube_sim::resources::of_kind(kind) else {
        bail!("no resource for kind {kind}");
    };
    Ok(ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(r.group, r.version, r.kind),
        r.plural,
    ))
}

pub struct Cluster {
    pub rt: tokio::runtime::Runtime,
    pub client: kube::Client,
}

impl Cluster {
    pub fn api(&self, kind: &str, ns: Option<&str>) -> Result<Api<DynamicObject>> {
        let r = resource(kind)?;
        Ok(match ns {
            Some(ns) => Api::namespaced_with(self.client.clone(), ns, &r),
            None => Api::all_with(self.client.clone(), &r),
        })
    }

    pub fn create(&self, obj: Value) -> Result<()> {
        let kind = obj["kind"].as_str().unwrap_or_default().to_owned();
        let ns = obj["metadata"]["namespace"].as_str().map(str::to_owned);
        let name = obj["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let api = self.api(&kind, ns.as_deref())?;
        let dynamic: DynamicObject = serde_json::from_value(obj).context("an object")?;
        self.rt
            .block_on(api.create(&PostParams::default(), &dynamic))
            .with_context(|| format!("creating {kind} {name}"))?;
        Ok(())
    }

    pub fn get(&self, kind: &str, ns: &str, name: &str) -> Result<Value> {
        let obj = self
            .rt
            .block_on(self.api(kind, Some(ns))?.get(name))
            .with_context(|| format!("reading {kind} {ns}/{name}"))?;
        Ok(serde_json::to_value(obj)?)
    }

    /// Removes an annotation, as `kubectl annotate <kind> <name> -n <ns> <key>-` does.
    pub fn remove_annotation(&self, kind: &str, ns: &str, name: &str, key: &str) -> Result<()> {
        let patch = json!({"metadata": {"annotations": {key: null}}});
        self.rt
            .block_on(self.api(kind, Some(ns))?.patch(
                name,
                &PatchParams::default(),
                &Patch::Merge(&patch),
            ))
            .with_context(|| format!("removing {key} from {kind} {ns}/{name}"))?;
        Ok(())
    }
}
