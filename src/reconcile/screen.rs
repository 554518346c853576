//! Step 1b of a reconcile: which of the sources the plan would copy are private. Their
//! registries are asked without credentials (an anonymous manifest HEAD, through the mirror:
//! cached per repository, behind the registry's rate-limit gate). Only sources on registries
//! that `copy_private_sources` does not allow are asked. A source whose privacy could not be
//! learnt is not copied either: it fails the reconcile (retried), it is never copied on a guess.

use std::collections::{BTreeMap, BTreeSet};

use futures::future::join_all;

use crate::reconcile::plan::{self, ContainerPlan, Policy};
use crate::registry::client::Visibility;
use crate::registry::mirror::{Mirror, MirrorError};

/// What the registries said, by canonical source reference.
#[derive(Debug, Default)]
pub struct Screened {
    /// Served only with credentials.
    pub private: BTreeSet<String>,
    /// Could not be told: not copied, and why.
    pub unknown: BTreeMap<String, MirrorError>,
}

/// Asks about every source in `plans` whose privacy decides whether it is copied.
pub async fn privacy(mirror: &Mirror, policy: &Policy, plans: &[ContainerPlan]) -> Screened {
    let sources = plan::privacy_to_check(plans, policy);
    let answers = join_all(sources.iter().map(|s| mirror.visibility(s))).await;
    let mut screened = Screened::default();
    for (source, answer) in sources.iter().zip(answers) {
        match answer {
            Ok(Visibility::Public) => {}
            Ok(Visibility::Private) => {
                // Told once per repository at info, where the answer was learnt (the mirror).
                tracing::debug!(image = %source, "private source: not copied (copy_private_sources)");
                screened.private.insert(source.canonical().into_owned());
            }
            Err(e) => {
                tracing::warn!(image = %source, reason = e.reason(), error = %e, "privacy unknown: not copied");
                screened.unknown.insert(source.canonical().into_owned(), e);
            }
        }
    }
    screened
}
