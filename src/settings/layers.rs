//! The layers the `config` crate merges, in rising precedence: the TOML file, the bare
//! environment names of the original ConfigMap, the `IMAGE_CLONER_*` names, the flags. Each
//! value carries where it came from, for error messages and `check-config`.

use std::collections::BTreeMap;
use std::path::Path;

use config::{Config, File, FileFormat, Map, Source, Value, ValueKind};

use crate::settings::spec::{ENV_PREFIX, Kind, SPECS, Spec, Task};

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

/// The two environment layers: the original ConfigMap's bare names and the `IMAGE_CLONER_*`
/// names. A setting `task` uses, given under both names with different values, is a problem:
/// nothing says which one the operator meant (the same value twice is fine).
fn env_layers(
    env: &[(String, String)],
    task: Task,
    warnings: &mut Vec<String>,
    problems: &mut Vec<String>,
) -> (Layer, Layer) {
    let mut bare: BTreeMap<&'static str, (&str, &str)> = BTreeMap::new();
    let mut prefixed: BTreeMap<&'static str, (&str, &str)> = BTreeMap::new();
    for (name, v) in env {
        if v.is_empty() {
            continue;
        }
        if let Some(spec) = SPECS
            .iter()
            .find(|s| s.bare_env_name().as_deref() == Some(name.as_str()))
        {
            bare.insert(spec.key, (name, v));
        } else if let Some(rest) = name.strip_prefix(ENV_PREFIX) {
            match Spec::find(&rest.to_ascii_lowercase()) {
                Some(spec) if rest == rest.to_ascii_uppercase() => {
                    prefixed.insert(spec.key, (name, v));
                }
                _ if is_service_link(rest) => {}
                _ => warnings.push(format!("environment variable {name} is not a setting and is ignored (see `image-cloner check-config --help`)")),
            }
        }
    }
    for (key, (p_name, p_value)) in &prefixed {
        let Some(spec) = Spec::find(key).filter(|s| s.used_by(task)) else {
            continue;
        };
        if let Some((b_name, b_value)) = bare.get(key)
            && normalized(key, b_value) != normalized(key, p_value)
        {
            let expected = spec.expected;
            problems.push(format!(
                "conflicting setting {key} = {b_value:?} (from environment variable {b_name}) and {p_value:?} (from environment variable {p_name}): expected one value, set under one name or the same under both; {expected}"
            ));
        }
    }
    let layer = |m: BTreeMap<&'static str, (&str, &str)>| {
        Layer(
            m.into_iter()
                .map(|(k, (name, v))| {
                    (
                        k.to_owned(),
                        value(format!("environment variable {name}"), v),
                    )
                })
                .collect(),
        )
    };
    (layer(bare), layer(prefixed))
}

/// A value as the loader will read it: a list's items trimmed, empty items dropped (so
/// `a,b` and `a, b` are the same list); any other value trimmed.
fn normalized(key: &str, v: &str) -> Vec<String> {
    match Spec::find(key).map(|s| s.kind) {
        Some(Kind::List) => v
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
        _ => vec![v.trim().to_owned()],
    }
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

/// Every layer merged into one map of key → value (with its origin); conflicting environment
/// names go to `problems`.
pub(super) fn merge(
    file_path: &Path,
    required: bool,
    env: &[(String, String)],
    flags: &[(&'static str, String)],
    task: Task,
    warnings: &mut Vec<String>,
    problems: &mut Vec<String>,
) -> Result<Map<String, Value>, config::ConfigError> {
    let (bare, prefixed) = env_layers(env, task, warnings, problems);
    let (file, from_file) = file_layer(file_path, required)?;
    let merged = Config::builder()
        .add_source(file)
        .add_source(bare)
        .add_source(prefixed)
        .add_source(flag_layer(flags))
        .build()
        .and_then(|c| c.collect())?;
    // Merging rebuilds a table without its origin; only the file can hold one.
    Ok(merged
        .into_iter()
        .map(|(k, v)| match v.origin() {
            Some(_) => (k, v),
            None => (k, Value::new(Some(&from_file), v.kind)),
        })
        .collect())
}

/// The TOML file's top-level values, each tagged `config file <path>` (the config crate would
/// tag them with a path made relative to the working directory), and that tag.
fn file_layer(path: &Path, required: bool) -> Result<(Layer, String), config::ConfigError> {
    let path_str = path.to_string_lossy().into_owned();
    let from_file = format!("config file {path_str}");
    let values = File::new(&path_str, FileFormat::Toml)
        .required(required)
        .collect()?;
    let layer = Layer(
        values
            .into_iter()
            .map(|(k, v)| (k, Value::new(Some(&from_file), v.kind)))
            .collect(),
    );
    Ok((layer, from_file))
}
