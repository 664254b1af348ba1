//! A small JSON text writer for the per-message path. Frames are written straight into one
//! buffer instead of going through `serde_json`'s serializer, which spends most of a frame's
//! cost escaping strings one byte at a time. The output is byte-for-byte what
//! `serde_json::to_string` writes for the same data; the tests check that.

/// Appends `text` as a JSON string literal, escaped exactly as `serde_json` escapes it:
/// `\"`, `\\`, the short escapes `\b \f \n \r \t`, and `\u00XX` (lower-case hex) for the
/// other control characters below U+0020. Everything else, including non-ASCII, is copied.
pub(crate) fn push_string(out: &mut String, text: &str) {
    out.push('"');
    let bytes = text.as_bytes();
    let mut copied = 0;
    let mut index = 0;
    while index < bytes.len() {
        // Check eight bytes at a time; a short tail is padded with a byte that needs no escape.
        let end = (index + 8).min(bytes.len());
        let word = match bytes.get(index..index + 8) {
            Some(full) => u64::from_le_bytes(full.try_into().expect("the slice has eight bytes")),
            // The last eight bytes overlap ones already found clean, so only the new ones can
            // match, and the slow path below looks at those alone.
            None if bytes.len() >= 8 => u64::from_le_bytes(
                bytes[bytes.len() - 8..]
                    .try_into()
                    .expect("the slice has eight bytes"),
            ),
            None => {
                // Built byte by byte: a copy into an array calls memcpy, which costs more here.
                let mut padded = u64::from_le_bytes([b'a'; 8]);
                for (shift, &byte) in bytes[index..end].iter().enumerate() {
                    padded &= !(0xff << (8 * shift));
                    padded |= u64::from(byte) << (8 * shift);
                }
                padded
            }
        };
        if word_needs_escape(word) {
            for (position, &byte) in bytes.iter().enumerate().take(end).skip(index) {
                if let Some(escape) = escape_for(byte) {
                    // `copied..position` ends before an ASCII byte, so it is a char boundary.
                    out.push_str(&text[copied..position]);
                    push_escape(out, byte, escape);
                    copied = position + 1;
                }
            }
        }
        index = end;
    }
    out.push_str(&text[copied..]);
    out.push('"');
}

/// Returns whether any byte of the little-endian word is below 0x20, `"` or `\`. Bytes of multi-byte
/// UTF-8 sequences are all 0x80 or above, so they never match.
fn word_needs_escape(word: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let below_space = word.wrapping_sub(ONES * 0x20) & !word;
    let quote = word ^ (ONES * u64::from(b'"'));
    let backslash = word ^ (ONES * u64::from(b'\\'));
    let has_quote = quote.wrapping_sub(ONES) & !quote;
    let has_backslash = backslash.wrapping_sub(ONES) & !backslash;
    (below_space | has_quote | has_backslash) & HIGH != 0
}

enum Escape {
    Short(char),
    Unicode,
}

fn escape_for(byte: u8) -> Option<Escape> {
    match byte {
        b'"' => Some(Escape::Short('"')),
        b'\\' => Some(Escape::Short('\\')),
        0x08 => Some(Escape::Short('b')),
        0x0c => Some(Escape::Short('f')),
        b'\n' => Some(Escape::Short('n')),
        b'\r' => Some(Escape::Short('r')),
        b'\t' => Some(Escape::Short('t')),
        0x00..=0x1f => Some(Escape::Unicode),
        _ => None,
    }
}

fn push_escape(out: &mut String, byte: u8, escape: Escape) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push('\\');
    match escape {
        Escape::Short(letter) => out.push(letter),
        Escape::Unicode => {
            out.push_str("u00");
            out.push(char::from(HEX[usize::from(byte >> 4)]));
            out.push(char::from(HEX[usize::from(byte & 0x0f)]));
        }
    }
}

/// Appends an integer.
pub(crate) fn push_integer(out: &mut String, value: impl Into<Integer>) {
    let (negative, mut rest) = match value.into() {
        Integer::Signed(value) => (value < 0, value.unsigned_abs()),
        Integer::Unsigned(value) => (false, value),
    };
    let mut digits = [0u8; 20];
    let mut position = digits.len();
    loop {
        position -= 1;
        digits[position] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    if negative {
        out.push('-');
    }
    for digit in &digits[position..] {
        out.push(char::from(*digit));
    }
}

/// An integer of any width the frames use, kept out of 128-bit arithmetic.
pub(crate) enum Integer {
    Signed(i64),
    Unsigned(u64),
}

impl From<i64> for Integer {
    fn from(value: i64) -> Self {
        Integer::Signed(value)
    }
}

impl From<i32> for Integer {
    fn from(value: i32) -> Self {
        Integer::Signed(value.into())
    }
}

impl From<u64> for Integer {
    fn from(value: u64) -> Self {
        Integer::Unsigned(value)
    }
}

impl From<u8> for Integer {
    fn from(value: u8) -> Self {
        Integer::Unsigned(value.into())
    }
}

/// Appends a float as `serde_json` writes it: the shortest representation that reads back the
/// same, and `null` for NaN and infinities, which JSON cannot express.
pub(crate) fn push_float(out: &mut String, value: f64) {
    if value.is_finite() {
        out.push_str(&serde_json::to_string(&value).expect("a finite float always serializes"));
    } else {
        out.push_str("null");
    }
}

/// Writes a JSON object field by field.
pub(crate) struct ObjectWriter<'a> {
    out: &'a mut String,
    first: bool,
}

impl<'a> ObjectWriter<'a> {
    pub(crate) fn open(out: &'a mut String) -> Self {
        out.push('{');
        Self { out, first: true }
    }

    /// Writes a field name. Names are literals in this crate and plain ASCII words, so they are
    /// written without escaping.
    fn key(&mut self, key: &'static str) -> &mut String {
        debug_assert!(
            key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'),
            "field name {key:?} would need escaping"
        );
        if !self.first {
            self.out.push(',');
        }
        self.first = false;
        self.out.push('"');
        self.out.push_str(key);
        self.out.push('"');
        self.out.push(':');
        self.out
    }

    pub(crate) fn string(&mut self, key: &'static str, value: &str) -> &mut Self {
        let out = self.key(key);
        push_string(out, value);
        self
    }

    pub(crate) fn optional_string(&mut self, key: &'static str, value: Option<&str>) -> &mut Self {
        if let Some(value) = value {
            self.string(key, value);
        }
        self
    }

    pub(crate) fn integer(&mut self, key: &'static str, value: impl Into<Integer>) -> &mut Self {
        let out = self.key(key);
        push_integer(out, value);
        self
    }

    pub(crate) fn float(&mut self, key: &'static str, value: f64) -> &mut Self {
        let out = self.key(key);
        push_float(out, value);
        self
    }

    /// Writes `null` for `None`, as `serde_json` does for an `Option` field.
    pub(crate) fn nullable_float(&mut self, key: &'static str, value: Option<f64>) -> &mut Self {
        match value {
            Some(value) => self.float(key, value),
            None => {
                self.key(key).push_str("null");
                self
            }
        }
    }

    /// Writes a value that is already JSON text.
    pub(crate) fn raw(&mut self, key: &'static str, json: &str) -> &mut Self {
        self.key(key).push_str(json);
        self
    }

    /// Bytes written to the whole output so far.
    pub(crate) fn len(&self) -> usize {
        self.out.len()
    }

    /// Opens a nested object under `key`; close it before writing the next field here.
    pub(crate) fn object(&mut self, key: &'static str) -> ObjectWriter<'_> {
        ObjectWriter::open(self.key(key))
    }

    pub(crate) fn close(&mut self) {
        self.out.push('}');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn escaped(text: &str) -> String {
        let mut out = String::new();
        push_string(&mut out, text);
        out
    }

    #[test]
    fn strings_escape_exactly_like_serde_json() {
        let mut cases: Vec<String> = vec![
            String::new(),
            "plain ascii text".into(),
            "你好 😀 /::) 用户扫码关注了公众号".into(),
            "quote \" and backslash \\ inside".into(),
            "\n\r\t\u{8}\u{c}".into(),
            "group separator \u{1d} from WeChat".into(),
            "\u{7f} DEL is not escaped".into(),
            "exactly8".into(),
            "sixteen bytes!!!\"".into(),
            "中文\"中文\\中文\n".into(),
            // Tails checked with an overlapping word: escapes before, inside and after it.
            "abcdefg\"ij".into(),
            "ab\"cdefghij".into(),
            "0123456789\\".into(),
            "0123456789abcdef\n".into(),
        ];
        for byte in 0u8..0x80 {
            cases.push(format!("abcdefgh{}ijklmnop", char::from(byte)));
            cases.push(format!("{}", char::from(byte)));
        }

        for case in cases {
            assert_eq!(
                escaped(&case),
                serde_json::to_string(&case).unwrap(),
                "escaping {case:?}"
            );
        }
    }

    #[test]
    fn numbers_match_serde_json() {
        for value in [0i64, 7, -1, 1_348_831_860, i64::MAX, i64::MIN] {
            let mut out = String::new();
            push_integer(&mut out, value);
            assert_eq!(out, serde_json::to_string(&value).unwrap());
        }
        let mut out = String::new();
        push_integer(&mut out, u64::MAX);
        assert_eq!(out, u64::MAX.to_string());
        for value in [23.134521, 113.358803, 20.0, -0.5, 1e-7] {
            let mut out = String::new();
            push_float(&mut out, value);
            assert_eq!(out, serde_json::to_string(&value).unwrap());
        }
        let mut out = String::new();
        push_float(&mut out, f64::NAN);
        assert_eq!(out, "null");
    }

    #[test]
    fn object_writer_separates_fields() {
        let mut out = String::new();
        let mut object = ObjectWriter::open(&mut out);
        object.string("a", "x").integer("b", 1u8);
        object.object("c").string("d", "e").close();
        object
            .optional_string("skipped", None)
            .nullable_float("f", None);
        object.close();
        assert_eq!(out, r#"{"a":"x","b":1,"c":{"d":"e"},"f":null}"#);
    }
}
