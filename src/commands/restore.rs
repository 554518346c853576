//! `image-cloner restore`: puts back the original images recorded in the annotation, with a
//! `test` op on every image it replaces, so that an image changed since image-cloner set it is
//! kept. The `imagePullSecrets` entry the daemon added goes in the same patch, and its Secret
//! is deleted once no workload in the namespace names it any more.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::sync::Arc;

use futures::future::BoxFuture;
use serde::Serialize;

use crate::cluster::list;
use crate::commands::error::CommandError;
use crate::commands::session::Session;
use crate::pullsecret::SecretsApi;
use crate::pullsecret::cleanup::{self, Cleanup};
use crate::reconcile::api::Unobserved;
use crate::reconcile::api::WorkloadApi;
use crate::reconcile::patch::{ImageChange, PatchPlan};
use crate::reconcile::restore::{self, Kept, Rejected, RestoreOptions, RestorePlan};
use crate::settings::Settings;
use crate::workload::{self, Kind, KindVisitor, SKIP_ANNOTATION, Workload, WorkloadKind, dispatch};

/// What restore does (or would do) to one workload.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RestoreRow {
    pub namespace: String,
    pub kind: String,
    pub name: String,
    pub changes: Vec<ImageChange>,
    pub kept: Vec<Kept>,
    /// Recorded entries refused (not an image reference, or not what the backup is a copy
    /// of): never written.
    pub rejected: Vec<Rejected>,
    /// The workload is (or would be) opted out by the same patch.
    pub opts_out: bool,
    /// The `imagePullSecrets` entries image-cloner added, removed by the same patch.
    pub pull_secrets: Vec<String>,
    /// The annotation could not be read, or the write failed.
    pub error: Option<String>,
}

/// The restore plan of one workload (pure); `None` when it carries no annotation of ours.
pub fn plan_row(w: &Workload, options: RestoreOptions) -> Option<(RestoreRow, Option<PatchPlan>)> {
    let row = RestoreRow {
        namespace: w.namespace.clone(),
        kind: w.kind.to_string(),
        name: w.name.clone(),
        ..RestoreRow::default()
    };
    match restore::restore(w, options) {
        RestorePlan::NotOurs => None,
        RestorePlan::Unreadable { error } => Some((
            RestoreRow {
                error: Some(error),
                ..row
            },
            None,
        )),
        RestorePlan::Restore {
            patch,
            kept,
            rejected,
            opts_out,
        } => Some((
            RestoreRow {
                changes: patch
                    .as_ref()
                    .map(|p| p.changes.clone())
                    .unwrap_or_default(),
                pull_secrets: patch
                    .as_ref()
                    .map(|p| p.pull_secrets.clone())
                    .unwrap_or_default(),
                kept,
                rejected,
                opts_out,
                ..row
            },
            patch,
        )),
    }
}

pub fn render(rows: &[RestoreRow], dry_run: bool) -> String {
    let mut out = String::new();
    let verb = if dry_run { "would restore" } else { "restored" };
    let (mut failed, mut refused) = (0, 0);
    for r in rows {
        let who = format!("{} {}/{}", r.kind, r.namespace, r.name);
        for x in &r.rejected {
            refused += 1;
            let _ = writeln!(
                out,
                "{who}: refused container {}: {}",
                x.container, x.reason
            );
        }
        if let Some(e) = &r.error {
            failed += 1;
            let _ = writeln!(out, "{who}: error: {e}");
            continue;
        }
        for c in &r.changes {
            let _ = writeln!(
                out,
                "{who}: {verb} container {}: {} → {}",
                c.container, c.from, c.to
            );
        }
        for name in &r.pull_secrets {
            let verb = if dry_run { "would remove" } else { "removed" };
            let _ = writeln!(out, "{who}: {verb} imagePullSecrets entry {name}");
        }
        for k in &r.kept {
            let _ = writeln!(out, "{who}: kept container {}: {}", k.container, k.reason);
        }
        if r.opts_out {
            let _ = writeln!(
                out,
                "{who}: {} out ({SKIP_ANNOTATION}=true), so a running daemon leaves it alone; to let it patch again: kubectl annotate {} {} -n {} {SKIP_ANNOTATION}-",
                if dry_run { "would opt it" } else { "opted" },
                r.kind.to_ascii_lowercase(),
                r.name,
                r.namespace
            );
        }
    }
    let images: usize = rows
        .iter()
        .filter(|r| r.error.is_none())
        .map(|r| r.changes.len())
        .sum();
    let _ = writeln!(
        out,
        "{} workload(s), {images} image(s) {verb}, {refused} entr(y/ies) refused, {failed} failed",
        rows.len()
    );
    out
}

/// Which workloads `restore` touches.
#[derive(Debug, Clone, Default)]
pub struct RestoreFilter {
    pub namespace: Option<String>,
    pub selector: Option<String>,
    pub dry_run: bool,
    pub options: RestoreOptions,
}

/// Restores the workloads of one kind and appends their rows.
struct RestoreKind<'a> {
    api: &'a WorkloadApi,
    filter: &'a RestoreFilter,
    rows: &'a mut Vec<RestoreRow>,
}

impl<'a> KindVisitor for RestoreKind<'a> {
    type Output = BoxFuture<'a, Result<(), CommandError>>;
    fn visit<K: WorkloadKind>(self) -> Self::Output {
        Box::pin(async move {
            let objects = list::list::<K>(
                self.api.client(),
                self.filter.namespace.as_deref(),
                self.filter.selector.as_deref(),
            )
            .await
            .map_err(CommandError::list(format!("{}s", K::KIND)))?;
            for obj in objects {
                let w = workload::view(&obj, false);
                let Some((mut row, patch)) = plan_row(&w, self.filter.options) else {
                    continue;
                };
                if let Some(patch) = patch
                    && !self.filter.dry_run
                {
                    row.error = write::<K>(self.api, &w, patch).await.err();
                }
                self.rows.push(row);
            }
            Ok(())
        })
    }
}

async fn write<K: WorkloadKind>(
    api: &WorkloadApi,
    w: &Workload,
    patch: PatchPlan,
) -> Result<(), String> {
    match api.patch::<K>(&w.namespace, &w.name, &patch.patch).await {
        Ok(_) => Ok(()),
        Err(e) if e.code() == Some(422) => Err(format!(
            "the workload changed while restoring; run restore again ({e})"
        )),
        Err(e) => Err(e.to_string()),
    }
}

/// `restore`: every kind, printed; `Ok(false)` when a write failed.
pub async fn run(settings: &Settings, filter: &RestoreFilter) -> Result<bool, CommandError> {
    let session = Session::connect(settings, Kind::ALL).await?;
    let reporter = kube::runtime::events::Reporter {
        controller: "image-cloner".into(),
        instance: None,
    };
    let api = WorkloadApi::new(session.client.clone(), reporter, Arc::new(Unobserved))
        .writing_through(session.writer.clone());
    let mut rows = Vec::new();
    for kind in &session.kinds {
        let visitor = RestoreKind {
            api: &api,
            filter,
            rows: &mut rows,
        };
        dispatch(*kind, visitor).await?;
    }
    print!("{}", render(&rows, filter.dry_run));
    let secrets = pull_secrets_left(&rows);
    let cleaned = if filter.dry_run {
        for (namespace, name) in &secrets {
            println!(
                "Secret {namespace}/{name}: would be deleted if no workload there names it any more"
            );
        }
        true
    } else {
        let api = SecretsApi::new(session.client.clone(), Arc::new(Unobserved));
        clean_up(&api, &session, &secrets).await
    };
    Ok(cleaned
        && rows
            .iter()
            .all(|r| r.error.is_none() && r.rejected.is_empty()))
}

/// The pull secrets whose `imagePullSecrets` entries were removed, by namespace.
fn pull_secrets_left(rows: &[RestoreRow]) -> BTreeSet<(String, String)> {
    rows.iter()
        .filter(|r| r.error.is_none())
        .flat_map(|r| {
            r.pull_secrets
                .iter()
                .map(|s| (r.namespace.clone(), s.clone()))
        })
        .collect()
}

/// Deletes each pull secret no workload names any more; prints what happened. False when one
/// could not be handled.
async fn clean_up(
    api: &SecretsApi,
    session: &Session,
    secrets: &BTreeSet<(String, String)>,
) -> bool {
    let mut all_done = true;
    for (namespace, name) in secrets {
        let who = format!("Secret {namespace}/{name}");
        match cleanup::remove_if_unused(api, &session.client, &session.kinds, namespace, name).await
        {
            Ok(Cleanup::Deleted) => {
                println!("{who}: deleted (no workload in {namespace} names it)")
            }
            Ok(Cleanup::Absent) => println!("{who}: already gone"),
            Ok(Cleanup::StillUsed(users)) => {
                println!("{who}: kept, still named by {}", users.join(", "));
            }
            Err(e) => {
                all_done = false;
                println!("{who}: error: {e}");
            }
        }
    }
    all_done
}
