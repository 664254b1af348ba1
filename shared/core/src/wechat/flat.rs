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

const CDATA_START: &str = "<![CDATA[";
const CDATA_END: &str = "]]>";

/// Reads the fields of a body in the flat subset into `fields`, and returns whether the body
/// was in the subset. After `false`, `fields` may hold some of the values.
pub(super) fn scan<'a>(body: &'a [u8], fields: &mut Fields<'a>) -> bool {
    scan_fields(body, fields).is_some()
}

fn scan_fields<'a>(body: &'a [u8], fields: &mut Fields<'a>) -> Option<()> {
    // Validating the whole body once lets every value be sliced out without another check.
    // Values start and end next to ASCII markup, so they start and end on character boundaries.
    let body = std::str::from_utf8(body).ok()?;
    let mut position = skip_whitespace(body, 0);
    position = expect(body, position, "<xml>")?;

    loop {
        position = skip_whitespace(body, position);
        if let Some(after_root) = expect(body, position, "</xml>") {
            return (skip_whitespace(body, after_root) == body.len()).then_some(());
        }

        let name_start = expect(body, position, "<")?;
        let name_end = body.as_bytes()[name_start..]
            .iter()
            .position(|&byte| !(byte.is_ascii_alphanumeric() || byte == b'_'))
            .map(|len| name_start + len)?;
        let name = &body[name_start..name_end];
        if !name.as_bytes().first()?.is_ascii_alphabetic() {
            return None;
        }

        let (value, after_element) = match expect(body, name_end, "/>") {
            Some(after_element) => (Cow::Borrowed(""), after_element),
            None => read_content(body, expect(body, name_end, ">")?, name)?,
        };
        if let Some(field) = Field::from_tag(name.as_bytes()) {
            if !fields.insert(field, value) {
                return None;
            }
        }
        position = after_element;
    }
}

/// Reads an element's content from `start` through its end tag, and returns the value
/// (whitespace around it removed, CDATA kept whole) with the position after the end tag.
fn read_content<'a>(body: &'a str, start: usize, name: &str) -> Option<(Cow<'a, str>, usize)> {
    let leading = skip_whitespace(body, start);
    let (value, after_value) = match expect(body, leading, CDATA_START) {
        Some(cdata_start) => {
            let cdata_end = find_cdata_end(body, cdata_start)?;
            (
                Cow::Borrowed(&body[cdata_start..cdata_end]),
                skip_whitespace(body, cdata_end + CDATA_END.len()),
            )
        }
        None => {
            let end = start + memchr::memchr(b'<', &body.as_bytes()[start..])?;
            let text = &body[start..end];
            let value = if memchr::memchr(b'&', text.as_bytes()).is_some() {
                // Trimmed after resolving, as the general reader does, so that a reference to
                // a space at either end is trimmed too.
                let resolved = resolve_references(text)?;
                Cow::Owned(trim_xml_whitespace(&resolved).to_owned())
            } else {
                Cow::Borrowed(&body[leading..trim_whitespace_end(body, leading, end)])
            };
            (value, end)
        }
    };

    let name_start = expect(body, after_value, "</")?;
    let name_end = expect(body, name_start, name)?;
    let after_end_tag = expect(body, name_end, ">")?;
    Some((value, after_end_tag))
}

/// Returns the position of the `]]>` that ends a CDATA section. It searches for `]` alone
/// because a substring searcher takes longer to prepare than these short sections take to scan.
fn find_cdata_end(body: &str, start: usize) -> Option<usize> {
    let bytes = body.as_bytes();
    let mut position = start;
    loop {
        position += memchr::memchr(b']', &bytes[position..])?;
        if bytes[position..].starts_with(CDATA_END.as_bytes()) {
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

/// Returns the position after `expected` when the body has it at `position`.
fn expect(body: &str, position: usize, expected: &str) -> Option<usize> {
    body.as_bytes()[position..]
        .starts_with(expected.as_bytes())
        .then_some(position + expected.len())
}

fn skip_whitespace(body: &str, position: usize) -> usize {
    body.as_bytes()[position..]
        .iter()
        .position(|&byte| !is_xml_whitespace(byte))
        .map_or(body.len(), |offset| position + offset)
}

/// Returns the end of `body[start..end]` without trailing whitespace.
fn trim_whitespace_end(body: &str, start: usize, end: usize) -> usize {
    body.as_bytes()[start..end]
        .iter()
        .rposition(|&byte| !is_xml_whitespace(byte))
        .map_or(start, |last| start + last + 1)
}
