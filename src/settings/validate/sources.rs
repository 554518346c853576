//! The source-registry policy's settings: glob lists and `copy_private_sources`.

use config::ValueKind;

use super::Validator;
use crate::source_policy::{Glob, PrivateSources, SourceFilter, SourcePolicy};

impl Validator<'_> {
    pub(super) fn source_policy(&mut self) -> SourcePolicy {
        SourcePolicy {
            filter: SourceFilter {
                include: self.globs("source_include"),
                exclude: self.globs("source_exclude"),
            },
            private: self.private_sources(),
        }
    }

    fn origin_of(&self, key: &'static str) -> String {
        self.origins.get(key).cloned().unwrap_or_default()
    }

    /// A list of glob patterns; each bad one reported with why.
    fn globs(&mut self, key: &'static str) -> Vec<Glob> {
        let items = self.list(key, |_| true);
        let mut globs = Vec::new();
        for item in items {
            match Glob::parse(&item) {
                Ok(g) => globs.push(g),
                Err(e) => {
                    let origin = self.origin_of(key);
                    self.report(key, &format!("{item:?}"), &origin, Some(e.to_string()));
                }
            }
        }
        globs
    }

    /// `false`, `true` (a TOML boolean or the word) or a list of registries.
    fn private_sources(&mut self) -> PrivateSources {
        const KEY: &str = "copy_private_sources";
        if let Some(v) = self.map.get_mut(KEY)
            && let ValueKind::Boolean(b) = v.kind
        {
            v.kind = ValueKind::String(b.to_string());
        }
        let items = self.list(KEY, |_| true);
        PrivateSources::parse(&items).unwrap_or_else(|detail| {
            let origin = self.origin_of(KEY);
            self.report(
                KEY,
                &format!("{:?}", items.join(",")),
                &origin,
                Some(detail),
            );
            PrivateSources::None
        })
    }
}
