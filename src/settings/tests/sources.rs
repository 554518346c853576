//! The source-registry policy's settings: filters, `copy_private_sources`, the pull budget's
//! reserve.

use super::*;
use crate::source_policy::{Glob, PrivateSources};

fn globs(patterns: &[&str]) -> Vec<Glob> {
    patterns
        .iter()
        .map(|p| Glob::parse(p).expect("a valid pattern"))
        .collect()
}

#[test]
fn by_default_every_public_source_is_copied_and_five_pulls_are_kept() {
    let s = load(&inputs(&[("BACKUP_REGISTRY", "quay.io/my-org")]))
        .expect("valid")
        .settings;
    assert_eq!(s.sources, Default::default());
    assert_eq!(s.sources.private, PrivateSources::None);
    assert_eq!(s.pull_budget_reserve, 5);
    let shown = s.describe();
    let row = |key: &str| {
        shown
            .iter()
            .find(|(k, _, _)| *k == key)
            .expect("a row")
            .1
            .clone()
    };
    assert_eq!(row("source_include"), "(every source)");
    assert_eq!(row("copy_private_sources"), "false");
}

#[test]
fn lists_come_from_the_environment_and_the_file() {
    let s = load(&inputs(&[
        ("BACKUP_REGISTRY", "quay.io/my-org"),
        ("IMAGE_CLONER_SOURCE_INCLUDE", "docker.io/*, GHCR.io/*,,"),
        ("IMAGE_CLONER_SOURCE_EXCLUDE", "*.internal/*"),
        (
            "IMAGE_CLONER_COPY_PRIVATE_SOURCES",
            "registry.corp:5000,index.docker.io",
        ),
        ("IMAGE_CLONER_PULL_BUDGET_RESERVE", "20"),
    ]))
    .expect("valid")
    .settings;
    assert_eq!(
        s.sources.filter.include,
        globs(&["docker.io/*", "ghcr.io/*"])
    );
    assert_eq!(s.sources.filter.exclude, globs(&["*.internal/*"]));
    assert_eq!(
        s.sources.private,
        PrivateSources::Registries(vec!["registry.corp:5000".into(), "docker.io".into()])
    );
    assert_eq!(s.pull_budget_reserve, 20);

    let mut file = tempfile::NamedTempFile::new().expect("a temp file");
    writeln!(
        file,
        "copy_private_sources = true\nsource_exclude = [\"*.internal/*\", \"docker.io/library/busybox\"]"
    )
    .expect("write");
    let mut i = inputs(&[("BACKUP_REGISTRY", "quay.io/my-org")]);
    i.config_file = Some(file.path().to_owned());
    let s = load(&i).expect("valid").settings;
    assert_eq!(s.sources.private, PrivateSources::All);
    assert_eq!(
        s.sources.filter.exclude,
        globs(&["*.internal/*", "docker.io/library/busybox"])
    );
}

#[test]
fn bad_values_are_named_with_why() {
    let all = problems(&inputs(&[
        ("BACKUP_REGISTRY", "quay.io/my-org"),
        ("IMAGE_CLONER_SOURCE_EXCLUDE", "*.internal/*,docker.io"),
        ("IMAGE_CLONER_SOURCE_INCLUDE", "docker.io/{a,b}"),
        ("IMAGE_CLONER_COPY_PRIVATE_SOURCES", "true,quay.io"),
        ("IMAGE_CLONER_PULL_BUDGET_RESERVE", "-1"),
    ]))
    .join("\n");
    for expected in [
        "invalid setting source_exclude = \"docker.io\" (from environment variable IMAGE_CLONER_SOURCE_EXCLUDE)",
        "write docker.io/* for a registry",
        "invalid setting source_include = \"docker.io/{a\"",
        "invalid setting copy_private_sources = \"true,quay.io\"",
        "cannot be mixed with registries",
        "invalid setting pull_budget_reserve = \"-1\"",
    ] {
        assert!(all.contains(expected), "{expected:?} not in:\n{all}");
    }
}
