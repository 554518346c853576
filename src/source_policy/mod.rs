//! The source-registry policy: which sources are copied at all. Pure, at the bottom with
//! `image/` and `workload/`, so that `plan`, the daemon and `copy` apply the same rules.
//!
//! - [`SourceFilter`]: `source_include` / `source_exclude` globs over the normalized source
//!   repository (`docker.io/library/nginx`), decided from the reference alone;
//! - [`PrivateSources`]: `copy_private_sources`, which registries' private images may be
//!   copied anyway. Whether an image *is* private takes a registry request (an anonymous
//!   manifest HEAD, see `registry::client::Visibility`); this only says whose answer matters.

mod filter;
mod glob;
mod private;

pub use filter::{Excluded, SourceFilter};
pub use glob::{Glob, GlobError};
pub use private::PrivateSources;

use crate::image::reference::ImageRef;

/// The whole policy, as the settings give it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourcePolicy {
    pub filter: SourceFilter,
    pub private: PrivateSources,
}

impl SourcePolicy {
    /// Why `source` is not copied by the filters, if it is not.
    pub fn excluded(&self, source: &ImageRef) -> Option<Excluded> {
        self.filter.excluded(source)
    }

    /// Whether the registry must be asked if `source` is private before it is copied: no when
    /// its registry's private images may be copied anyway.
    pub fn must_check_privacy(&self, source: &ImageRef) -> bool {
        !self.private.allows(source.domain())
    }
}
