//! What the audit and the rollout guard do to a workload whose backup images fail it: a Warning
//! Event, and — when asked — its original images back, planned by `restore`'s pure planning
//! (a `test` op on every image replaced, the annotation removed, the workload opted out so that
//! it does not flap). The workload is read fresh first: the caches may be behind, and the patch
//! must test what is there now.

use std::collections::BTreeSet;

use futures::future::BoxFuture;
use kube::runtime::events::EventType;

use crate::audit::WorkloadKey;
use crate::image::reference::ImageRef;
use crate::reconcile::Context;
use crate::reconcile::patch::{ImageChange, original_images};
use crate::reconcile::restore::{RestoreOptions, RestorePlan, restore};
use crate::registry::mirror::Mirror;
use crate::workload::{self, KindVisitor, SKIP_ANNOTATION, Workload, WorkloadKind, dispatch};

/// What to do about one workload.
#[derive(Debug, Clone)]
pub struct Request {
    /// The Event's reason.
    pub reason: &'static str,
    /// What is wrong: the Event note begins with it.
    pub problem: String,
    /// Put the original images back.
    pub restore: bool,
    /// Only when every original image still exists in its registry.
    pub check_originals: bool,
    /// Act only when the workload still runs one of these images as image-cloner recorded
    /// them (the guard acts on its own patches only); empty: act anyway.
    pub ours: BTreeSet<String>,
}

/// What became of the workload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Back on its original images (and opted out); Event published.
    Restored(Vec<ImageChange>),
    /// Event published; the workload is as it was.
    Reported,
    /// It no longer runs the images the request is about.
    NotOurs,
    /// It no longer exists.
    Gone,
    /// Reading or writing it failed; Event published when it was read. Worth another try.
    Failed(String),
}

/// Reads the workload and acts on it.
pub async fn on_workload(ctx: &Context, key: &WorkloadKey, request: &Request) -> Outcome {
    dispatch(key.kind, Act { ctx, key, request }).await
}

struct Act<'a> {
    ctx: &'a Context,
    key: &'a WorkloadKey,
    request: &'a Request,
}

impl<'a> KindVisitor for Act<'a> {
    type Output = BoxFuture<'a, Outcome>;
    fn visit<K: WorkloadKind>(self) -> Self::Output {
        Box::pin(act::<K>(self.ctx, self.key, self.request))
    }
}

/// Whether `w` runs one of `images` in a container image-cloner recorded it for.
fn runs_recorded(w: &Workload, images: &BTreeSet<String>) -> bool {
    let recorded = original_images(&w.annotations).unwrap_or_default();
    w.containers.iter().any(|c| {
        images.contains(&c.image) && recorded.get(&c.name).is_some_and(|r| r.backup == c.image)
    })
}

async fn act<K: WorkloadKind>(ctx: &Context, key: &WorkloadKey, request: &Request) -> Outcome {
    let obj = match ctx.api.get::<K>(&key.namespace, &key.name).await {
        Ok(obj) => obj,
        Err(e) if e.code() == Some(404) => return Outcome::Gone,
        Err(e) => return Outcome::Failed(format!("reading {key}: {e}")),
    };
    let w = workload::view(&obj, false);
    if !request.ours.is_empty() && !runs_recorded(&w, &request.ours) {
        return Outcome::NotOurs;
    }
    let restoring = if request.restore {
        put_back::<K>(ctx, &w, request.check_originals).await
    } else {
        Restoring::NotAsked
    };
    let note = note(&request.problem, &restoring);
    tracing::warn!(workload = %key, reason = request.reason, "{note}");
    ctx.api
        .event(&obj, EventType::Warning, request.reason, note)
        .await;
    match restoring {
        Restoring::Done(changes) => Outcome::Restored(changes),
        Restoring::WriteFailed(e) => Outcome::Failed(e),
        Restoring::NotAsked | Restoring::Skipped(_) => Outcome::Reported,
    }
}

/// How restoring went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Restoring {
    NotAsked,
    Done(Vec<ImageChange>),
    /// Not restored, and why.
    Skipped(String),
    WriteFailed(String),
}

/// The Event note: the problem, then what was done about it.
pub fn note(problem: &str, restoring: &Restoring) -> String {
    match restoring {
        Restoring::NotAsked => problem.to_owned(),
        Restoring::Done(changes) => format!(
            "{problem}; restored the original images ({}) and opted the workload out ({SKIP_ANNOTATION}=true; remove the annotation to let image-cloner patch it again)",
            changes
                .iter()
                .map(|c| format!("{}: {} → {}", c.container, c.from, c.to))
                .collect::<Vec<_>>()
                .join("; ")
        ),
        Restoring::Skipped(why) => format!("{problem}; not restored: {why}"),
        Restoring::WriteFailed(e) => format!("{problem}; restoring failed: {e}"),
    }
}

/// Whether `image` still exists in its registry; why not, when it does not (or cannot be
/// told).
async fn exists(mirror: &Mirror, image: &str) -> Result<(), String> {
    let parsed = ImageRef::parse(image).map_err(|e| e.to_string())?;
    match mirror.registry_digest(&parsed).await {
        Ok(Some(_)) => Ok(()),
        Ok(None) => Err(format!("its original {image} no longer exists either")),
        Err(e) => Err(format!("its original {image} could not be checked: {e}")),
    }
}

/// Writes the original images back, as `restore` plans it.
async fn put_back<K: WorkloadKind>(ctx: &Context, w: &Workload, check: bool) -> Restoring {
    if !K::POD_TEMPLATE_MUTABLE {
        return Restoring::Skipped("a Job's pod template cannot change".into());
    }
    let patch = match restore(w, RestoreOptions::default()) {
        RestorePlan::NotOurs => {
            return Restoring::Skipped("no original images are recorded on it".into());
        }
        RestorePlan::Unreadable { error } => return Restoring::Skipped(error),
        RestorePlan::Restore { patch, .. } => match patch {
            Some(p) if !p.changes.is_empty() => p,
            _ => {
                return Restoring::Skipped(
                    "its images were changed since image-cloner set them".into(),
                );
            }
        },
    };
    if check {
        for change in &patch.changes {
            if let Err(why) = exists(&ctx.mirror, &change.to).await {
                return Restoring::Skipped(why);
            }
        }
    }
    match ctx
        .api
        .patch::<K>(&w.namespace, &w.name, &patch.patch)
        .await
    {
        Ok(_) => {
            for c in &patch.changes {
                tracing::info!(
                    container = c.container,
                    from = c.from,
                    to = c.to,
                    "restored"
                );
            }
            Restoring::Done(patch.changes)
        }
        Err(e) => Restoring::WriteFailed(e.to_string()),
    }
}
