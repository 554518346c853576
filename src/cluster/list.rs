//! Paged lists, each object read as the caches hold it: what `run --once`, `plan` and
//! `restore` read in one go.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, ListParams};
use kube::{Client, ResourceExt};

use crate::workload::{self, WorkloadKind};

/// Objects per list page: bounded memory per request at 10,000 workloads.
pub const PAGE_SIZE: u32 = 500;

/// Objects on the first page of [`for_each_page`]: `run --once` starts its first copies once
/// this page is read, and a page of [`PAGE_SIZE`] took the API server and image-cloner ~50 ms
/// to serve and parse (`make bench`), time in which no copy slot was busy.
pub const FIRST_PAGE_SIZE: u32 = 50;

/// Every object of a kind (in `namespace`, matching `selector`, when given), page by page,
/// read as the caches would hold it (`workload::partial`).
pub async fn list<K: WorkloadKind>(
    client: &Client,
    namespace: Option<&str>,
    selector: Option<&str>,
) -> Result<Vec<K>, kube::Error> {
    let mut out = Vec::new();
    for_each_page(client, namespace, selector, |page: Vec<K>| out.extend(page)).await?;
    Ok(out)
}

/// Like [`list`], handing each page to `each` as it arrives: what `run --once` starts with,
/// so that the first copies start while the next pages are read. The first page is a small
/// one ([`FIRST_PAGE_SIZE`]); a continue token is valid with another limit.
pub async fn for_each_page<K: WorkloadKind>(
    client: &Client,
    namespace: Option<&str>,
    selector: Option<&str>,
    mut each: impl FnMut(Vec<K>),
) -> Result<(), kube::Error> {
    let api: Api<K> = match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let mut params = ListParams::default().limit(FIRST_PAGE_SIZE);
    if let Some(selector) = selector {
        params = params.labels(selector);
    }
    loop {
        let page = api.list(&params).await?;
        params.limit = Some(PAGE_SIZE);
        each(page.items);
        match page.metadata.continue_ {
            Some(token) if !token.is_empty() => params = params.continue_token(&token),
            _ => break,
        }
    }
    Ok(())
}

/// The opted-out namespaces, read once.
pub async fn opted_out_namespaces(client: &Client) -> Result<BTreeSet<String>, kube::Error> {
    let list = Api::<Namespace>::all(client.clone())
        .list(&ListParams::default())
        .await?;
    Ok(list
        .items
        .into_iter()
        .filter(|ns| workload::opted_out(ns.annotations()))
        .map(|ns| ns.name_any())
        .collect())
}
