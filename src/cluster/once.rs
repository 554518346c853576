//! `run --once`: every workload present, reconciled once, all concurrently (the mirror bounds
//! the copies), waited for, and summed up.

use std::collections::BTreeSet;
use std::sync::Arc;

use futures::future::BoxFuture;
use tokio::task::JoinSet;

use crate::cluster::list;
use crate::reconcile::{Context, ReconcileError, Reconciled, reconcile};
use crate::workload::{Kind, KindVisitor, WorkloadKind, dispatch};

/// What `run --once` did.
#[derive(Debug, Default)]
pub struct OnceSummary {
    pub workloads: usize,
    pub patched: usize,
    pub images_patched: usize,
    pub cloned_only: usize,
    pub invalid: usize,
    pub failed: Vec<String>,
}

type Tasks = JoinSet<Result<Reconciled, ReconcileError>>;

/// Lists one kind and starts a reconcile per object; the number started.
struct Start<'a> {
    ctx: &'a Arc<Context>,
    tasks: &'a mut Tasks,
}

impl<'a> KindVisitor for Start<'a> {
    type Output = BoxFuture<'a, Result<usize, kube::Error>>;
    fn visit<K: WorkloadKind>(self) -> Self::Output {
        Box::pin(async move {
            let mut n = 0;
            // Each page's reconciles start while the next page is read: the copies of the
            // images on the first page do not wait for the whole list.
            list::for_each_page::<K>(self.ctx.api.client(), None, None, |page| {
                n += page.len();
                for obj in page {
                    let ctx = Arc::clone(self.ctx);
                    // Boxed: the reconcile's state is ~3.5 KB, which tokio's spawn would
                    // otherwise copy four times over into its task cell, and once more on
                    // completion (callgrind: ~3,600 instructions a spawn).
                    self.tasks
                        .spawn(Box::pin(async move { reconcile(&obj, &ctx).await }));
                }
            })
            .await?;
            Ok(n)
        })
    }
}

/// Reconciles every workload of `kinds` once and waits for all of them.
pub async fn run_once(
    ctx: Arc<Context>,
    kinds: &BTreeSet<Kind>,
) -> Result<OnceSummary, kube::Error> {
    let mut tasks = Tasks::new();
    let mut summary = OnceSummary::default();
    for kind in kinds {
        let start = Start {
            ctx: &ctx,
            tasks: &mut tasks,
        };
        summary.workloads += dispatch(*kind, start).await?;
    }
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(Ok(r)) => {
                ctx.observer.reconciled();
                if !r.patched.is_empty() {
                    summary.patched += 1;
                    summary.images_patched += r.patched.len();
                }
                summary.cloned_only += r.cloned_only.len();
                summary.invalid += r.invalid;
            }
            Ok(Err(e)) => {
                ctx.observer.reconcile_failed(e.reason());
                tracing::warn!(error = %e, "reconcile failed");
                summary.failed.push(e.to_string());
            }
            Err(e) => summary.failed.push(format!("internal error: {e}")),
        }
    }
    Ok(summary)
}
