//! Log output: human-readable text or one JSON object per line, to stderr, filtered by the
//! `log_level` setting (already validated as a tracing filter when the settings loaded).

use std::fmt;
use std::io::IsTerminal as _;
use std::time::SystemTime;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::FormatTime;

use super::log_fields::{PlainFields, PlainLines};
use crate::reconcile::time_text;
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

/// Each line's time, UTC to the microsecond (`2026-12-01T09:13:07.960939Z`), as
/// tracing-subscriber's default timer writes it, at a sixteenth of the cost: the default
/// formats seven numbers through `write!`, about 2,450 instructions a line (5.1 million in a
/// cold `run --once`, callgrind); humantime through `write!` was about 720;
/// `time_text::rfc3339_micros` about 150.
#[derive(Clone, Copy)]
struct Rfc3339Micros;

impl FormatTime for Rfc3339Micros {
    fn format_time(&self, w: &mut Writer<'_>) -> fmt::Result {
        write_time(SystemTime::now(), w)
    }
}

fn write_time(now: SystemTime, w: &mut impl fmt::Write) -> fmt::Result {
    match time_text::rfc3339_micros(now) {
        Some(text) => w.write_str(text.as_str()),
        // A clock set before 1970 or past 9999 still gets a line: the default's form of it.
        None => {
            let mut text = String::new();
            tracing_subscriber::fmt::time::SystemTime.format_time(&mut Writer::new(&mut text))?;
            w.write_str(&text)
        }
    }
}

/// Installs the global subscriber. Call once, after the settings loaded.
pub fn init(format: LogFormat, level: &str) {
    let filter = EnvFilter::try_new(directives(level)).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_timer(Rfc3339Micros)
        // Colour codes only for a person at a terminal, never into journald or a log file.
        .with_ansi(std::io::stderr().is_terminal());
    match format {
        LogFormat::Text => builder
            .fmt_fields(PlainFields)
            .event_format(PlainLines::new(Rfc3339Micros))
            .init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .init(),
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    fn time_at(since_epoch: Duration) -> String {
        let mut text = String::new();
        write_time(UNIX_EPOCH + since_epoch, &mut text).expect("written");
        text
    }

    #[test]
    fn times_are_utc_to_the_microsecond_as_the_default_timer_writes_them() {
        let cases = [
            (Duration::ZERO, "1970-01-01T00:00:00.000000Z"),
            (
                Duration::new(1_796_116_387, 960_939_123),
                "2026-12-01T09:13:07.960939Z",
            ),
            // A leap day, the last microsecond of a day, and of a year.
            (Duration::new(951_782_400, 0), "2000-02-29T00:00:00.000000Z"),
            (
                Duration::new(1_709_251_199, 999_999_999),
                "2024-02-29T23:59:59.999999Z",
            ),
            (
                Duration::new(1_798_761_599, 999_999_000),
                "2026-12-31T23:59:59.999999Z",
            ),
            (
                Duration::new(time_text::LAST_SECOND_OF_9999, 0),
                "9999-12-31T23:59:59.000000Z",
            ),
        ];
        for (since, expected) in cases {
            assert_eq!(time_at(since), expected, "{since:?}");
        }
    }

    /// A clock before 1970, which humantime's formatter panics on, still gets a line.
    #[test]
    fn a_clock_before_1970_does_not_stop_the_line() {
        let mut text = String::new();
        write_time(UNIX_EPOCH - Duration::from_secs(1), &mut text).expect("written");
        assert!(text.ends_with('Z'), "{text}");
    }

    /// The default timer's line and ours have the same form, so the bench and anyone's log
    /// parser read them alike.
    #[test]
    fn the_time_has_the_default_timers_form() {
        let mut ours = String::new();
        Rfc3339Micros
            .format_time(&mut Writer::new(&mut ours))
            .expect("written");
        let mut default = String::new();
        tracing_subscriber::fmt::time::SystemTime
            .format_time(&mut Writer::new(&mut default))
            .expect("written");
        let form = |t: &str| {
            t.chars()
                .map(|c| if c.is_ascii_digit() { '0' } else { c })
                .collect::<String>()
        };
        assert_eq!(form(&ours), "0000-00-00T00:00:00.000000Z");
        assert_eq!(form(&ours), form(&default));
        let ours = humantime::parse_rfc3339(&ours).expect("RFC 3339");
        let default = humantime::parse_rfc3339(&default).expect("RFC 3339");
        assert!(default.duration_since(ours).unwrap_or_default() < Duration::from_secs(5));
    }

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
