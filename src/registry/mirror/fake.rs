//! A registry client made of maps, for the mirror's tests and those of its callers: manifests
//! by reference on both sides, and a copy that behaves as told.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use tokio::sync::{Notify, Semaphore};

use crate::image::manifest::RawManifest;
use crate::image::reference::{Digest, ImageRef};
use crate::registry::client::{LookupError, RegistryClient};
use crate::registry::skopeo::{CopyFormat, SkopeoError};

/// How the fake's copy behaves.
#[derive(Clone)]
pub(crate) enum CopyBehaviour {
    /// Pushes the source digest, which the backup then serves.
    Faithful,
    /// Pushes and reports the right digest, but the backup tag then serves another one.
    BackupServes(Digest),
    /// Never finishes (until the task is dropped).
    Hangs,
    /// Fails like a registry outage.
    Fails,
}

pub(crate) struct Fake {
    /// canonical reference → manifest, for both sides.
    pub(crate) manifests: Mutex<HashMap<String, RawManifest>>,
    pub(crate) copy: CopyBehaviour,
    pub(crate) copies: AtomicUsize,
    pub(crate) lookups: AtomicUsize,
    pub(crate) copy_started: Notify,
    /// When set, each copy waits for a permit ([`Fake::release`]) before it behaves as told.
    held: Option<Semaphore>,
}

impl Fake {
    pub(crate) fn new(copy: CopyBehaviour) -> Arc<Self> {
        Arc::new(Fake {
            manifests: Mutex::default(),
            copy,
            copies: AtomicUsize::new(0),
            lookups: AtomicUsize::new(0),
            copy_started: Notify::new(),
            held: None,
        })
    }

    /// A fake whose copies each wait for [`Fake::release`] before they behave as `copy` says.
    pub(crate) fn holding(copy: CopyBehaviour) -> Arc<Self> {
        let mut fake = Arc::into_inner(Self::new(copy)).expect("not shared yet");
        fake.held = Some(Semaphore::new(0));
        Arc::new(fake)
    }

    /// Lets one held copy go on.
    pub(crate) fn release(&self) {
        if let Some(held) = &self.held {
            held.add_permits(1);
        }
    }

    pub(crate) fn with(self: Arc<Self>, reference: &str, m: RawManifest) -> Arc<Self> {
        self.manifests.lock().expect("lock").insert(
            ImageRef::parse(reference)
                .expect("a valid reference")
                .canonical()
                .into_owned(),
            m,
        );
        self
    }

    fn get(&self, image: &ImageRef) -> Option<RawManifest> {
        self.lookups.fetch_add(1, Ordering::SeqCst);
        let map = self.manifests.lock().expect("lock");
        map.get(image.canonical().as_ref()).cloned().or_else(|| {
            // By digest: any manifest with that digest in the same repository.
            let d = image.digest()?;
            map.values().find(|m| &m.digest == d).cloned()
        })
    }
}

impl RegistryClient for Fake {
    fn digest<'a>(
        &'a self,
        image: &'a ImageRef,
    ) -> BoxFuture<'a, Result<Option<Digest>, LookupError>> {
        Box::pin(async move { Ok(self.get(image).map(|m| m.digest)) })
    }
    fn resolve<'a>(
        &'a self,
        image: &'a ImageRef,
    ) -> BoxFuture<'a, Result<Option<RawManifest>, LookupError>> {
        Box::pin(async move { Ok(self.get(image)) })
    }
    fn manifest<'a>(
        &'a self,
        image: &'a ImageRef,
    ) -> BoxFuture<'a, Result<Option<RawManifest>, LookupError>> {
        Box::pin(async move { Ok(self.get(image)) })
    }
    fn copy<'a>(
        &'a self,
        source: &'a ImageRef,
        dest: &'a ImageRef,
        _format: CopyFormat,
    ) -> BoxFuture<'a, Result<Digest, SkopeoError>> {
        Box::pin(async move {
            self.copies.fetch_add(1, Ordering::SeqCst);
            self.copy_started.notify_waiters();
            if let Some(held) = &self.held {
                held.acquire().await.expect("never closed").forget();
            }
            let pushed = source.digest().cloned().expect("copies are made by digest");
            let served = match &self.copy {
                CopyBehaviour::Faithful => pushed.clone(),
                CopyBehaviour::BackupServes(other) => other.clone(),
                CopyBehaviour::Hangs => std::future::pending().await,
                CopyBehaviour::Fails => {
                    return Err(SkopeoError::Unreachable {
                        command: crate::registry::skopeo::CommandLine("skopeo copy".into()),
                        summary: "connection refused".into(),
                        stderr: String::new(),
                    });
                }
            };
            self.manifests.lock().expect("lock").insert(
                dest.canonical().into_owned(),
                RawManifest::modern(served.clone()),
            );
            tokio::task::yield_now().await;
            Ok(pushed)
        })
    }
}
