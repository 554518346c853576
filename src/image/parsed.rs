//! References parsed once per text. A cluster names a few images from many workloads (a cold
//! start of the bench: 50 images in 2,000 Deployments), and planning parsed each workload's
//! images again: ~2,600 instructions a parse, where a kept reference is a lookup and a clone
//! of one string (callgrind, cold `run --once`: `ImageRef::parse` 5.2 M of `decide`'s 6.8 M).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use crate::image::reference::{ImageRef, ReferenceError};

/// Texts kept at most; past that the memory starts over (a cluster of more distinct images
/// only parses some again).
const MAX_KEPT: usize = 4096;

/// Parsed references by their text, shared by its clones. Only valid references are kept: an
/// invalid one is parsed (and reported) each time.
#[derive(Clone, Default)]
pub struct ParsedRefs {
    kept: Arc<Mutex<HashMap<Box<str>, ImageRef, foldhash::fast::RandomState>>>,
}

impl std::fmt::Debug for ParsedRefs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kept = self
            .kept
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len();
        f.debug_struct("ParsedRefs").field("kept", &kept).finish()
    }
}

impl ParsedRefs {
    /// `ImageRef::parse(text)`, from memory when `text` was parsed before.
    pub fn parse(&self, text: &str) -> Result<ImageRef, ReferenceError> {
        let mut kept = self.kept.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(image) = kept.get(text) {
            return Ok(image.clone());
        }
        let image = ImageRef::parse(text)?;
        if kept.len() >= MAX_KEPT {
            kept.clear();
        }
        kept.insert(text.into(), image.clone());
        Ok(image)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_text_parses_as_it_always_does_whether_kept_or_not() {
        let refs = ParsedRefs::default();
        for text in [
            "nginx",
            "nginx",
            "ghcr.io/a/b:1",
            "nginx",
            "Bad/Ref",
            "Bad/Ref",
            "",
        ] {
            assert_eq!(refs.parse(text), ImageRef::parse(text), "{text:?}");
        }
        let kept = refs.kept.lock().expect("not poisoned");
        assert_eq!(kept.len(), 2, "only the two valid texts are kept");
    }

    #[test]
    fn the_memory_is_bounded() {
        let refs = ParsedRefs::default();
        let shared = refs.clone();
        for i in 0..MAX_KEPT + 10 {
            let text = format!("registry.example/app-{i}:1");
            assert_eq!(shared.parse(&text), ImageRef::parse(&text));
        }
        let kept = refs.kept.lock().expect("not poisoned").len();
        assert!(kept <= MAX_KEPT, "{kept}");
        assert_eq!(kept, 10, "started over once full, shared by the clone");
    }
}
