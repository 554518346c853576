//! `image-cloner restore`: puts back the original images recorded in the annotation, with a
//! `test` op on every image it replaces, so that an image changed since image-cloner set it is
//! kept.

use std::fmt::Write as _;

use futures::future::BoxFuture;
use serde::Serialize;

use crate::cluster::list;
use crate::commands::error::CommandError;
use crate::commands::session::Session;
use crate::reconcile::api::WorkloadApi;
use crate::reconcile::patch::ImageChange;
use crate::reconcile::restore::{self, Kept};
use crate::settings::Settings;
use crate::workload::{self, Kind, KindVisitor, Workload, WorkloadKind, dispatch};

/// What restore does (or would do) to one workload.
#[derive(Debug, Clone, Serialize)]
pub struct RestoreRow {
    pub namespace: String,
    pub kind: String,
    pub name: String,
    pub changes: Vec<ImageChange>,
    pub kept: Vec<Kept>,
    /// `None` before the write; the error when the write failed.
    pub error: Option<String>,
}

/// The restore plan of one workload (pure); `None` when it carries no annotation of ours.
pub fn plan_row(w: &Workload) -> Option<(RestoreRow, crate::reconcile::patch::PatchPlan)> {
    let (patch, kept) = restore::restore(w)?;
    Some((
        RestoreRow {
            namespace: w.namespace.clone(),
            kind: w.kind.to_string(),
            name: w.name.clone(),
            changes: patch.changes.clone(),
            kept,
            error: None,
        },
        patch,
    ))
}

pub fn render(rows: &[RestoreRow], dry_run: bool) -> String {
    let mut out = String::new();
    let verb = if dry_run { "would restore" } else { "restored" };
    let mut failed = 0;
    for r in rows {
        let who = format!("{} {}/{}", r.kind, r.namespace, r.name);
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
        for k in &r.kept {
            let _ = writeln!(out, "{who}: kept container {}: {}", k.container, k.reason);
        }
    }
    let images: usize = rows
        .iter()
        .filter(|r| r.error.is_none())
        .map(|r| r.changes.len())
        .sum();
    let _ = writeln!(
        out,
        "{} workload(s), {images} image(s) {verb}, {failed} failed",
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
                let Some((mut row, patch)) = plan_row(&w) else {
                    continue;
                };
                if !self.filter.dry_run {
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
    patch: crate::reconcile::patch::PatchPlan,
) -> Result<(), String> {
    let patch = patch.operations().map_err(|e| e.to_string())?;
    match api.patch::<K>(&w.namespace, &w.name, patch).await {
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
    let recorder = kube::runtime::events::Recorder::new(
        session.client.clone(),
        kube::runtime::events::Reporter {
            controller: "image-cloner".into(),
            instance: None,
        },
    );
    let api = WorkloadApi::new(
        session.client.clone(),
        recorder,
        std::sync::Arc::new(crate::reconcile::api::Unobserved),
    );
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
    Ok(rows.iter().all(|r| r.error.is_none()))
}
