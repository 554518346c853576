//! The layers the `config` crate merges, in rising precedence: the TOML file, the bare
//! environment names of the original ConfigMap, the `IMAGE_CLONER_*` names, the flags. Each
//! value carries where it came from, for error messages and `check-config`.

use std::path::Path;

use config::{Config, File, FileFormat, Map, Source, Value, ValueKind};

use crate::settings::spec::{ENV_PREFIX, SPECS, Spec};

/// A layer built from key/value pairs, each value tagged with where it came from.
#[derive(Debug, Clone)]
struct Layer(Map<String, Value>);

impl Source for Layer {
    fn clone_into_box(&self) -> Box<dyn Source + Send + Sync> {
        Box::new(self.clone())
    }
    fn collect(&self) -> Result<Map<String, Value>, config::ConfigError> {
        Ok(self.0.clone())
    }
}

fn value(origin: String, v: &str) -> Value {
    Value::new(Some(&origin), ValueKind::String(v.to_owned()))
}

/// Service links: Kubernetes injects `<SERVICE>_SERVICE_HOST`, `<SERVICE>_PORT_…` into every
/// pod for each Service in the namespace, so a Service named `image-cloner` produces
/// `IMAGE_CLONER_PORT=tcp://…`. Those are not settings and must not be reported as typos.
fn is_service_link(rest: &str) -> bool {
    rest == "PORT" || rest.starts_with("PORT_") || rest.starts_with("SERVICE_")
}

fn env_layers(env: &[(String, String)], warnings: &mut Vec<String>) -> (Layer, Layer) {
    let mut bare = Map::new();
    let mut prefixed = Map::new();
    for (name, v) in env {
        if v.is_empty() {
            continue;
        }
        if let Some(spec) = SPECS.iter().find(|s| {
            s.bare_env && s.key.eq_ignore_ascii_case(name) && *name == name.to_ascii_uppercase()
        }) {
            bare.insert(
                spec.key.to_owned(),
                value(format!("environment variable {name}"), v),
            );
        } else if let Some(rest) = name.strip_prefix(ENV_PREFIX) {
            match Spec::find(&rest.to_ascii_lowercase()) {
                Some(spec) if rest == rest.to_ascii_uppercase() => {
                    prefixed.insert(spec.key.to_owned(), value(format!("environment variable {name}"), v));
                }
                _ if is_service_link(rest) => {}
                _ => warnings.push(format!("environment variable {name} is not a setting and is ignored (see `image-cloner check-config --help`)")),
            }
        }
    }
    (Layer(bare), Layer(prefixed))
}

/// The flags given on the command line, by key.
fn flag_layer(flags: &[(&'static str, String)]) -> Layer {
    Layer(
        flags
            .iter()
            .map(|(k, v)| {
                (
                    (*k).to_owned(),
                    value(format!("flag --{}", k.replace('_', "-")), v),
                )
            })
            .collect(),
    )
}

/// Every layer merged into one map of key → value (with its origin).
pub(super) fn merge(
    file_path: &Path,
    required: bool,
    env: &[(String, String)],
    flags: &[(&'static str, String)],
    warnings: &mut Vec<String>,
) -> Result<Map<String, Value>, config::ConfigError> {
    let (bare, prefixed) = env_layers(env, warnings);
    let path_str = file_path.to_string_lossy().into_owned();
    Config::builder()
        .add_source(File::new(&path_str, FileFormat::Toml).required(required))
        .add_source(bare)
        .add_source(prefixed)
        .add_source(flag_layer(flags))
        .build()
        .and_then(|c| c.collect())
}
