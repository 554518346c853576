//! JSON text written by hand where serde's general path costs more than the text: the
//! original-images annotation, a patch's operations, and an Event's body.

/// `s` as a JSON string, escaped as `serde_json` escapes it: `"`, `\`, and the control
/// characters, the common ones by name and the rest as `\u00XX`; everything else as it is.
///
/// Eight bytes are checked at a time ([`escape_mask`]), and within a word only the bytes it
/// flags are looked at: the text written is mostly image references, names and notes, which
/// almost never hold a byte to escape, but the original-images annotation is JSON written
/// inside a JSON string, a quote every few bytes. Checked byte by byte with a `match`, it was
/// ~10 instructions a byte (callgrind: 16 M of a cold `run --once`); checking words but
/// walking every byte of a word with an escape, the annotation alone was ~3,200 instructions.
pub(crate) fn push_json_string(out: &mut String, s: &str) {
    let bytes = s.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push('"');
    let mut plain_from = 0;
    let (words, rest) = bytes.as_chunks::<8>();
    for (i, word) in words.iter().enumerate() {
        let flagged = escape_mask(u64::from_le_bytes(*word));
        if flagged != 0 {
            plain_from = push_escaped(out, s, plain_from, i * 8, flagged);
        }
    }
    if !rest.is_empty() {
        let flagged = escape_mask(last_word(bytes));
        if flagged != 0 {
            plain_from = push_escaped(out, s, plain_from, words.len() * 8, flagged);
        }
    }
    out.push_str(&s[plain_from..]);
    out.push('"');
}

/// The text between `plain_from` and each byte `flagged` in the word at `word_at`, then that
/// byte's escape, pushed onto `out`; where the plain text starts again.
///
/// The escapes are pushed a character at a time: through `push_str`, each was a call of
/// `memcpy` (callgrind: the original-images annotation, JSON inside a JSON string, has a quote
/// every few bytes).
fn push_escaped(
    out: &mut String,
    s: &str,
    mut plain_from: usize,
    word_at: usize,
    mut flagged: u64,
) -> usize {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes = s.as_bytes();
    while flagged != 0 {
        let at = word_at + (flagged.trailing_zeros() / 8) as usize;
        // Every byte escaped is ASCII, so `at` is a character boundary.
        out.push_str(&s[plain_from..at]);
        plain_from = at + 1;
        out.push('\\');
        match bytes[at] {
            b'"' => out.push('"'),
            b'\\' => out.push('\\'),
            b'\n' => out.push('n'),
            b'\r' => out.push('r'),
            b'\t' => out.push('t'),
            0x08 => out.push('b'),
            0x0c => out.push('f'),
            b => {
                out.push_str("u00");
                out.push(char::from(HEX[usize::from(b >> 4)]));
                out.push(char::from(HEX[usize::from(b & 0xf)]));
            }
        }
        flagged &= flagged - 1;
    }
    plain_from
}

/// The last `len % 8` bytes of `bytes` (some) as a word, its unused high bytes a plain `a`:
/// read as the word that ends the text when there is one, shifted, rather than copied byte by
/// byte into a padded array (a call of `memcpy` for every text).
fn last_word(bytes: &[u8]) -> u64 {
    const PAD: u64 = ONES * b'a' as u64;
    let tail = bytes.len() % 8;
    debug_assert!(tail != 0);
    let pad = PAD << (8 * tail);
    match bytes.last_chunk::<8>() {
        Some(end) => (u64::from_le_bytes(*end) >> (8 * (8 - tail))) | pad,
        None => {
            bytes
                .iter()
                .rev()
                .fold(0, |word, &b| (word << 8) | u64::from(b))
                | pad
        }
    }
}

/// `value` in decimal, as `Display` writes it, without `fmt`'s machinery (~1,000 instructions
/// a `format!` where this is a few dozen).
pub(crate) fn push_decimal(out: &mut String, mut value: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        // A remainder below 10 is a digit: the cast cannot truncate.
        digits[at] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            break;
        }
    }
    for &d in &digits[at..] {
        out.push(char::from(d));
    }
}

/// `value` in lowercase hexadecimal without leading zeros, as `{:x}` writes it.
pub(crate) fn push_hex(out: &mut String, value: u128) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let nibbles = (u128::BITS - value.leading_zeros()).div_ceil(4).max(1);
    for i in (0..nibbles).rev() {
        // Masked to four bits: an index below 16.
        out.push(char::from(DIGITS[((value >> (i * 4)) & 0xf) as usize]));
    }
}

const ONES: u64 = 0x0101_0101_0101_0101;
const LOWS: u64 = ONES * 0x7f;
const HIGHS: u64 = ONES * 0x80;

/// Whether every byte of `s` is printable ASCII other than `"` and `\`: text whose `Debug` is
/// itself between quotes. Eight bytes at a time, as [`push_json_string`] checks its text.
pub(crate) fn is_plain_printable(s: &str) -> bool {
    let (words, rest) = s.as_bytes().as_chunks::<8>();
    let last = (!rest.is_empty()).then(|| last_word(s.as_bytes()));
    words
        .iter()
        .map(|w| u64::from_le_bytes(*w))
        .chain(last)
        .all(|w| {
            // Below 0x20, a quote or a backslash; 0x80 or more; DEL.
            (escape_mask(w) | (w & HIGHS) | zero_bytes(w ^ (ONES * 0x7f))) == 0
        })
}

/// The high bit of each zero byte of `v`, and no other bit.
fn zero_bytes(v: u64) -> u64 {
    !(((v & LOWS) + LOWS) | v) & HIGHS
}

/// The high bit of each of the eight bytes of `word` that is `"`, `\` or below 0x20, and no
/// other bit. The carry-free forms of "Bit Twiddling Hacks"' byte tests: each byte's low seven
/// bits are added to without carrying into the next byte, so a flag is exact for its byte
/// whatever the others hold (a byte of 0x80 or more never counts as below 0x20).
fn escape_mask(word: u64) -> u64 {
    // A byte's low bits plus 0x60 reach 0x80 exactly when the byte is 0x20 or more.
    let below_space = !(((word & LOWS) + ONES * 0x60) | word) & HIGHS;
    let quote = zero_bytes(word ^ (ONES * u64::from(b'"')));
    let backslash = zero_bytes(word ^ (ONES * u64::from(b'\\')));
    below_space | quote | backslash
}

/// `value` as `serde_json` writes it (compact, an object's members in the map's order), with
/// every string — keys included — through [`push_json_string`]: through `Value`'s `Display`,
/// the one-member annotations object a patch adds to a workload without annotations was ~4,900
/// instructions (callgrind, cold `run --once`: 9.8 M of 2,000 patches), most of it serde's
/// escaping writer behind a `fmt::Write` adapter.
pub(crate) fn push_json_value(out: &mut String, value: &serde_json::Value) {
    use serde_json::Value;
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::String(s) => push_json_string(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                push_json_value(out, item);
            }
            out.push(']');
        }
        Value::Object(members) => {
            out.push('{');
            for (i, (key, item)) in members.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                push_json_string(out, key);
                out.push(':');
                push_json_value(out, item);
            }
            out.push('}');
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// Any JSON value: every kind, nested, with keys and strings that need escaping, and
    /// integers and floats of any size.
    fn any_value() -> impl Strategy<Value = serde_json::Value> {
        use serde_json::Value;
        let text = "\\PC{0,12}|[\\x00-\\x1f\"\\\\a-zé😀]{0,12}";
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            text.prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 32, 6, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::vec((text, inner), 0..6)
                    .prop_map(|members| Value::Object(members.into_iter().collect())),
            ]
        })
    }

    fn written(s: &str) -> String {
        let mut out = String::new();
        push_json_string(&mut out, s);
        out
    }

    /// The bytes a word's mask flags, by index.
    fn flagged(word: u64) -> Vec<usize> {
        let mask = escape_mask(word);
        (0..8).filter(|i| mask >> (i * 8 + 7) & 1 == 1).collect()
    }

    #[test]
    fn one_byte_to_escape_anywhere_makes_text_not_plain() {
        let plain = "abcdefgh'~ 0123!z";
        assert!(is_plain_printable(plain));
        let bad = (0u8..0x20)
            .chain([b'"', b'\\', 0x7f])
            .map(|b| char::from(b).to_string())
            .chain(["é".to_owned(), "\u{85}".to_owned()]);
        for text in bad {
            for at in 0..=plain.len() {
                let s = format!("{}{text}{}", &plain[..at], &plain[at..]);
                assert!(!is_plain_printable(&s), "{s:?}");
            }
        }
    }

    /// Every length around the words' edges, with a byte to escape at every place: the last,
    /// shorter word is read shifted out of the one that ends the text.
    #[test]
    fn a_byte_to_escape_is_found_at_any_place_of_a_text_of_any_length() {
        for len in 1..=25 {
            for at in 0..len {
                for escaped in ['"', '\\', '\n', '\u{1}'] {
                    let s: String = (0..len)
                        .map(|i| {
                            if i == at {
                                escaped
                            } else {
                                char::from(b'a' + i as u8)
                            }
                        })
                        .collect();
                    assert_eq!(
                        written(&s),
                        serde_json::to_string(&s).expect("JSON"),
                        "{s:?}"
                    );
                    assert!(!is_plain_printable(&s), "{s:?}");
                }
            }
        }
    }

    #[test]
    fn numbers_at_their_edges_are_written_as_display_writes_them() {
        for n in [0, 1, 9, 10, 99, 100, 4_096, u64::MAX - 1, u64::MAX] {
            let mut out = String::new();
            push_decimal(&mut out, n);
            assert_eq!(out, n.to_string());
        }
        for n in [0, 1, 0xf, 0x10, 0xff, 0x1_0000_0000, u128::MAX] {
            let mut out = String::new();
            push_hex(&mut out, n);
            assert_eq!(out, format!("{n:x}"), "{n}");
        }
    }

    #[test]
    fn each_byte_to_escape_is_found_in_any_place_of_a_word() {
        for b in (0u8..0x20).chain([b'"', b'\\']) {
            for at in 0..8 {
                let mut word = *b"abcdefgh";
                word[at] = b;
                assert_eq!(flagged(u64::from_le_bytes(word)), [at], "{b:#x} at {at}");
            }
        }
        for b in (0x20u8..=0xff).filter(|b| ![b'"', b'\\'].contains(b)) {
            assert_eq!(escape_mask(u64::from_le_bytes([b; 8])), 0, "{b:#x}");
        }
    }

    proptest! {
        #[test]
        fn a_word_flags_exactly_the_bytes_that_need_escaping(word: u64) {
            let bytewise: Vec<usize> = word
                .to_le_bytes()
                .iter()
                .enumerate()
                .filter(|(_, b)| **b < 0x20 || **b == b'"' || **b == b'\\')
                .map(|(i, _)| i)
                .collect();
            prop_assert_eq!(flagged(word), bytewise);
        }

        /// Words made of the bytes near the tests' edges, which random words seldom are.
        #[test]
        fn words_of_edge_bytes_flag_exactly_their_bytes_to_escape(
            bytes in prop::array::uniform8(prop::sample::select(vec![
                0x00u8, 0x01, 0x1f, 0x20, 0x21, b'"', 0x23, b'[', b'\\', b']', 0x7f, 0x80, 0x9f, 0xa0, 0xdf, 0xe0, 0xff,
            ]))
        ) {
            let word = u64::from_le_bytes(bytes);
            let bytewise: Vec<usize> = (0..8)
                .filter(|&i| bytes[i] < 0x20 || bytes[i] == b'"' || bytes[i] == b'\\')
                .collect();
            prop_assert_eq!(flagged(word), bytewise);
        }

        #[test]
        fn any_value_is_written_as_serde_json_writes_it(value in any_value()) {
            let mut out = String::new();
            push_json_value(&mut out, &value);
            prop_assert_eq!(out, serde_json::to_string(&value).expect("JSON"));
        }

        #[test]
        fn plain_printable_text_is_told_as_byte_by_byte(
            s in "\\PC{0,40}|[\\x00-\\x1f\\x7f\\u{80}-\\u{a0}\"\\\\'a-z~ é😀]{0,40}"
        ) {
            let bytewise = s.bytes().all(|b| (b' '..=b'~').contains(&b) && b != b'"' && b != b'\\');
            prop_assert_eq!(is_plain_printable(&s), bytewise, "{:?}", s);
        }

        #[test]
        fn any_number_is_written_as_display_writes_it(n: u64, wide: u128) {
            let mut out = String::from("x");
            push_decimal(&mut out, n);
            prop_assert_eq!(&out, &format!("x{n}"));
            out.clear();
            push_hex(&mut out, wide);
            prop_assert_eq!(&out, &format!("{wide:x}"));
            out.clear();
            push_hex(&mut out, u128::from(n));
            prop_assert_eq!(out, format!("{n:x}"));
        }

        #[test]
        fn any_text_is_written_as_serde_json_writes_it(s in "\\PC{0,40}|[\\x00-\\x1f\"\\\\a-zé€😀]{0,40}") {
            prop_assert_eq!(written(&s), serde_json::to_string(&s).expect("JSON"));
        }
    }
}
