//! The "public" registry the worlds copy from: a real registry seeded with multi-arch test
//! images (two platforms, two small layers each), shared by the worlds of a scenario as the
//! internet is shared by clusters.

use anyhow::{Context as _, Result};
use testbed::{ImageSpec, Platform, PushOptions, Registry, RegistryOptions};

/// An image in the source registry.
#[derive(Debug, Clone)]
pub struct Image {
    /// `repo:tag`, relative to the registry.
    pub name: String,
    pub digest: String,
}

pub struct Source {
    pub registry: Registry,
    pub images: Vec<Image>,
}

impl Source {
    /// A registry holding `count` two-platform images `team/app-<i>:1.<i>`, built from `seed`.
    pub fn start(count: usize, seed: u64, layer_size: usize) -> Result<Source> {
        Source::start_with(RegistryOptions::default(), count, seed, layer_size)
    }

    /// The same on a registry started with `options` (credentials, TLS).
    pub fn start_with(
        options: RegistryOptions,
        count: usize,
        seed: u64,
        layer_size: usize,
    ) -> Result<Source> {
        let registry = Registry::start(options).context("starting the source registry")?;
        let mut images = Vec::new();
        for i in 0..count {
            let spec = ImageSpec::new(format!("app-{i}"), seed.wrapping_add(i as u64))
                .with_layers(2, layer_size)
                .with_platforms(vec![Platform::linux_amd64(), Platform::linux_arm64()]);
            let built = spec.build().context("building a test image")?;
            let (repo, tag) = (format!("team/app-{i}"), format!("1.{i}"));
            let digest = testbed::push(
                &built,
                &registry,
                &repo,
                &tag,
                PushOptions {
                    all: true,
                    ..Default::default()
                },
            )
            .context("pushing a test image")?;
            images.push(Image {
                name: format!("{repo}:{tag}"),
                digest,
            });
        }
        Ok(Source { registry, images })
    }

    /// How a workload names image `i` when the source is reached at `host`.
    pub fn reference(&self, host: &str, i: usize) -> String {
        format!("{host}/{}", self.images[i % self.images.len()].name)
    }
}
