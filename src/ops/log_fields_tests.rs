use std::error::Error;

use proptest::prelude::*;
use tracing_subscriber::fmt::time::FormatTime;

use super::*;
use crate::ops::captured_lines::Captured;

/// An error with a chain of sources, each saying `text`.
#[derive(Debug)]
struct Failure {
    text: String,
    source: Option<Box<Failure>>,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "failed: {}", self.text)
    }
}

impl Error for Failure {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.source.as_deref().map(|e| e as &(dyn Error + 'static))
    }
}

/// Every kind of field image-cloner's lines carry, and the rest a visitor can be given, each
/// holding `s` where it can.
fn emit(s: &str) {
    let error = Failure {
        text: s.to_owned(),
        source: Some(Box::new(Failure {
            text: s.to_owned(),
            source: None,
        })),
    };
    let span =
        tracing::info_span!("reconcile", namespace = s, kind = %"Deployment", name = s, n = 3);
    let _entered = span.enter();
    tracing::info!("{s}");
    tracing::info!(
        container = s,
        from = s,
        to = "registry.example/mirror/app:1",
        "patched"
    );
    tracing::warn!(
        error = &error as &(dyn Error + 'static),
        r#type = s,
        count = 7u64,
        delta = -2i64,
        ok = true,
        ratio = 0.5,
        list = ?vec![s],
        shown = %s,
        "copy of {s} failed"
    );
    tracing::info!(log.target = "x", log.file = s, "from the log crate");
    tracing::info!(message = s, after = s);
    tracing::error!(reason = "");
    // Every level, a span without fields, and spans within spans.
    let inner = tracing::debug_span!("copy", image = s);
    let _inner = inner.enter();
    tracing::trace!(step = s, "deep");
    let bare = tracing::info_span!("bare");
    let _bare = bare.enter();
    tracing::debug!("three spans");
    drop((_bare, _inner, _entered));
    tracing::warn!(after = s, "no span");
}

/// A clock that always reads the same, so that lines written apart compare equal.
#[derive(Clone, Copy)]
struct Stopped;

impl FormatTime for Stopped {
    fn format_time(&self, w: &mut Writer<'_>) -> fmt::Result {
        w.write_str("2026-12-02T10:00:00.000000Z")
    }
}

/// A clock that cannot be read.
#[derive(Clone, Copy)]
struct Broken;

impl FormatTime for Broken {
    fn format_time(&self, _: &mut Writer<'_>) -> fmt::Result {
        Err(fmt::Error)
    }
}

/// What `emit(s)` writes through PlainLines and PlainFields (`plain`) or the defaults, both
/// as `logging::init` configures them (no target), with `timer`.
fn written_with<T: FormatTime + Clone + Send + Sync + 'static>(
    s: &str,
    plain: bool,
    ansi: bool,
    timer: T,
) -> String {
    let out = Captured::default();
    let builder = tracing_subscriber::fmt()
        .with_writer(out.clone())
        .with_ansi(ansi)
        .with_max_level(tracing::Level::TRACE)
        .with_timer(timer.clone())
        .with_target(false);
    if plain {
        let subscriber = builder
            .fmt_fields(PlainFields)
            .event_format(PlainLines::new(timer))
            .finish();
        tracing::subscriber::with_default(subscriber, || emit(s));
    } else {
        tracing::subscriber::with_default(builder.finish(), || emit(s));
    }
    out.text()
}

fn written(s: &str, plain: bool, ansi: bool) -> String {
    written_with(s, plain, ansi, Stopped)
}

#[test]
fn each_part_of_a_line_is_the_default_formats() {
    let ours = written("web-1", true, false);
    let lines: Vec<&str> = ours.lines().collect();
    assert_eq!(lines.len(), 9, "{ours}");
    assert_eq!(
        lines[1],
        "2026-12-02T10:00:00.000000Z  INFO reconcile{namespace=\"web-1\" kind=Deployment \
         name=\"web-1\" n=3}: patched container=\"web-1\" from=\"web-1\" \
         to=\"registry.example/mirror/app:1\""
    );
    assert!(
        lines[6].starts_with("2026-12-02T10:00:00.000000Z TRACE reconcile{"),
        "{}",
        lines[6]
    );
    assert!(
        lines[7].ends_with(" n=3}:copy{image=\"web-1\"}:bare: three spans"),
        "{}",
        lines[7]
    );
    assert_eq!(
        lines[8],
        "2026-12-02T10:00:00.000000Z  WARN no span after=\"web-1\""
    );
}

#[test]
fn a_clock_that_cannot_be_read_is_written_as_the_default_writes_it() {
    let ours = written_with("web-1", true, false, Broken);
    assert_eq!(ours, written_with("web-1", false, false, Broken));
    assert!(
        ours.starts_with("<unknown time>  INFO reconcile{"),
        "{ours}"
    );
}

#[test]
fn the_lines_are_the_default_formatters() {
    let s = "web-1";
    let ours = written(s, true, false);
    assert_eq!(ours, written(s, false, false));
    assert!(
        ours.contains(r#"reconcile{namespace="web-1" kind=Deployment name="web-1" n=3}: patched container="web-1""#),
        "{ours}"
    );
    assert_eq!(ours.lines().count(), 9, "{ours}");
}

#[test]
fn text_to_escape_is_escaped_as_the_default_escapes_it() {
    for s in [
        "quote \" and backslash \\",
        "tab\tnew line\ncarriage\r",
        "\x1b[31mred\x1b[0m bell\x07 back\x08 feed\x0c del\x7f",
        "c1 \u{80}\u{85}\u{9b}\u{9f} and \u{a0}",
        "é😀 and 'single'",
        "\u{200b}zero width, \u{301}combining",
        "",
    ] {
        assert_eq!(written(s, true, false), written(s, false, false), "{s:?}");
    }
}

#[test]
fn with_colours_it_is_the_default_formatter() {
    let s = "web \x1b[31m";
    let ours = written(s, true, true);
    assert_eq!(ours, written(s, false, true));
    assert!(ours.contains("\x1b["), "colours on: {ours:?}");
}

/// Fields longer than what is gathered before it is written on, alone and together.
#[test]
fn long_fields_are_written_as_the_default_writes_them() {
    for len in [100, 127, 128, 200, 255, 256, 257, 600] {
        let s: String = "abcdefghij".chars().cycle().take(len).collect();
        assert_eq!(written(&s, true, false), written(&s, false, false), "{len}");
    }
}

proptest! {
    #[test]
    fn any_text_is_written_as_the_default_writes_it(
        s in "\\PC{0,20}|[\\x00-\\x1f\\x7f\\u{80}-\\u{9f}\"\\\\'a-zé😀\\u{301}]{0,20}"
    ) {
        prop_assert_eq!(written(&s, true, false), written(&s, false, false));
    }

    #[test]
    fn a_string_needing_no_escape_is_its_debug_between_quotes(s in "\\PC{0,20}|[ -~]{0,20}") {
        if needs_no_escape(&s) {
            prop_assert_eq!(format!("{s:?}"), format!("\"{s}\""));
        }
    }
}
