//! The fast path of the XML reader, for the shape WeChat actually sends: `<xml>` holding one
//! element per field, each with one CDATA section or plain text.
//!
//! WeChat's documents are nearly all tags, so the general reader spends most of its time in
//! quick-xml's event loop: about 1 µs of 1.6 µs for a text message, against about 0.4 µs for
//! a whole parse through this scanner (release build on a shared 2-core VM, so the numbers are
//! rough).
//!
//! This scanner accepts only a strict subset of well-formed XML: no declaration, comment,
//! DOCTYPE, attribute, nested element, duplicate field, or entity other than XML's five
//! predefined ones and character references. The general reader handles any other body, so it
//! also reports every error. A test checks that both readers return the same fields wherever
//! this one accepts a body.

use std::borrow::Cow;

use super::xml::{is_xml_whitespace, trim_xml_whitespace, Field, Fields};

const CDATA_START: &[u8] = b"<![CDATA[";
const CDATA_END: &[u8] = b"]]>";

/// Reads the fields of a body in the flat subset into `fields`, and returns whether the body
/// was in the subset. After `false`, `fields` may hold some of the values.
pub(super) fn scan<'a>(body: &'a [u8], fields: &mut Fields<'a>) -> bool {
    scan_fields(body, fields).is_some()
}

fn scan_fields<'a>(body: &'a [u8], fields: &mut Fields<'a>) -> Option<()> {
    // Validating the whole body once took about 60% of the instructions of validating each
    // value (callgrind, the benchmark corpus), and lets every value be sliced out unchecked.
    // Values start and end next to ASCII markup, so they start and end on character
    // boundaries. simdutf8 validates Chinese text several times faster than std; an invalid
    // body falls back to the full reader, which names the field.
    let text = simdutf8::basic::from_utf8(body).ok()?;
    let mut position = skip_whitespace(body, 0);
    position = expect(body, position, b"<xml>")?;

    loop {
        position = skip_whitespace(body, position);
        let name_start = expect(body, position, b"<")?;
        position = match read_known_start_tag(body, name_start) {
            Some(start_tag) => read_known_element(text, start_tag, fields)?,
            None => match read_other_element(text, name_start, fields)? {
                Next::Element(after_element) => after_element,
                Next::EndOfBody => return Some(()),
            },
        };
    }
}

/// The start tag of a field wxkf reads, such as `<Content>`, without attributes.
struct KnownStartTag {
    field: Field,
    /// The name and the closing `>`, as `pack_start_tag` packs them.
    packed: u128,
    /// The length of the name and the closing `>`.
    length: usize,
    /// The position after the tag.
    end: usize,
}

/// Recognises a known field's start tag from the 16 bytes after its `<`, so that names are
/// neither scanned nor compared byte by byte. Returns `None` for every other tag, which
/// `read_other_element` then reads.
fn read_known_start_tag(body: &[u8], name_start: usize) -> Option<KnownStartTag> {
    let window = read_window(body, name_start);
    let length = find_in_window(window, b'>')? + 1;
    let packed = keep_low_bytes(window, length);
    Some(KnownStartTag {
        field: Field::from_start_tag(packed)?,
        packed,
        length,
        end: name_start + length,
    })
}

/// Reads a known field's content and end tag, stores the value and returns the position after
/// the end tag.
fn read_known_element<'a>(
    text: &'a str,
    start_tag: KnownStartTag,
    fields: &mut Fields<'a>,
) -> Option<usize> {
    let body = text.as_bytes();
    let (value, end_tag) = read_content(text, start_tag.end)?;

    // The end tag repeats the start tag's name and `>` after `</`.
    let end_name = expect(body, end_tag, b"</")?;
    let end_window = keep_low_bytes(read_window(body, end_name), start_tag.length);
    if end_window != start_tag.packed {
        return None;
    }

    fields
        .insert(start_tag.field, value)
        .then_some(end_name + start_tag.length)
}

/// What follows an element that `read_other_element` read.
enum Next {
    /// Another element may start at this position.
    Element(usize),
    /// The element was the root's end tag, and only whitespace follows it.
    EndOfBody,
}

/// Reads an element whose start tag is not a plain known one: an unknown element, an empty
/// element such as `<Content/>`, or the root's end tag.
fn read_other_element<'a>(
    text: &'a str,
    name_start: usize,
    fields: &mut Fields<'a>,
) -> Option<Next> {
    let body = text.as_bytes();
    let name_end = name_start
        + body[name_start..]
            .iter()
            .position(|&byte| !is_name_byte(byte))?;
    let name = &body[name_start..name_end];
    let Some(first) = name.first() else {
        let after_root = expect(body, name_start, b"/xml>")?;
        return (skip_whitespace(body, after_root) == body.len()).then_some(Next::EndOfBody);
    };
    if !first.is_ascii_alphabetic() {
        return None;
    }

    let (value, after_element) = match body[name_end] {
        b'>' => {
            let (value, end_tag) = read_content(text, name_end + 1)?;
            (value, expect_end_tag(body, end_tag, name)?)
        }
        b'/' => (Cow::Borrowed(""), expect(body, name_end + 1, b">")?),
        _ => return None,
    };
    if let Some(field) = Field::from_tag(name) {
        if !fields.insert(field, value) {
            return None;
        }
    }
    Some(Next::Element(after_element))
}

/// Reads an element's content from `start`, and returns the value (whitespace around it
/// removed, CDATA kept whole) with the position of the end tag. Inlining it into the element
/// loop saved about 100 instructions per message (callgrind, the benchmark corpus).
#[inline(always)]
fn read_content(text: &str, start: usize) -> Option<(Cow<'_, str>, usize)> {
    let body = text.as_bytes();
    let leading = skip_whitespace(body, start);
    if let Some(cdata_start) = expect(body, leading, CDATA_START) {
        let cdata_end = find_cdata_end(body, cdata_start)?;
        let value = Cow::Borrowed(&text[cdata_start..cdata_end]);
        return Some((value, skip_whitespace(body, cdata_end + CDATA_END.len())));
    }

    // One search finds both the end of the text and its first reference, if any.
    let stop = start + memchr::memchr2(b'<', b'&', &body[start..])?;
    if body[stop] == b'<' {
        let value = &text[leading..trim_whitespace_end(body, leading, stop)];
        return Some((Cow::Borrowed(value), stop));
    }
    let end = stop + memchr::memchr(b'<', &body[stop..])?;
    // Trimmed after resolving, as the general reader does, so that a reference to a space at
    // either end is trimmed too.
    let resolved = resolve_references(&text[start..end])?;
    Some((Cow::Owned(trim_xml_whitespace(&resolved).to_owned()), end))
}

/// Returns the position after `</name>` when the body has it at `position`.
fn expect_end_tag(body: &[u8], position: usize, name: &[u8]) -> Option<usize> {
    let name_start = expect(body, position, b"</")?;
    let name_end = expect(body, name_start, name)?;
    expect(body, name_end, b">")
}

/// Returns the position of the `]]>` that ends a CDATA section. It searches for `]` alone
/// because a substring searcher takes longer to prepare than these short sections take to scan.
fn find_cdata_end(body: &[u8], start: usize) -> Option<usize> {
    let mut position = start;
    loop {
        position += memchr::memchr(b']', &body[position..])?;
        if body[position..].starts_with(CDATA_END) {
            return Some(position);
        }
        position += 1;
    }
}

/// Replaces XML's predefined entities and character references in `text`, or returns `None`
/// for anything else after an `&`.
fn resolve_references(text: &str) -> Option<String> {
    let mut resolved = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(ampersand) = rest.find('&') {
        resolved.push_str(&rest[..ampersand]);
        let after = &rest[ampersand + 1..];
        let semicolon = after.find(';')?;
        let character = match &after[..semicolon] {
            "lt" => '<',
            "gt" => '>',
            "amp" => '&',
            "apos" => '\'',
            "quot" => '"',
            reference => resolve_character_reference(reference)?,
        };
        resolved.push(character);
        rest = &after[semicolon + 1..];
    }
    resolved.push_str(rest);
    Some(resolved)
}

/// Resolves `#123` or `#x1F600`. NUL and surrogates are left to the general reader, which
/// reports them.
fn resolve_character_reference(reference: &str) -> Option<char> {
    let number = reference.strip_prefix('#')?;
    let code = match number.strip_prefix('x') {
        Some(hex) if !hex.is_empty() && hex.bytes().all(|byte| byte.is_ascii_hexdigit()) => {
            u32::from_str_radix(hex, 16).ok()?
        }
        None if !number.is_empty() && number.bytes().all(|byte| byte.is_ascii_digit()) => {
            number.parse().ok()?
        }
        _ => return None,
    };
    char::from_u32(code).filter(|&character| character != '\0')
}

/// Reads the 16 bytes at `position` as an integer, first byte lowest, with zeros past the end
/// of the body.
fn read_window(body: &[u8], position: usize) -> u128 {
    let rest = body.get(position..).unwrap_or_default();
    match rest.first_chunk::<16>() {
        Some(bytes) => u128::from_le_bytes(*bytes),
        None => {
            let mut bytes = [0; 16];
            bytes[..rest.len()].copy_from_slice(rest);
            u128::from_le_bytes(bytes)
        }
    }
}

/// The lowest bit of every byte of a window.
const LOW_BITS: u128 = u128::from_ne_bytes([0x01; 16]);
/// The highest bit of every byte of a window.
const HIGH_BITS: u128 = u128::from_ne_bytes([0x80; 16]);

/// Returns the index of the first byte of `window` equal to `byte`.
///
/// XORing with `byte` turns the matches into zero bytes. Subtracting 1 from every byte then
/// sets the high bit of each zero byte, and of no byte below the first zero, because a borrow
/// only starts at a zero byte. So the lowest high bit left marks the first match.
fn find_in_window(window: u128, byte: u8) -> Option<usize> {
    let differences = window ^ (LOW_BITS * u128::from(byte));
    let zero_bytes = differences.wrapping_sub(LOW_BITS) & !differences & HIGH_BITS;
    (zero_bytes != 0).then(|| zero_bytes.trailing_zeros() as usize / 8)
}

/// Keeps the first `count` bytes of a window, for `count` up to 16, and zeroes the rest.
fn keep_low_bytes(window: u128, count: usize) -> u128 {
    match count {
        0 => 0,
        _ => window & (u128::MAX >> (128 - 8 * count)),
    }
}

/// Returns the position after `expected` when the body has it at `position`.
fn expect(body: &[u8], position: usize, expected: &[u8]) -> Option<usize> {
    body[position..]
        .starts_with(expected)
        .then_some(position + expected.len())
}

/// Tells whether `byte` may appear in an element name of the flat subset: ASCII letters,
/// digits and `_`. Any other name, such as one with a namespace prefix, takes the general
/// reader.
fn is_name_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'_'
}

fn skip_whitespace(body: &[u8], position: usize) -> usize {
    body[position..]
        .iter()
        .position(|&byte| !is_xml_whitespace(byte))
        .map_or(body.len(), |offset| position + offset)
}

/// Returns the end of `body[start..end]` without trailing whitespace.
fn trim_whitespace_end(body: &[u8], start: usize, end: usize) -> usize {
    body[start..end]
        .iter()
        .rposition(|&byte| !is_xml_whitespace(byte))
        .map_or(start, |last| start + last + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Finds a byte the plain way, as a reference for `find_in_window`.
    fn find_slowly(bytes: &[u8; 16], byte: u8) -> Option<usize> {
        bytes.iter().position(|&candidate| candidate == byte)
    }

    #[test]
    fn find_in_window_returns_the_first_match() {
        let byte = b'>';
        // Random windows over this alphabet put matches, near misses and extremes side by
        // side. 0x3f, 0xbe and 0xbf differ from `>` in one bit, and 0x00 and 0xff start or
        // stop a borrow.
        let alphabet = [b'>', 0x3d, 0x3f, 0xbe, 0xbf, 0x00, 0xff, b'a'];
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..20_000 {
            let mut bytes = [0; 16];
            for slot in &mut bytes {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                *slot = alphabet[(state % alphabet.len() as u64) as usize];
            }
            assert_eq!(
                find_in_window(u128::from_le_bytes(bytes), byte),
                find_slowly(&bytes, byte),
                "window {bytes:02x?}"
            );
        }
    }

    #[test]
    fn read_window_pads_past_the_end_with_zeros() {
        let body = b"<xml><Url>x</Url></xml>";
        let tail = read_window(body, body.len() - 3);
        assert_eq!(tail.to_le_bytes()[..4], [b'm', b'l', b'>', 0]);
        assert_eq!(read_window(body, body.len()), 0);
        assert_eq!(read_window(body, body.len() + 5), 0);
        assert_eq!(read_window(body, 0).to_le_bytes(), body[..16]);
    }

    #[test]
    fn keep_low_bytes_keeps_a_prefix() {
        let window = u128::from_le_bytes(*b"0123456789abcdef");
        assert_eq!(keep_low_bytes(window, 0), 0);
        assert_eq!(keep_low_bytes(window, 16), window);
        assert_eq!(keep_low_bytes(window, 3).to_le_bytes()[..4], *b"012\0");
        assert_eq!(
            keep_low_bytes(window, 15).to_le_bytes()[..],
            *b"0123456789abcde\0"
        );
    }
}
