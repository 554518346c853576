//! `image-cloner status`: if the public registries disappeared now, which workloads could not
//! start, and why. Reads every workload (paged lists), asks the backup registry once per
//! distinct backup reference in use (as the audit does), reads why copies failed from the
//! daemon's Events, and classifies each workload as the daemon's
//! `image_cloner_workloads{state}` does ([`coverage::classify`]). Writes nothing.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::Arc;

use k8s_openapi::api::events::v1::Event;
use kube::Client;
use kube::api::{Api, ListParams};
use serde::{Serialize, Serializer};

use crate::audit::coverage::{self, LastWord, State, classify};
use crate::audit::refs::{self, References};
use crate::audit::{WorkloadKey, check, failures};
use crate::cluster::client;
use crate::cluster::list::PAGE_SIZE;
use crate::commands::error::CommandError;
use crate::commands::session::{self, Session};
use crate::ops::metrics::Metrics;
use crate::settings::Settings;
use crate::settings::cli::Output;
use crate::workload::Kind;

/// One workload's line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StatusRow {
    pub namespace: String,
    pub kind: String,
    pub name: String,
    #[serde(serialize_with = "state_label")]
    pub state: State,
    /// The error, the missing reference, the GitOps tool...
    pub detail: Option<String>,
}

fn state_label<S: Serializer>(state: &State, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(state.label())
}

/// What `status --output json` prints: the counts are `image_cloner_workloads{state}`'s.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub counts: BTreeMap<&'static str, usize>,
    pub workloads: Vec<StatusRow>,
}

/// The report of classified rows (pure).
pub fn report(mut rows: Vec<StatusRow>) -> Report {
    rows.sort_by(|a, b| {
        (a.state, &a.namespace, &a.kind, &a.name).cmp(&(b.state, &b.namespace, &b.kind, &b.name))
    });
    let counts = coverage::count(rows.iter().map(|r| r.state))
        .into_iter()
        .map(|(s, n)| (s.label(), n))
        .collect();
    Report {
        counts,
        workloads: rows,
    }
}

/// The text for people: the count of every state, then every workload that is not protected.
pub fn render_table(report: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{:<36}  WORKLOADS", "STATE");
    for state in State::ALL {
        let n = report.counts.get(state.label()).copied().unwrap_or(0);
        let _ = writeln!(out, "{:<36}  {n}", state.describe());
    }
    let _ = writeln!(out, "{:<36}  {}", "total", report.workloads.len());
    let at_risk: Vec<&StatusRow> = report
        .workloads
        .iter()
        .filter(|r| r.state != State::Protected)
        .collect();
    if at_risk.is_empty() {
        let _ = writeln!(
            out,
            "\nEvery workload runs verified copies that are in the backup registry."
        );
        return out;
    }
    let _ = writeln!(
        out,
        "\nWorkloads that could not start without the public registries:"
    );
    let cells: Vec<[String; 5]> = at_risk
        .iter()
        .map(|r| {
            [
                r.namespace.clone(),
                r.kind.clone(),
                r.name.clone(),
                r.state.describe().to_owned(),
                r.detail.clone().unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    let header = ["NAMESPACE", "KIND", "NAME", "STATE", "DETAIL"].map(str::to_owned);
    let mut widths = header.clone().map(|h| h.len());
    for row in &cells {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    for row in std::iter::once(&header).chain(&cells) {
        let line: Vec<String> = row[..4]
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        let _ = writeln!(out, "{}  {}", line.join("  "), row[4]);
    }
    out
}

/// Every events.k8s.io/v1 Event, page by page.
async fn events(client: &Client) -> Result<Vec<Event>, kube::Error> {
    let api = Api::<Event>::all(client.clone());
    let mut params = ListParams::default().limit(PAGE_SIZE);
    let mut out = Vec::new();
    loop {
        let page = api.list(&params).await?;
        out.extend(page.items);
        match page.metadata.continue_ {
            Some(token) if !token.is_empty() => params = params.continue_token(&token),
            _ => return Ok(out),
        }
    }
}

/// `status`: every workload classified, printed.
pub async fn run(settings: &Settings, output: Output) -> Result<bool, CommandError> {
    let session = Session::connect(settings, &Kind::wanted(settings.bare_pods)).await?;
    let own = client::own_namespace(std::env::var("POD_NAMESPACE").ok().as_deref());
    let policy = session::policy(settings, own);
    let views = session.workload_views().await?;
    let mut in_use = References::new();
    for w in &views {
        refs::collect(&mut in_use, w, &policy);
    }
    let mirror = session::mirror(settings, &Arc::new(Metrics::new()));
    let liveness = check::check_all(&mirror, &in_use).await;
    let failing: HashMap<WorkloadKey, LastWord> = failures::copy_failures(
        &events(&session.client)
            .await
            .map_err(CommandError::list("events"))?,
    );
    let rows = views
        .iter()
        .map(|w| {
            let key = WorkloadKey::of(w);
            let c = classify(
                w,
                &policy,
                &|image| liveness.get(image).cloned(),
                failing.get(&key),
            );
            StatusRow {
                namespace: key.namespace,
                kind: key.kind.to_string(),
                name: key.name,
                state: c.state,
                detail: c.detail,
            }
        })
        .collect();
    let report = report(rows);
    match output {
        Output::Table => print!("{}", render_table(&report)),
        Output::Json => println!("{}", serde_json::to_string_pretty(&report)?),
    }
    Ok(true)
}

#[cfg(test)]
mod tests;
