//! `image-cloner restore`: puts back the original images recorded in the annotation, with a
//! `test` op on every image it replaces, so that an image changed since image-cloner set it is
//! kept.

use std::fmt::Write as _;

use serde::Serialize;

use crate::reconcile::plan::{self, ImageChange, Kept, Workload};

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
pub fn plan_row(w: &Workload) -> Option<(RestoreRow, serde_json::Value)> {
    let (patch, kept) = plan::restore(w)?;
    Some((
        RestoreRow {
            namespace: w.namespace.clone(),
            kind: w.kind.to_string(),
            name: w.name.clone(),
            changes: patch.changes,
            kept,
            error: None,
        },
        patch.patch,
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
