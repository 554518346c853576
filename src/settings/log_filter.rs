//! The `log_level` setting: the part of tracing's `EnvFilter` syntax a person means.
//!
//! `EnvFilter` reads any word it does not know as a target: `-1`, `99999`, `1.5` or a typo
//! such as `inof` become "log only events from the module named `inof`", and the daemon then
//! writes no line at all, silently. So a directive is taken only when it is a level, or a
//! target and/or span filter followed by `=level`:
//!
//! ```text
//! info                               a level: error, warn, info, debug, trace or off
//! info,image_cloner=debug            a default level, then a Rust module path and its level
//! kube_runtime[reconcile]=trace      a span filter, as tracing-subscriber documents it
//! [reconcile{object.name=web}]=debug
//! ```

use tracing_subscriber::EnvFilter;

const LEVELS: [&str; 6] = ["error", "warn", "info", "debug", "trace", "off"];

/// The filter with its directives trimmed and rejoined (`info, x=debug` → `info,x=debug`), or
/// why it is not one.
pub(super) fn parse(s: &str) -> Result<String, String> {
    let directives: Vec<&str> = s
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .collect();
    if directives.is_empty() {
        return Err("no level given".to_owned());
    }
    for d in &directives {
        directive(d).map_err(|why| format!("{d:?}: {why}"))?;
    }
    let filter = directives.join(",");
    // tracing has the last word: a span field's value may be a pattern it cannot compile.
    EnvFilter::try_new(&filter).map_err(|e| e.to_string())?;
    Ok(filter)
}

fn is_level(s: &str) -> bool {
    LEVELS.iter().any(|l| l.eq_ignore_ascii_case(s))
}

fn directive(d: &str) -> Result<(), &'static str> {
    // The level follows the last '=': a span's field filter `{name=web}` comes before it.
    let Some((selector, level)) = d.rsplit_once('=') else {
        return if is_level(d) {
            Ok(())
        } else {
            Err("not a level (error, warn, info, debug, trace, off), and a target needs =LEVEL")
        };
    };
    if !is_level(level) {
        return Err("the part after '=' is not a level (error, warn, info, debug, trace, off)");
    }
    let (target, span) = match selector.split_once('[') {
        Some((target, rest)) => (
            target,
            Some(
                rest.strip_suffix(']')
                    .ok_or("a span filter is [name] or [name{field=value}]")?,
            ),
        ),
        None => (selector, None),
    };
    if target.is_empty() && span.is_none() {
        return Err("a target (a Rust module path) or a [span] must come before '='");
    }
    if !target.is_empty() && !is_module_path(target) {
        return Err(
            "the target is not a Rust module path such as image_cloner or kube_runtime::controller",
        );
    }
    match span {
        Some(span) if !is_span_filter(span) => {
            Err("a span filter is [name] or [name{field=value}]")
        }
        _ => Ok(()),
    }
}

/// `ident(::ident)*`, as `module_path!()` writes a target.
fn is_module_path(s: &str) -> bool {
    s.split("::").all(|part| {
        let mut chars = part.chars();
        chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
    })
}

/// `name`, `name{fields}` or `{fields}`: a span name of identifier characters, and fields that
/// hold no bracket or brace of their own.
fn is_span_filter(s: &str) -> bool {
    let (name, fields) = match s.split_once('{') {
        Some((name, rest)) => match rest.strip_suffix('}') {
            Some(fields) => (name, Some(fields)),
            None => return false,
        },
        None => (s, None),
    };
    let name_ok = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':'));
    let fields_ok =
        fields.is_none_or(|f| !f.trim().is_empty() && !f.contains(['{', '}', '[', ']']));
    name_ok && fields_ok && !(name.is_empty() && fields.is_none())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_and_directives_are_taken() {
        for (given, kept) in [
            ("info", "info"),
            ("DEBUG", "DEBUG"),
            ("off", "off"),
            ("info, image_cloner=debug", "info,image_cloner=debug"),
            (
                "warn,kube_runtime::controller=trace,",
                "warn,kube_runtime::controller=trace",
            ),
            (
                "kube_runtime[reconcile]=trace",
                "kube_runtime[reconcile]=trace",
            ),
            (
                "[reconcile{object.name=web}]=debug",
                "[reconcile{object.name=web}]=debug",
            ),
            ("image_cloner[{name}]=info", "image_cloner[{name}]=info"),
        ] {
            assert_eq!(parse(given).as_deref(), Ok(kept), "{given}");
        }
    }

    #[test]
    fn what_tracing_would_read_as_a_target_is_refused() {
        for bad in [
            "-1",
            "99999",
            "1.5",
            " ",
            "",
            ",",
            "inof",
            "image_cloner",
            "info,hyper",
            "image_cloner=loud",
            "=debug",
            "my-crate=debug",
            "a::=debug",
            "x[span=debug",
            "x[]=debug",
            "x[s{}]=debug",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} was taken");
        }
    }
}
