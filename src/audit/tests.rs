//! The audit's rules, with a registry made of maps (no process, no socket): one request per
//! distinct reference, repair by digest from the recorded original, no fight over a shared tag.

mod coverage;
mod guard;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use serde_json::json;

use super::check::{Liveness, check_all};
use super::refs::{References, collect};
use super::repair::{Repair, pinned_original, repair};
use crate::image::manifest::RawManifest;
use crate::image::naming::{BackupRegistry, Naming};
use crate::image::reference::{Digest, ImageRef};
use crate::reconcile::plan::Policy;
use crate::registry::client::{LookupError, RegistryClient};
use crate::registry::mirror::Mirror;
use crate::registry::skopeo::{CopyFormat, SkopeoError};
use crate::workload::{Container, Kind, Workload};

pub(super) const BACKUP: &str = "backup.example.com/mirror";

pub(super) fn digest(s: &str) -> Digest {
    Digest::sha256_of(s.as_bytes())
}

fn image(s: &str) -> ImageRef {
    ImageRef::parse(s).expect("a valid reference")
}

pub(super) fn policy() -> Policy {
    Policy {
        backup: BackupRegistry::parse(BACKUP).expect("valid"),
        naming: Naming::Flat,
        ignored_namespaces: BTreeSet::from(["kube-system".to_owned()]),
        only_namespaces: BTreeSet::new(),
        patch_gitops_managed: false,
        sources: Default::default(),
        refs: Default::default(),
    }
}

/// A workload with one container per `(name, image)`, and the annotation recording
/// `(container, original, backup)`.
pub(super) fn workload(
    kind: Kind,
    name: &str,
    containers: &[(&str, &str)],
    recorded: &[(&str, &str, &str)],
) -> Workload {
    let mut annotations = BTreeMap::new();
    if !recorded.is_empty() {
        let value: serde_json::Map<String, serde_json::Value> = recorded
            .iter()
            .map(|(c, o, b)| ((*c).to_owned(), json!({"original": o, "backup": b})))
            .collect();
        annotations.insert(
            "image-cloner.io/original-images".to_owned(),
            serde_json::Value::Object(value).to_string(),
        );
    }
    Workload {
        kind,
        namespace: "shop".into(),
        name: name.into(),
        annotations,
        labels: BTreeMap::new(),
        containers: containers
            .iter()
            .enumerate()
            .map(|(index, (n, i))| Container {
                name: (*n).into(),
                image: (*i).into(),
                init: false,
                index,
            })
            .collect(),
        namespace_opted_out: false,
        pull_secrets: None,
        resource_version: None,
    }
}

#[derive(Default)]
struct Repo {
    tags: HashMap<String, Digest>,
    digests: HashSet<Digest>,
}

/// Registries as maps of repository → tags and digests; counts what it is asked.
#[derive(Default)]
struct Registry {
    repos: Mutex<HashMap<String, Repo>>,
    requests: AtomicUsize,
    copies: Mutex<Vec<(String, String)>>,
}

impl Registry {
    fn push(&self, reference: &str, d: &Digest) {
        let r = image(reference);
        let mut repos = self.repos.lock().expect("lock");
        let repo = repos.entry(r.repository().to_owned()).or_default();
        repo.digests.insert(d.clone());
        if let Some(tag) = r.tag() {
            repo.tags.insert(tag.to_owned(), d.clone());
        }
    }

    /// Deletes a manifest by digest, with the tags naming it (as the distribution registry).
    fn delete(&self, repository: &str, d: &Digest) {
        let mut repos = self.repos.lock().expect("lock");
        if let Some(repo) = repos.get_mut(repository) {
            repo.digests.remove(d);
            repo.tags.retain(|_, t| t != d);
        }
    }

    fn lookup(&self, image: &ImageRef) -> Option<Digest> {
        self.requests.fetch_add(1, Ordering::SeqCst);
        let repos = self.repos.lock().expect("lock");
        let repo = repos.get(image.repository())?;
        match (image.digest(), image.tag()) {
            (Some(d), _) => repo.digests.contains(d).then(|| d.clone()),
            (None, tag) => repo.tags.get(tag.unwrap_or("latest")).cloned(),
        }
    }
}

impl RegistryClient for Registry {
    fn digest<'a>(
        &'a self,
        image: &'a ImageRef,
    ) -> BoxFuture<'a, Result<Option<Digest>, LookupError>> {
        Box::pin(async move { Ok(self.lookup(image)) })
    }
    fn resolve<'a>(
        &'a self,
        image: &'a ImageRef,
    ) -> BoxFuture<'a, Result<Option<RawManifest>, LookupError>> {
        Box::pin(async move { Ok(self.lookup(image).map(RawManifest::modern)) })
    }
    fn manifest<'a>(
        &'a self,
        image: &'a ImageRef,
    ) -> BoxFuture<'a, Result<Option<RawManifest>, LookupError>> {
        Box::pin(async move { Ok(self.lookup(image).map(RawManifest::modern)) })
    }
    fn copy<'a>(
        &'a self,
        source: &'a ImageRef,
        dest: &'a ImageRef,
        _format: CopyFormat,
    ) -> BoxFuture<'a, Result<Digest, SkopeoError>> {
        Box::pin(async move {
            let d = source.digest().cloned().expect("copies are made by digest");
            self.copies
                .lock()
                .expect("lock")
                .push((source.to_string(), dest.to_string()));
            self.push(&dest.to_string(), &d);
            Ok(d)
        })
    }
}

fn mirror(registry: &Arc<Registry>) -> Mirror {
    crate::registry::mirror::test_mirror(Arc::clone(registry) as Arc<dyn RegistryClient>, BACKUP, 2)
}

/// The source of image `i`, its backup repository, and its digest.
fn nth(i: usize) -> (String, String, Digest) {
    let d = digest(&format!("image {i}"));
    (
        format!("registry.example.com/app-{i}:1.0"),
        format!("{BACKUP}/registry.example.com_app-{i}"),
        d,
    )
}

fn pinned(i: usize) -> String {
    let (_, repo, d) = nth(i);
    format!("{repo}:1.0@{d}")
}

#[tokio::test]
async fn ten_thousand_workloads_over_five_hundred_images_cost_five_hundred_requests() {
    let registry = Arc::new(Registry::default());
    for i in 0..500 {
        let (_, repo, d) = nth(i);
        registry.push(&format!("{repo}:1.0"), &d);
    }
    let mut refs = References::new();
    for w in 0..10_000 {
        let i = w % 500;
        let (original, _, _) = nth(i);
        let backup = pinned(i);
        let view = workload(
            Kind::Deployment,
            &format!("app-{w}"),
            &[("app", &backup)],
            &[("app", &original, &backup)],
        );
        collect(&mut refs, &view, &policy());
    }
    assert_eq!(refs.len(), 500);
    assert_eq!(refs[&pinned(7)].workloads.len(), 20);
    assert_eq!(
        refs[&pinned(7)].originals,
        BTreeSet::from([nth(7).0.clone()])
    );
    let found = check_all(&mirror(&registry), &refs).await;
    assert_eq!(registry.requests.load(Ordering::SeqCst), 500);
    assert!(found.values().all(|l| *l == Liveness::Alive), "{found:?}");
}

#[test]
fn only_workloads_planning_leaves_on_a_backup_copy_are_audited() {
    let backup = pinned(1);
    let mut ignored = workload(Kind::Deployment, "a", &[("app", &backup)], &[]);
    ignored.namespace = "kube-system".into();
    let mut opted_out = workload(Kind::Deployment, "b", &[("app", &backup)], &[]);
    opted_out.namespace_opted_out = true;
    let public = workload(Kind::Deployment, "c", &[("app", "nginx:1.27")], &[]);
    // Recorded for another image: not an original of this copy.
    let edited = workload(
        Kind::Job,
        "d",
        &[("app", &backup)],
        &[("app", "nginx:1.27", "elsewhere:1")],
    );
    let mut refs = References::new();
    for w in [&ignored, &opted_out, &public, &edited] {
        collect(&mut refs, w, &policy());
    }
    assert_eq!(refs.len(), 1);
    assert!(refs[&backup].originals.is_empty());
    assert_eq!(refs[&backup].workloads.len(), 1);
}

/// One workload on copy `i`, its original recorded.
fn audited(i: usize) -> References {
    let mut refs = References::new();
    let (original, _, _) = nth(i);
    let backup = pinned(i);
    let w = workload(
        Kind::Deployment,
        "web",
        &[("app", &backup)],
        &[("app", &original, &backup)],
    );
    collect(&mut refs, &w, &policy());
    refs
}

#[tokio::test]
async fn a_deleted_copy_is_copied_again_from_its_original_by_digest() {
    let registry = Arc::new(Registry::default());
    let (original, repo, d) = nth(3);
    registry.push(&original, &d);
    let mirror = mirror(&registry);
    let refs = audited(3);
    let in_use = &refs[&pinned(3)];
    assert_eq!(
        check_all(&mirror, &refs).await[&pinned(3)],
        Liveness::Missing
    );
    assert_eq!(
        repair(&mirror, &in_use.image, &in_use.originals).await,
        Repair::Repaired
    );
    let copies = registry.copies.lock().expect("lock").clone();
    assert_eq!(
        copies,
        vec![(
            format!("registry.example.com/app-3@{d}"),
            format!("{repo}:1.0")
        )]
    );
    assert_eq!(check_all(&mirror, &refs).await[&pinned(3)], Liveness::Alive);

    // Deleted again, after the mirror remembered it verified: asked again, copied again.
    registry.delete(&repo, &d);
    assert_eq!(
        repair(&mirror, &in_use.image, &in_use.originals).await,
        Repair::Repaired
    );
    assert_eq!(registry.copies.lock().expect("lock").len(), 2);
}

#[tokio::test]
async fn a_copy_whose_source_is_gone_too_is_not_repaired() {
    let registry = Arc::new(Registry::default());
    let (original, _, _) = nth(4);
    // The tag now names other content; the digest the workload pinned is gone.
    registry.push(&original, &digest("retagged"));
    let mirror = mirror(&registry);
    let refs = audited(4);
    let in_use = &refs[&pinned(4)];
    match repair(&mirror, &in_use.image, &in_use.originals).await {
        Repair::Failed { source_gone, why } => {
            assert!(source_gone, "{why}");
            assert!(why.contains("not found"), "{why}");
        }
        other => panic!("{other:?}"),
    }
    assert!(registry.copies.lock().expect("lock").is_empty());
    let none = repair(&mirror, &in_use.image, &BTreeSet::new()).await;
    assert!(
        matches!(&none, Repair::Failed { why, source_gone: false } if why.contains("no original")),
        "{none:?}"
    );
}

#[test]
fn an_original_that_does_not_lead_back_to_the_copy_is_not_used() {
    let registry = Arc::new(Registry::default());
    let mirror = mirror(&registry);
    let backup = image(&pinned(5));
    let (original, _, d) = nth(5);
    assert_eq!(
        pinned_original(&mirror, &original, &backup).map(|i| i.to_string()),
        Some(format!("registry.example.com/app-5:1.0@{d}"))
    );
    for other in [
        "registry.example.com/app-6:1.0",
        "registry.example.com/app-5:2.0",
    ] {
        assert_eq!(pinned_original(&mirror, other, &backup), None, "{other}");
    }
}

#[tokio::test]
async fn a_tag_two_digests_in_use_share_is_not_fought_over() {
    let registry = Arc::new(Registry::default());
    let (_, repo, _) = nth(8);
    let (old, new) = (digest("old"), digest("new"));
    // Copied when the tag named `old`, then again when upstream moved it to `new`.
    registry.push(&format!("{repo}:1.0"), &old);
    registry.push(&format!("{repo}:1.0"), &new);
    let mut refs = References::new();
    for (name, d) in [("before", &old), ("after", &new)] {
        let w = workload(
            Kind::Deployment,
            name,
            &[("app", &format!("{repo}:1.0@{d}"))],
            &[],
        );
        collect(&mut refs, &w, &policy());
    }
    let found = check_all(&mirror(&registry), &refs).await;
    assert!(found.values().all(|l| *l == Liveness::Alive), "{found:?}");
    // One request each, and one more, by digest, for the one whose tag moved on.
    assert_eq!(registry.requests.load(Ordering::SeqCst), 3);

    // Not shared: a tag that names another digest is a copy to make again.
    let mut alone = References::new();
    let w = workload(
        Kind::Deployment,
        "x",
        &[("app", &format!("{repo}:1.0@{old}"))],
        &[],
    );
    collect(&mut alone, &w, &policy());
    let found = check_all(&mirror(&registry), &alone).await;
    assert!(
        matches!(found.values().next(), Some(Liveness::WrongDigest { found }) if *found == new.to_string()),
        "{found:?}"
    );
}
