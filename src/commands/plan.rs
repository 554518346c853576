//! `image-cloner plan`: what `run` would do, read from the cluster, without writing or copying
//! anything. `--check-backup` also asks the backup registry which copies already exist.
//!
//! Whether a source is private is not in the cluster: `plan` asks each source registry, as
//! `run` would, with an anonymous manifest HEAD (no credentials; not a pull on Docker Hub) per
//! distinct image it would copy — unless `copy_private_sources` allows that registry anyway.
//!
//! How pods would pull the copies is part of the plan: with no pull secret and `pull_check`
//! on, the backup registry is asked once whether it answers anonymous pulls (a manifest HEAD
//! without credentials); if not, the containers `run` would patch are shown as
//! `backup not pullable` (copied, not patched).

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::Arc;

use serde::{Serialize, Serializer};

use crate::audit::check::{self, Liveness};
use crate::cluster::client;
use crate::commands::error::CommandError;
use crate::commands::session::{self, Session};
use crate::image::reference::ImageRef;
use crate::ops::metrics::Metrics;
use crate::reconcile::plan::{self, Decision, Policy};
use crate::registry::client::Visibility;
use crate::registry::mirror::Mirror;
use crate::settings::Settings;
use crate::settings::cli::Output;
use crate::workload::{Kind, Workload};

mod pull;
pub use pull::{apply_pull, pull_access, pull_line};

/// One container's row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlanRow {
    pub namespace: String,
    pub kind: String,
    pub name: String,
    pub container: String,
    pub image: String,
    /// Where the copy goes (`repository:tag`; the digest is known once copied).
    pub backup: Option<String>,
    /// `clone`, `already in backup`, `ignored namespace`, `opt-out`, `gitops-managed`,
    /// `immutable`, `invalid reference`, `excluded` or `private-source`.
    #[serde(serialize_with = "label")]
    pub decision: Decision,
    /// Whether the copy will be patched into the workload.
    pub patch: bool,
    /// Why, when there is more to say (the GitOps tool, the parse error).
    pub detail: Option<String>,
    /// With `--check-backup`: the pinned backup reference when the copy already exists; for a
    /// container already running a backup copy, `yes` when that copy is still there, else
    /// `no: ` and what is wrong.
    pub in_backup: Option<String>,
}

fn label<S: Serializer>(decision: &Decision, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(decision.label())
}

/// The rows of one workload (pure).
pub fn rows(w: &Workload, policy: &Policy) -> Vec<PlanRow> {
    plan::decide(w, policy)
        .into_iter()
        .map(|p| {
            let backup = match (&p.decision, &p.source) {
                (Decision::AlreadyInBackup, Some(s)) => Some(s.to_string()),
                (d, Some(s)) if d.copies() => policy
                    .backup
                    .target(s, policy.naming)
                    .ok()
                    .map(|t| t.tagged().to_string()),
                _ => None,
            };
            let detail = match &p.decision {
                Decision::GitOpsManaged { tool } => Some(format!("managed by {tool}")),
                Decision::InvalidReference { error } => Some(error.clone()),
                Decision::Excluded { rule } => Some(rule.clone()),
                _ => None,
            };
            PlanRow {
                namespace: w.namespace.clone(),
                kind: w.kind.to_string(),
                name: w.name.clone(),
                container: p.container.name.clone(),
                image: p.container.image.clone(),
                backup,
                patch: p.decision == Decision::Clone,
                decision: p.decision,
                detail,
                in_backup: None,
            }
        })
        .collect()
}

/// Asks, anonymously and a few at a time, whether each distinct source among `sources` whose
/// privacy decides its copy (`copy_private_sources`) is public, as the daemon asks: by
/// canonical reference, the answer or why there is none. `plan` and `status` share it.
pub async fn ask_privacy(
    mirror: &Mirror,
    policy: &Policy,
    sources: impl Iterator<Item = ImageRef>,
) -> HashMap<String, Result<Visibility, String>> {
    use futures::StreamExt as _;
    let sources: BTreeMap<String, ImageRef> = sources
        .filter(|s| policy.sources.must_check_privacy(s))
        .map(|s| (s.canonical().into_owned(), s))
        .collect();
    futures::stream::iter(sources)
        .map(|(key, source)| async move {
            let answer = mirror.visibility(&source).await.map_err(|e| e.to_string());
            (key, answer)
        })
        .buffer_unordered(8)
        .collect()
        .await
}

/// Asks the source registries, anonymously and a few at a time, whether the images the rows
/// would copy are public: a private one becomes `private-source` (not copied, not patched); one
/// whose registry could not say keeps its decision, with why it waits in its detail.
pub async fn check_privacy(rows: &mut [PlanRow], mirror: &Mirror, policy: &Policy) {
    let sources = rows
        .iter()
        .filter(|r| r.decision.copies())
        .filter_map(|r| ImageRef::parse(&r.image).ok());
    let answers = ask_privacy(mirror, policy, sources).await;
    for row in rows.iter_mut().filter(|r| r.decision.copies()) {
        let Ok(source) = ImageRef::parse(&row.image) else {
            continue;
        };
        match answers.get(source.canonical().as_ref()) {
            Some(Ok(Visibility::Private)) => {
                row.decision = Decision::PrivateSource;
                row.backup = None;
                row.patch = false;
                row.detail = Some("served only with credentials".into());
            }
            Some(Err(e)) => {
                row.detail = Some(format!(
                    "not copied until its registry says whether it is public: {e}"
                ));
            }
            Some(Ok(Visibility::Public)) | None => {}
        }
    }
}

/// Fills `in_backup` for the rows that copy, asking the backup registry (no copy is made);
/// and for the rows already running a backup copy, whether that copy is still there (what the
/// daemon's audit asks, once per distinct reference).
pub async fn check_backup(rows: &mut [PlanRow], mirror: &Mirror) {
    let mut audited: HashMap<String, Liveness> = HashMap::new();
    for row in rows.iter_mut() {
        let Ok(source) = ImageRef::parse(&row.image) else {
            continue;
        };
        if row.decision == Decision::AlreadyInBackup {
            let found = match audited.get(&row.image) {
                Some(l) => l.clone(),
                None => check::liveness(mirror, &source).await,
            };
            row.in_backup = Some(match &found {
                Liveness::Alive => "yes".to_owned(),
                other => format!("no: {other}"),
            });
            audited.insert(row.image.clone(), found);
            continue;
        }
        if row.backup.is_none() {
            continue;
        }
        row.in_backup = match mirror.lookup(&source).await {
            Ok(Some(found)) => Some(found),
            Ok(None) => Some("no".to_owned()),
            Err(e) => Some(format!("unknown: {e}")),
        };
    }
}

/// The table for people.
pub fn render_table(rows: &[PlanRow], checked: bool) -> String {
    let mut header = vec![
        "NAMESPACE",
        "KIND",
        "NAME",
        "CONTAINER",
        "IMAGE",
        "BACKUP",
        "DECISION",
    ];
    if checked {
        header.push("IN BACKUP");
    }
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let mut decision = r.decision.label().to_owned();
            if let Some(d) = &r.detail {
                let _ = write!(decision, " ({d})");
            }
            let mut row = vec![
                r.namespace.clone(),
                r.kind.clone(),
                r.name.clone(),
                r.container.clone(),
                r.image.clone(),
                r.backup.clone().unwrap_or_else(|| "-".into()),
                decision,
            ];
            if checked {
                row.push(r.in_backup.clone().unwrap_or_else(|| "-".into()));
            }
            row
        })
        .collect();
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in &cells {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    let line = |out: &mut String, row: &[String]| {
        let last = row.len() - 1;
        for (i, (c, w)) in row.iter().zip(&widths).enumerate() {
            if i == last {
                let _ = writeln!(out, "{c}");
            } else {
                let _ = write!(out, "{c:<w$}  ");
            }
        }
    };
    line(
        &mut out,
        &header.iter().map(|h| (*h).to_owned()).collect::<Vec<_>>(),
    );
    for row in &cells {
        line(&mut out, row);
    }
    let clone = rows.iter().filter(|r| r.patch).count();
    // Distinct images: 500 containers on one image cost one copy.
    let copy = rows
        .iter()
        .filter(|r| r.backup.is_some() && r.decision != Decision::AlreadyInBackup)
        .map(|r| r.image.as_str())
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    let _ = writeln!(
        out,
        "\n{} container(s): {copy} distinct image(s) to clone, {clone} container(s) to patch",
        rows.len()
    );
    out
}

/// `plan`: the rows of every workload, sorted by namespace, kind, name, container, printed.
pub async fn run(settings: &Settings, output: Output, check: bool) -> Result<bool, CommandError> {
    let session = Session::connect(settings, &Kind::wanted(settings.bare_pods)).await?;
    let own = client::own_namespace(std::env::var("POD_NAMESPACE").ok().as_deref());
    let policy = session::policy(settings, own);
    let mut rows: Vec<PlanRow> = Vec::new();
    for w in session.workload_views().await? {
        rows.extend(self::rows(&w, &policy));
    }
    rows.sort_by(|a, b| {
        (&a.namespace, &a.kind, &a.name, &a.container).cmp(&(
            &b.namespace,
            &b.kind,
            &b.name,
            &b.container,
        ))
    });
    let mirror = session::mirror(settings, &Arc::new(Metrics::new()));
    check_privacy(&mut rows, &mirror, &policy).await;
    let access = pull_access(settings, &rows).await;
    if let Some(access) = &access {
        apply_pull(&mut rows, access);
    }
    if check {
        check_backup(&mut rows, &mirror).await;
    }
    match output {
        Output::Table => {
            print!("{}", render_table(&rows, check));
            if let Some(access) = &access {
                println!(
                    "{}",
                    pull_line(access, &settings.backup_registry.to_string())
                );
            }
        }
        Output::Json => println!("{}", serde_json::to_string_pretty(&rows)?),
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use super::*;
    use crate::image::naming::{BackupRegistry, Naming};
    use crate::workload::{Container, Kind};

    #[test]
    fn rows_name_the_backup_and_the_decision() {
        let policy = Policy {
            backup: BackupRegistry::parse("quay.io/b").unwrap(),
            naming: Naming::Flat,
            ignored_namespaces: BTreeSet::from(["kube-system".to_owned()]),
            patch_gitops_managed: false,
            only_namespaces: BTreeSet::new(),
            sources: Default::default(),
            refs: Default::default(),
        };
        let w = Workload {
            kind: Kind::Deployment,
            namespace: "shop".into(),
            name: "web".into(),
            annotations: BTreeMap::new(),
            labels: BTreeMap::new(),
            containers: vec![
                Container {
                    name: "app".into(),
                    image: "nginx:1.27".into(),
                    init: false,
                    index: 0,
                },
                Container {
                    name: "done".into(),
                    image: "quay.io/b/docker.io_library_redis:7".into(),
                    init: false,
                    index: 1,
                },
            ],
            namespace_opted_out: false,
            pull_secrets: None,
            resource_version: None,
        };
        let r = rows(&w, &policy);
        assert_eq!(
            r[0].backup.as_deref(),
            Some("quay.io/b/docker.io_library_nginx:1.27")
        );
        assert_eq!(r[0].decision, Decision::Clone);
        assert!(r[0].patch);
        assert_eq!(r[1].decision, Decision::AlreadyInBackup);
        let table = render_table(&r, false);
        assert!(table.starts_with("NAMESPACE  KIND"));
        assert!(table.contains("1 distinct image(s) to clone, 1 container(s) to patch"));
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json[0]["decision"], "clone");

        // A second workload on the same image: one more container to patch, no more copies.
        let mut other = w.clone();
        other.name = "web-2".into();
        let mut both = r.clone();
        both.extend(rows(&other, &policy));
        let table = render_table(&both, false);
        assert!(
            table.contains("4 container(s): 1 distinct image(s) to clone, 2 container(s) to patch"),
            "{table}"
        );
    }
}
