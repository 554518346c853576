//! The text log's lines, written as tracing-subscriber's default (`Full`) format and
//! `DefaultFields` write them, at less than half their cost.
//!
//! Every line carries the workload's span (`reconcile{namespace="…" kind=… name="…"}`) and
//! its own fields, and a cold `run --once` writes 2,100 of them: the default visitor spent
//! ~9,900 instructions a line there (19.8 M in all, callgrind), most of it `Debug`-quoting
//! strings that need no escape and passing the message through its ANSI-sanitizing writer one
//! character at a time. [`PlainFields`] writes the same bytes: a string that needs no escape is
//! copied between quotes, a message with no control character is copied whole, and everything
//! else (an error's sources, any other `Debug` value, a string to escape) is written exactly
//! as the default does, by the default's own code where it can be reused. [`PlainLines`] writes
//! the rest of the line — time, level, the spans and their fields — with plain writes where the
//! default goes through `write!` five times a line (~1,700 instructions of the ~6,700 a line
//! cost). With colours on (a terminal) both are the default formatters.

use std::fmt::{self, Write as _};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::field::{RecordFields, VisitOutput as _};
use tracing_subscriber::fmt::format::{DefaultFields, DefaultVisitor, Format, Full, Writer};
use tracing_subscriber::fmt::time::FormatTime;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

/// The text format's line formatter: the default `Full` format's output (its target left out,
/// as `logging::init` sets it), written faster.
pub(super) struct PlainLines<T> {
    timer: T,
    /// What a terminal gets, colours and all.
    coloured: Format<Full, T>,
}

impl<T: FormatTime + Clone> PlainLines<T> {
    pub(super) fn new(timer: T) -> Self {
        PlainLines {
            coloured: tracing_subscriber::fmt::format()
                .with_target(false)
                .with_timer(timer.clone()),
            timer,
        }
    }
}

impl<S, N, T> FormatEvent<S, N> for PlainLines<T>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    T: FormatTime,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        if writer.has_ansi_escapes() {
            return self.coloured.format_event(ctx, writer, event);
        }
        if self.timer.format_time(&mut writer).is_err() {
            writer.write_str("<unknown time>")?;
        }
        writer.write_char(' ')?;
        writer.write_str(level_text(event.metadata().level()))?;
        writer.write_char(' ')?;
        if let Some(scope) = ctx.event_scope() {
            let mut seen = false;
            for span in scope.from_root() {
                writer.write_str(span.metadata().name())?;
                seen = true;
                let extensions = span.extensions();
                if let Some(fields) = extensions.get::<FormattedFields<N>>()
                    && !fields.is_empty()
                {
                    writer.write_char('{')?;
                    writer.write_str(fields)?;
                    writer.write_char('}')?;
                }
                writer.write_char(':')?;
            }
            if seen {
                writer.write_char(' ')?;
            }
        }
        ctx.format_fields(writer.by_ref(), event)?;
        writer.write_char('\n')
    }
}

/// A level as the default format writes it without colours: five characters, right-aligned.
fn level_text(level: &Level) -> &'static str {
    match *level {
        Level::TRACE => "TRACE",
        Level::DEBUG => "DEBUG",
        Level::INFO => " INFO",
        Level::WARN => " WARN",
        Level::ERROR => "ERROR",
    }
}

/// The text format's field formatter: `DefaultFields`' output, written faster.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct PlainFields;

impl<'writer> FormatFields<'writer> for PlainFields {
    fn format_fields<R: RecordFields>(&self, writer: Writer<'writer>, fields: R) -> fmt::Result {
        if writer.has_ansi_escapes() || !writer.sanitizes_ansi_escapes() {
            return DefaultFields::new().format_fields(writer, fields);
        }
        let mut gathered = Gathered {
            out: writer,
            text: [0; GATHERED_BYTES],
            len: 0,
        };
        let mut visitor = PlainVisitor {
            writer: Writer::new(&mut gathered),
            is_empty: true,
            result: Ok(()),
        };
        fields.record(&mut visitor);
        let result = visitor.result;
        result.and_then(|()| gathered.flush())
    }
}

/// Up to this much of the fields' text is gathered before it is written on.
const GATHERED_BYTES: usize = 256;

/// The fields' text gathered on the stack and written on in one piece: a span's fields go into
/// an empty `String` of their own, which a dozen small writes grew three times (callgrind, cold
/// `run --once`: 9,312 reallocations → 3,316 with its 2,000 reconcile spans gathered). Whole
/// pieces are gathered, so the text is always whole characters.
struct Gathered<'w> {
    out: Writer<'w>,
    text: [u8; GATHERED_BYTES],
    len: usize,
}

impl Gathered<'_> {
    fn flush(&mut self) -> fmt::Result {
        let text = std::str::from_utf8(&self.text[..self.len]).map_err(|_| fmt::Error)?;
        self.out.write_str(text)?;
        self.len = 0;
        Ok(())
    }
}

impl fmt::Write for Gathered<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if self.len + s.len() > GATHERED_BYTES {
            self.flush()?;
            if s.len() > GATHERED_BYTES {
                return self.out.write_str(s);
            }
        }
        self.text[self.len..self.len + s.len()].copy_from_slice(s.as_bytes());
        self.len += s.len();
        Ok(())
    }

    /// An ASCII character stored as its byte. `fmt::Write`'s own encodes every character into
    /// a buffer and calls `write_str` (a `memcpy` for one byte): the quotes, `=` and spaces
    /// around the fields are ~20 characters a line (callgrind, cold `run --once`: 42,702 of
    /// them, ~51 instructions each).
    fn write_char(&mut self, c: char) -> fmt::Result {
        match u8::try_from(c) {
            Ok(byte) if byte.is_ascii() && self.len < GATHERED_BYTES => {
                self.text[self.len] = byte;
                self.len += 1;
                Ok(())
            }
            _ => self.write_str(c.encode_utf8(&mut [0; 4])),
        }
    }
}

struct PlainVisitor<'a> {
    writer: Writer<'a>,
    is_empty: bool,
    result: fmt::Result,
}

impl PlainVisitor<'_> {
    /// The space before every field but the first.
    fn pad(&mut self) -> fmt::Result {
        if self.is_empty {
            self.is_empty = false;
            Ok(())
        } else {
            self.writer.write_char(' ')
        }
    }

    /// `name=`, a raw identifier's `r#` left out.
    fn name(&mut self, field: &Field) -> fmt::Result {
        let name = field.name();
        self.writer
            .write_str(name.strip_prefix("r#").unwrap_or(name))?;
        self.writer.write_char('=')
    }

    fn message(&mut self, value: &dyn fmt::Debug) -> fmt::Result {
        self.pad()?;
        write!(Sanitized(&mut self.writer), "{value:?}")
    }
}

/// Fields of the `log` crate's records, which the line's metadata already shows (the default
/// visitor leaves them out too).
fn is_log_metadata(field: &Field) -> bool {
    field.name().starts_with("log.")
}

impl Visit for PlainVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if self.result.is_err() || is_log_metadata(field) {
            return;
        }
        self.result = if field.name() == "message" {
            self.message(&format_args!("{value}"))
        } else {
            self.pad()
                .and_then(|()| self.name(field))
                .and_then(|()| match needs_no_escape(value) {
                    true => {
                        self.writer.write_char('"')?;
                        self.writer.write_str(value)?;
                        self.writer.write_char('"')
                    }
                    false => write!(self.writer, "{value:?}"),
                })
        };
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        if self.result.is_err() || is_log_metadata(field) {
            return;
        }
        let mut default = DefaultVisitor::new(self.writer.by_ref(), self.is_empty);
        default.record_error(field, value);
        self.result = default.finish();
        self.is_empty = false;
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if self.result.is_err() || is_log_metadata(field) {
            return;
        }
        self.result = if field.name() == "message" {
            self.message(value)
        } else {
            self.pad()
                .and_then(|()| self.name(field))
                .and_then(|()| write!(self.writer, "{value:?}"))
        };
    }
}

/// Whether `str`'s `Debug` is the text between quotes: printable ASCII but `"` and `\`.
fn needs_no_escape(s: &str) -> bool {
    crate::reconcile::json_text::is_plain_printable(s)
}

/// What the default visitor's message writer does (tracing-subscriber's `EscapingWriter`):
/// the control characters a terminal acts on written as escapes, so a message cannot move the
/// cursor or recolour a terminal. Text with none of them is written whole.
struct Sanitized<'a, 'b>(&'a mut Writer<'b>);

impl fmt::Write for Sanitized<'_, '_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        // 0xc2 leads the UTF-8 encoding of every C1 control character (U+0080 to U+009F).
        if !s
            .bytes()
            .any(|b| matches!(b, 0x07 | 0x08 | 0x0c | 0x1b | 0x7f | 0xc2))
        {
            return self.0.write_str(s);
        }
        for ch in s.chars() {
            match ch {
                '\x1b' => self.0.write_str("\\x1b")?,
                '\x07' => self.0.write_str("\\x07")?,
                '\x08' => self.0.write_str("\\x08")?,
                '\x0c' => self.0.write_str("\\x0c")?,
                '\x7f' => self.0.write_str("\\x7f")?,
                ch if (0x80..=0x9f).contains(&u32::from(ch)) => {
                    write!(self.0, "\\u{{{:x}}}", u32::from(ch))?
                }
                ch => self.0.write_char(ch)?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "log_fields_tests.rs"]
mod tests;
