//! `copy_private_sources`: whose private images may be copied anyway.
//!
//! The promise is to copy *public* images. A private one copied into a backup repository that
//! may be public (new Docker Hub repositories are) leaks it, so by default no private source is
//! copied; an operator whose backup is private too names the registries (or `true`).

/// `false` (the default), `true`, or a list of registries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum PrivateSources {
    /// Private sources are never copied.
    #[default]
    None,
    /// Every private source is copied.
    All,
    /// Private sources of these registries (`host[:port]`, lowercase, `docker.io` for Docker
    /// Hub) are copied.
    Registries(Vec<String>),
}

impl PrivateSources {
    /// `false`, `true`, or comma-separated registries. `index.docker.io` and
    /// `registry-1.docker.io` mean Docker Hub, as image references do.
    pub fn parse(items: &[String]) -> Result<PrivateSources, String> {
        match items {
            [] => Ok(PrivateSources::None),
            [one] if one == "false" => Ok(PrivateSources::None),
            [one] if one == "true" => Ok(PrivateSources::All),
            list => {
                let mut out = Vec::new();
                for item in list {
                    if item == "true" || item == "false" {
                        return Err(format!("{item:?} cannot be mixed with registries"));
                    }
                    if !crate::image::reference::valid_domain(item) || item.contains('/') {
                        return Err(format!("{item:?} is not a registry host[:port]"));
                    }
                    out.push(canonical_registry(item));
                }
                Ok(PrivateSources::Registries(out))
            }
        }
    }

    /// Whether private images of `registry` (an image's domain) may be copied.
    pub fn allows(&self, registry: &str) -> bool {
        match self {
            PrivateSources::None => false,
            PrivateSources::All => true,
            PrivateSources::Registries(list) => {
                let registry = canonical_registry(registry);
                list.contains(&registry)
            }
        }
    }
}

fn canonical_registry(host: &str) -> String {
    match host.to_ascii_lowercase().as_str() {
        "index.docker.io" | "registry-1.docker.io" => "docker.io".to_owned(),
        h => h.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(items: &[&str]) -> Result<PrivateSources, String> {
        PrivateSources::parse(&items.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>())
    }

    #[test]
    fn false_true_or_registries() {
        assert_eq!(parse(&[]), Ok(PrivateSources::None));
        assert_eq!(parse(&["false"]), Ok(PrivateSources::None));
        assert_eq!(parse(&["true"]), Ok(PrivateSources::All));
        let some = parse(&["Registry.Example:5000", "index.docker.io"]).expect("registries");
        assert!(some.allows("registry.example:5000"));
        assert!(some.allows("docker.io"));
        assert!(!some.allows("registry.example"));
        assert!(!PrivateSources::None.allows("docker.io"));
        assert!(PrivateSources::All.allows("anything"));
    }

    #[test]
    fn bad_lists_say_which_item() {
        assert!(parse(&["true", "quay.io"]).is_err());
        let e = parse(&["quay.io/org"]).expect_err("a path is no registry");
        assert!(e.contains("\"quay.io/org\""), "{e}");
        assert!(parse(&["not a host"]).is_err());
    }
}
