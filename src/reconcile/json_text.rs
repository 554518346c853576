//! JSON text written by hand where serde's general path costs more than the text: the
//! original-images annotation, and an Event's body.

/// `s` as a JSON string, escaped as `serde_json` escapes it: `"`, `\` and the control
/// characters, the common ones by name and the rest as `\u00XX`; everything else as it is.
pub(crate) fn push_json_string(out: &mut String, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push('"');
    let mut plain_from = 0;
    for (i, b) in s.bytes().enumerate() {
        // The escape by name, or `None` for one written as `\u00XX`.
        let named = match b {
            b'"' => Some("\\\""),
            b'\\' => Some("\\\\"),
            b'\n' => Some("\\n"),
            b'\r' => Some("\\r"),
            b'\t' => Some("\\t"),
            0x08 => Some("\\b"),
            0x0c => Some("\\f"),
            0x00..=0x1f => None,
            _ => continue,
        };
        // Every byte matched above is ASCII, so `i` is a character boundary.
        out.push_str(&s[plain_from..i]);
        plain_from = i + 1;
        match named {
            Some(escape) => out.push_str(escape),
            None => {
                out.push_str("\\u00");
                out.push(char::from(HEX[usize::from(b >> 4)]));
                out.push(char::from(HEX[usize::from(b & 0xf)]));
            }
        }
    }
    out.push_str(&s[plain_from..]);
    out.push('"');
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
