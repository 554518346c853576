//! Log output: human-readable text or one JSON object per line, to stderr, filtered by the
//! `log_level` setting (already validated as a tracing filter when the settings loaded).

use std::io::IsTerminal as _;

use tracing_subscriber::EnvFilter;

use crate::settings::LogFormat;

/// Directives added to the filter unless it names their crate (`kube_client`,
/// `kube_runtime`) itself:
/// - kube's HTTP layer logs every failed request at ERROR ("failed with error client error
///   (Connect)"), without saying which call or why; image-cloner reports each failure itself,
///   with its context and cause.
/// - kube-runtime's controller wraps each reconcile in a span of its own ("reconciling
///   object"), entered and left whenever the controller polls its reconciles in flight — all
///   of them, at each of its wake-ups — and whenever a reconcile's task runs. In the bench's
///   cold start of the daemon (2,000 workloads, up to 1,024 reconciles waiting on copies)
///   that was 4 million entries and exits, 1.2 of the daemon's 4.2 billion instructions
///   (callgrind), more than the reconciles' own work; image-cloner's own
///   `reconcile{namespace kind name}` span names the workload in every line already.
const QUIETED: [(&str, &str); 2] = [
    ("kube_client", "kube_client::client::builder=off"),
    ("kube_runtime", "kube_runtime::controller=warn"),
];

/// The filter to install: the setting, plus each of [`QUIETED`] unless it speaks of its crate.
fn directives(level: &str) -> String {
    let mut directives = level.to_owned();
    for (krate, directive) in QUIETED {
        if !level.contains(krate) {
            directives.push(',');
            directives.push_str(directive);
        }
    }
    directives
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
    fn kube_http_errors_and_the_controller_span_are_off_unless_asked_for() {
        let quiet = "kube_client::client::builder=off,kube_runtime::controller=warn";
        assert_eq!(directives("info"), format!("info,{quiet}"));
        assert_eq!(
            directives("kube_client=debug"),
            "kube_client=debug,kube_runtime::controller=warn"
        );
        assert_eq!(
            directives("kube_runtime=debug,info"),
            "kube_runtime=debug,info,kube_client::client::builder=off"
        );
        for level in ["info", "image_cloner=debug,warn", "trace"] {
            assert!(EnvFilter::try_new(directives(level)).is_ok(), "{level}");
        }
    }

    /// What the filter decides for kube-runtime's "reconciling object" span, at `level`.
    fn controller_span_enabled(level: &str) -> bool {
        use tracing_subscriber::layer::SubscriberExt as _;
        let subscriber = tracing_subscriber::registry()
            .with(EnvFilter::try_new(directives(level)).expect("a valid filter"));
        tracing::subscriber::with_default(subscriber, || {
            !tracing::span!(target: "kube_runtime::controller", tracing::Level::INFO, "reconciling object")
                .is_disabled()
        })
    }

    #[test]
    fn the_controller_span_is_on_only_when_kube_runtime_is_named() {
        assert!(!controller_span_enabled("info"));
        assert!(!controller_span_enabled("debug"));
        assert!(controller_span_enabled("kube_runtime=info,info"));
    }
}
