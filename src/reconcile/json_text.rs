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
