//! Log output: human-readable text or one JSON object per line, to stderr, filtered by the
//! `log_level` setting (already validated as a tracing filter when the settings loaded).

use std::io::IsTerminal as _;

use tracing_subscriber::EnvFilter;

use crate::settings::LogFormat;

/// kube's HTTP layer logs every failed request at ERROR ("failed with error client error
/// (Connect)"), without saying which call or why; image-cloner reports each failure itself,
/// with its context and cause. Silenced unless the filter names kube_client itself.
const KUBE_HTTP_TRACE: &str = "kube_client::client::builder=off";

/// The filter to install: the setting, plus [`KUBE_HTTP_TRACE`] unless it speaks of kube_client.
fn directives(level: &str) -> String {
    if level.contains("kube_client") {
        level.to_owned()
    } else {
        format!("{level},{KUBE_HTTP_TRACE}")
    }
}

/// Installs the global subscriber. Call once, after the settings loaded.
pub fn init(format: LogFormat, level: &str) {
    let filter = EnvFilter::try_new(directives(level)).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour codes only for a person at a terminal, never into journald or a log file.
        .with_ansi(std::io::stderr().is_terminal());
    match format {
        LogFormat::Text => builder.with_target(false).init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .init(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kube_http_errors_are_silenced_unless_asked_for() {
        assert_eq!(directives("info"), format!("info,{KUBE_HTTP_TRACE}"));
        assert_eq!(directives("kube_client=debug"), "kube_client=debug");
        for level in ["info", "image_cloner=debug,warn", "trace"] {
            assert!(EnvFilter::try_new(directives(level)).is_ok(), "{level}");
        }
    }
}
