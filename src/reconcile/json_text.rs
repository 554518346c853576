//! JSON text written by hand where serde's general path costs more than the text: the
//! original-images annotation, and an Event's body.

/// `s` as a JSON string, escaped as `serde_json` escapes it: `"`, `\` and the control
/// characters, the common ones by name and the rest as `\u00XX`; everything else as it is.
///
/// Eight bytes are checked at a time ([`any_to_escape`]): the text written is image
/// references, names and notes, which almost never hold a byte to escape; checked byte by byte
/// with a `match`, it was ~10 instructions a byte (callgrind: 16 M of a cold `run --once`).
pub(crate) fn push_json_string(out: &mut String, s: &str) {
    let bytes = s.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push('"');
    let mut plain_from = 0;
    let mut i = 0;
    while i < bytes.len() {
        let end = (i + 8).min(bytes.len());
        if let Ok(word) = <[u8; 8]>::try_from(&bytes[i..end])
            && !any_to_escape(u64::from_le_bytes(word))
        {
            i = end;
            continue;
        }
        for (at, &b) in bytes.iter().enumerate().take(end).skip(i) {
            if let Some(escape) = escape_of(b) {
                // Every byte escaped is ASCII, so `at` is a character boundary.
                out.push_str(&s[plain_from..at]);
                plain_from = at + 1;
                escape.push_to(out);
            }
        }
        i = end;
    }
    out.push_str(&s[plain_from..]);
    out.push('"');
}

/// Whether any of the eight bytes of `word` is `"`, `\` or below 0x20: the bit tricks of
/// "Bit Twiddling Hacks" (`haszero`, `hasless`), exact as a yes or no for any bytes (a byte of
/// 0x80 or more never counts as below 0x20).
fn any_to_escape(word: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let has_zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGHS;
    let below_space = word.wrapping_sub(ONES * 0x20) & !word & HIGHS;
    let quote = has_zero(word ^ (ONES * u64::from(b'"')));
    let backslash = has_zero(word ^ (ONES * u64::from(b'\\')));
    below_space | quote | backslash != 0
}

/// How `b` is escaped, if it is.
enum Escape {
    Named(&'static str),
    /// `\u00XX`.
    Hex(u8),
}

impl Escape {
    fn push_to(self, out: &mut String) {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        match self {
            Escape::Named(escape) => out.push_str(escape),
            Escape::Hex(b) => {
                out.push_str("\\u00");
                out.push(char::from(HEX[usize::from(b >> 4)]));
                out.push(char::from(HEX[usize::from(b & 0xf)]));
            }
        }
    }
}

fn escape_of(b: u8) -> Option<Escape> {
    Some(match b {
        b'"' => Escape::Named("\\\""),
        b'\\' => Escape::Named("\\\\"),
        b'\n' => Escape::Named("\\n"),
        b'\r' => Escape::Named("\\r"),
        b'\t' => Escape::Named("\\t"),
        0x08 => Escape::Named("\\b"),
        0x0c => Escape::Named("\\f"),
        0x00..=0x1f => Escape::Hex(b),
        _ => return None,
    })
}

/// A JSON object written member by member into `out`: each key a constant of the caller's,
/// written as it is (no key needs escaping), each string value escaped by
/// [`push_json_string`].
pub(crate) struct JsonObject<'a> {
    out: &'a mut String,
    empty: bool,
}

impl<'a> JsonObject<'a> {
    /// Opens an object at the end of `out`.
    pub(crate) fn open(out: &'a mut String) -> Self {
        out.push('{');
        JsonObject { out, empty: true }
    }

    fn key(&mut self, key: &str) {
        debug_assert!(!key.contains(['"', '\\']) && !key.contains(|c: char| c.is_control()));
        if !self.empty {
            self.out.push(',');
        }
        self.empty = false;
        self.out.push('"');
        self.out.push_str(key);
        self.out.push_str("\":");
    }

    pub(crate) fn string(&mut self, key: &str, value: &str) {
        self.key(key);
        push_json_string(self.out, value);
    }

    /// A member only when there is a value: how serde leaves out a `None` that Kubernetes'
    /// types skip.
    pub(crate) fn optional(&mut self, key: &str, value: Option<&str>) {
        if let Some(value) = value {
            self.string(key, value);
        }
    }

    /// A value already JSON text (a number, a timestamp's quoted string).
    pub(crate) fn raw(&mut self, key: &str, json: &str) {
        self.key(key);
        self.out.push_str(json);
    }

    /// A nested object, written until it is closed.
    pub(crate) fn object(&mut self, key: &str) -> JsonObject<'_> {
        self.key(key);
        JsonObject::open(self.out)
    }

    pub(crate) fn close(self) {
        self.out.push('}');
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn written(s: &str) -> String {
        let mut out = String::new();
        push_json_string(&mut out, s);
        out
    }

    #[test]
    fn each_byte_to_escape_is_found_in_any_place_of_a_word() {
        for b in (0u8..0x20).chain([b'"', b'\\']) {
            for at in 0..8 {
                let mut word = *b"abcdefgh";
                word[at] = b;
                assert!(any_to_escape(u64::from_le_bytes(word)), "{b:#x} at {at}");
            }
        }
        for b in (0x20u8..=0xff).filter(|b| ![b'"', b'\\'].contains(b)) {
            assert!(!any_to_escape(u64::from_le_bytes([b; 8])), "{b:#x}");
        }
    }

    proptest! {
        #[test]
        fn a_word_needs_escaping_exactly_when_one_of_its_bytes_does(word: u64) {
            let bytewise = word
                .to_le_bytes()
                .iter()
                .any(|&b| b < 0x20 || b == b'"' || b == b'\\');
            prop_assert_eq!(any_to_escape(word), bytewise);
        }

        #[test]
        fn any_text_is_written_as_serde_json_writes_it(s in "\\PC{0,40}|[\\x00-\\x1f\"\\\\a-zé€😀]{0,40}") {
            prop_assert_eq!(written(&s), serde_json::to_string(&s).expect("JSON"));
        }
    }
}
