//! A single-pass reader for WeChat's flat message XML: a root `<xml>` with one child element
//! per field. It collects the fields wxkf uses, borrowing their text from the body whenever a
//! field is one piece of text or CDATA, and skips everything else. Bodies in WeChat's usual
//! shape go through the faster scanner in `flat`; this reader handles the rest of XML.
//!
//! It rejects any DOCTYPE, so no entity can be declared: only XML's five predefined entities
//! and character references are resolved. Characters are not checked against XML's allowed
//! set, because WeChat leaves control characters such as 0x1D inside CDATA.

use std::borrow::Cow;

use quick_xml::events::Event;
use quick_xml::Reader;

use crate::ids::IdError;

use super::flat;

/// An error that rejects a message XML body.
#[derive(Debug, Clone, thiserror::Error)]
pub enum XmlError {
    #[error("not well-formed XML at byte {position}")]
    Syntax {
        position: u64,
        #[source]
        source: quick_xml::Error,
    },
    #[error("not well-formed XML: the body ends before </xml>")]
    Unclosed,
    #[error("not well-formed XML: content after </xml> at byte {position}")]
    TrailingContent { position: u64 },
    #[error("not well-formed XML: undefined entity &{name}; at byte {position}")]
    UndefinedEntity { name: String, position: u64 },
    #[error("{field} is not valid UTF-8")]
    InvalidUtf8 { field: &'static str },
    #[error("DOCTYPE is not allowed in message XML")]
    DoctypeNotAllowed,
    #[error("missing root <xml>")]
    MissingRoot,
    #[error("root element must be <xml>, found <{0}>")]
    WrongRoot(String),
    #[error("duplicate {0}")]
    Duplicate(&'static str),
    #[error("missing {0}")]
    Missing(&'static str),
    /// A field the message type needs, e.g. "missing Content in text message".
    #[error("missing {field} in {context}")]
    MissingIn {
        field: &'static str,
        context: &'static str,
    },
    #[error("invalid number in {field}: {value:?}")]
    InvalidNumber { field: &'static str, value: String },
    #[error("invalid {field}")]
    InvalidId {
        field: &'static str,
        #[source]
        source: IdError,
    },
}

/// The elements wxkf reads. Any other element is skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Field {
    ToUserName,
    FromUserName,
    CreateTime,
    MsgType,
    MsgId,
    Content,
    PicUrl,
    MediaId,
    Format,
    Recognition,
    MediaId16K,
    ThumbMediaId,
    LocationX,
    LocationY,
    Scale,
    Label,
    Title,
    Description,
    Url,
    Event,
    EventKey,
    Ticket,
    Latitude,
    Longitude,
    Precision,
    MenuId,
    Encrypt,
}

const FIELD_COUNT: usize = Field::Encrypt as usize + 1;

impl Field {
    const ALL: [Field; FIELD_COUNT] = [
        Field::ToUserName,
        Field::FromUserName,
        Field::CreateTime,
        Field::MsgType,
        Field::MsgId,
        Field::Content,
        Field::PicUrl,
        Field::MediaId,
        Field::Format,
        Field::Recognition,
        Field::MediaId16K,
        Field::ThumbMediaId,
        Field::LocationX,
        Field::LocationY,
        Field::Scale,
        Field::Label,
        Field::Title,
        Field::Description,
        Field::Url,
        Field::Event,
        Field::EventKey,
        Field::Ticket,
        Field::Latitude,
        Field::Longitude,
        Field::Precision,
        Field::MenuId,
        Field::Encrypt,
    ];

    pub(super) fn from_tag(tag: &[u8]) -> Option<Field> {
        Field::from_start_tag(pack_start_tag(tag)?)
    }

    /// Returns the field whose start tag [`pack_start_tag`] packs to `packed`, with one table
    /// lookup.
    pub(super) fn from_start_tag(packed: u128) -> Option<Field> {
        let (candidate, field) = FIELD_BY_NAME_SLOT[name_slot(packed)]?;
        (candidate == packed).then_some(field)
    }

    /// Returns the element name as WeChat spells it.
    pub(crate) const fn name(self) -> &'static str {
        match self {
            Field::ToUserName => "ToUserName",
            Field::FromUserName => "FromUserName",
            Field::CreateTime => "CreateTime",
            Field::MsgType => "MsgType",
            Field::MsgId => "MsgId",
            Field::Content => "Content",
            Field::PicUrl => "PicUrl",
            Field::MediaId => "MediaId",
            Field::Format => "Format",
            Field::Recognition => "Recognition",
            Field::MediaId16K => "MediaId16K",
            Field::ThumbMediaId => "ThumbMediaId",
            Field::LocationX => "Location_X",
            Field::LocationY => "Location_Y",
            Field::Scale => "Scale",
            Field::Label => "Label",
            Field::Title => "Title",
            Field::Description => "Description",
            Field::Url => "Url",
            Field::Event => "Event",
            Field::EventKey => "EventKey",
            Field::Ticket => "Ticket",
            Field::Latitude => "Latitude",
            Field::Longitude => "Longitude",
            Field::Precision => "Precision",
            Field::MenuId => "MenuId",
            Field::Encrypt => "Encrypt",
        }
    }
}

/// Packs the text `name>` of a start tag into an integer, first byte lowest and zeros after
/// it, or returns `None` when that text is longer than 16 bytes. The packing is one-to-one
/// because the text ends in a `>`, which is not zero: the text is the integer's bytes up to
/// its last nonzero byte.
pub(super) const fn pack_start_tag(name: &[u8]) -> Option<u128> {
    if name.len() > 15 {
        return None;
    }
    let mut packed = b'>' as u128;
    let mut index = name.len();
    while index > 0 {
        index -= 1;
        packed = packed << 8 | name[index] as u128;
    }
    Some(packed)
}

/// The multiplier of a perfect hash of the fields' packed start tags into 64 slots, found by
/// trying random odd numbers. Building `FIELD_BY_NAME_SLOT` fails to compile if a new field
/// shares a slot, and then a new multiplier is needed.
const NAME_HASH_MULTIPLIER: u64 = 0x9844_f476_f2e2_054d;
const NAME_SLOT_BITS: u32 = 6;

const fn name_slot(packed: u128) -> usize {
    let folded = packed as u64 ^ (packed >> 64) as u64;
    (folded.wrapping_mul(NAME_HASH_MULTIPLIER) >> (64 - NAME_SLOT_BITS)) as usize
}

/// Each field with its packed start tag, at the slot of that tag.
const FIELD_BY_NAME_SLOT: [Option<(u128, Field)>; 1 << NAME_SLOT_BITS] = {
    let mut table = [None; 1 << NAME_SLOT_BITS];
    let mut index = 0;
    while index < FIELD_COUNT {
        let field = Field::ALL[index];
        let Some(packed) = pack_start_tag(field.name().as_bytes()) else {
            panic!("a field name is longer than 15 bytes");
        };
        let slot = name_slot(packed);
        assert!(
            table[slot].is_none(),
            "two field names share a hash slot; choose another NAME_HASH_MULTIPLIER"
        );
        table[slot] = Some((packed, field));
        index += 1;
    }
    table
};

/// The known fields of one message, each the text of the root's child element of that name.
///
/// Whitespace around a value is removed, but the inside of a CDATA section is kept as sent, so
/// that a text message's leading spaces survive. Line ends are not normalised either.
#[derive(Debug, PartialEq)]
pub(crate) struct Fields<'a> {
    values: [Option<Cow<'a, str>>; FIELD_COUNT],
}

impl<'a> Fields<'a> {
    /// Reads the fields of a message body.
    pub(crate) fn read(body: &'a [u8]) -> Result<Fields<'a>, XmlError> {
        let mut fields = Fields::empty();
        fields.read_from(body)?;
        Ok(fields)
    }

    /// Reads the fields of a message body into these empty fields. The hot path uses this form
    /// because moving the 650-byte field array through results took about a tenth of a parse's
    /// instructions (callgrind, the benchmark corpus).
    pub(crate) fn read_from(&mut self, body: &'a [u8]) -> Result<(), XmlError> {
        if flat::scan(body, self) {
            return Ok(());
        }
        *self = Fields::empty();
        FieldReader::new(body, self).run()
    }

    pub(crate) fn empty() -> Fields<'a> {
        Fields {
            values: Default::default(),
        }
    }

    /// Stores a field's value, or returns `false` when the field already has one.
    pub(super) fn insert(&mut self, field: Field, value: Cow<'a, str>) -> bool {
        let slot = &mut self.values[field as usize];
        if slot.is_some() {
            return false;
        }
        *slot = Some(value);
        true
    }

    /// Returns the value as sent, with the inside of CDATA kept exactly. Free text such as
    /// Content uses this.
    pub(crate) fn text(&self, field: Field) -> Option<&str> {
        self.values[field as usize].as_deref()
    }

    /// Returns the value fully trimmed, or `None` when it is absent or empty. Ids, numbers and
    /// names use this.
    pub(crate) fn token(&self, field: Field) -> Option<&str> {
        self.text(field)
            .map(trim_xml_whitespace)
            .filter(|value| !value.is_empty())
    }
}

/// XML's whitespace: space, tab, carriage return and line feed. Other Unicode spaces, such as
/// the ideographic space U+3000, are content.
pub(super) fn is_xml_whitespace(byte: u8) -> bool {
    matches!(byte, b' ' | b'\t' | b'\r' | b'\n')
}

// The trimming functions work on bytes, which is several times faster than matching chars.
// XML whitespace is ASCII, and no byte of a multi-byte UTF-8 character is, so the cuts fall on
// character boundaries.

pub(super) fn trim_xml_whitespace(value: &str) -> &str {
    trim_xml_whitespace_end(trim_xml_whitespace_start(value))
}

fn trim_xml_whitespace_start(value: &str) -> &str {
    let start = value
        .bytes()
        .position(|byte| !is_xml_whitespace(byte))
        .unwrap_or(value.len());
    &value[start..]
}

fn trim_xml_whitespace_end(value: &str) -> &str {
    let end = value
        .bytes()
        .rposition(|byte| !is_xml_whitespace(byte))
        .map_or(0, |last| last + 1);
    &value[..end]
}

/// The reader's position relative to the root element.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    Before,
    /// Inside `<xml>`. `depth` 0 is directly in the root, 1 inside a field element, and more
    /// inside elements nested in a field, which are skipped.
    Inside {
        depth: u32,
    },
    After,
}

/// The text of the field element being read.
struct PendingValue<'a> {
    field: Field,
    value: Cow<'a, str>,
    /// Byte range in `value` from the start of the first CDATA section to the end of the last.
    /// Trimming stops at it.
    cdata: Option<(usize, usize)>,
}

impl<'a> PendingValue<'a> {
    fn push(&mut self, chunk: Cow<'a, str>) {
        if self.value.is_empty() {
            self.value = chunk;
        } else {
            self.value.to_mut().push_str(&chunk);
        }
    }

    fn push_cdata(&mut self, chunk: Cow<'a, str>) {
        let start = self.value.len();
        self.push(chunk);
        let end = self.value.len();
        self.cdata = Some(match self.cdata {
            Some((first_start, _)) => (first_start, end),
            None => (start, end),
        });
    }

    fn finish(self) -> Cow<'a, str> {
        let (start, end) = match self.cdata {
            Some((cdata_start, cdata_end)) => {
                let head = &self.value[..cdata_start];
                let tail = &self.value[cdata_end..];
                (
                    head.len() - trim_xml_whitespace_start(head).len(),
                    cdata_end + trim_xml_whitespace_end(tail).len(),
                )
            }
            None => {
                let end = trim_xml_whitespace_end(&self.value).len();
                let start = self.value.len() - trim_xml_whitespace_start(&self.value).len();
                (start.min(end), end)
            }
        };
        match self.value {
            Cow::Borrowed(value) => Cow::Borrowed(&value[start..end]),
            Cow::Owned(mut value) if start == 0 => {
                value.truncate(end);
                Cow::Owned(value)
            }
            Cow::Owned(value) => Cow::Owned(value[start..end].to_owned()),
        }
    }
}

struct FieldReader<'a, 'f> {
    reader: Reader<&'a [u8]>,
    /// Byte offset where the event being handled starts.
    event_start: u64,
    place: Place,
    pending: Option<PendingValue<'a>>,
    fields: &'f mut Fields<'a>,
}

impl<'a, 'f> FieldReader<'a, 'f> {
    fn new(body: &'a [u8], fields: &'f mut Fields<'a>) -> Self {
        Self {
            reader: Reader::from_reader(body),
            event_start: 0,
            place: Place::Before,
            pending: None,
            fields,
        }
    }

    fn run(mut self) -> Result<(), XmlError> {
        loop {
            self.event_start = self.reader.buffer_position();
            let event = self
                .reader
                .read_event()
                .map_err(|source| XmlError::Syntax {
                    position: self.reader.error_position(),
                    source,
                })?;
            match event {
                Event::Start(start) => self.open(start.local_name().as_ref())?,
                Event::Empty(start) => {
                    self.open(start.local_name().as_ref())?;
                    self.close()?;
                }
                Event::End(_) => self.close()?,
                Event::Text(text) => {
                    let is_blank = text.iter().all(|&byte| is_xml_whitespace(byte));
                    self.take_text(text.into_inner(), is_blank, false)?;
                }
                Event::CData(cdata) => {
                    let is_blank = cdata.is_empty();
                    self.take_text(cdata.into_inner(), is_blank, true)?;
                }
                Event::GeneralRef(reference) => self.take_reference(&reference)?,
                Event::DocType(_) => return Err(XmlError::DoctypeNotAllowed),
                Event::Decl(_) | Event::PI(_) | Event::Comment(_) => {}
                Event::Eof => break,
            }
        }

        match self.place {
            Place::Before => Err(XmlError::MissingRoot),
            Place::Inside { .. } => Err(XmlError::Unclosed),
            Place::After => Ok(()),
        }
    }

    fn open(&mut self, tag: &[u8]) -> Result<(), XmlError> {
        match self.place {
            Place::Before if tag == b"xml" => self.place = Place::Inside { depth: 0 },
            Place::Before => {
                return Err(XmlError::WrongRoot(
                    String::from_utf8_lossy(tag).into_owned(),
                ))
            }
            Place::Inside { depth } => {
                if depth == 0 {
                    self.pending = Field::from_tag(tag).map(|field| PendingValue {
                        field,
                        value: Cow::Borrowed(""),
                        cdata: None,
                    });
                }
                self.place = Place::Inside { depth: depth + 1 };
            }
            Place::After => return Err(self.trailing_content()),
        }
        Ok(())
    }

    fn close(&mut self) -> Result<(), XmlError> {
        // The reader checks that end tags match start tags, so only the depth is tracked here.
        let Place::Inside { depth } = self.place else {
            return Ok(());
        };
        match depth {
            0 => self.place = Place::After,
            1 => {
                self.place = Place::Inside { depth: 0 };
                if let Some(pending) = self.pending.take() {
                    let field = pending.field;
                    if !self.fields.insert(field, pending.finish()) {
                        return Err(XmlError::Duplicate(field.name()));
                    }
                }
            }
            _ => self.place = Place::Inside { depth: depth - 1 },
        }
        Ok(())
    }

    fn take_text(
        &mut self,
        bytes: Cow<'a, [u8]>,
        is_blank: bool,
        is_cdata: bool,
    ) -> Result<(), XmlError> {
        match self.place {
            Place::Inside { depth: 1 } => {}
            Place::After if !is_blank => return Err(self.trailing_content()),
            Place::Before if !is_blank => return Err(XmlError::MissingRoot),
            _ => return Ok(()),
        }
        let Some(pending) = self.pending.as_mut() else {
            return Ok(());
        };

        let field = pending.field.name();
        let chunk = match bytes {
            Cow::Borrowed(bytes) => Cow::Borrowed(
                std::str::from_utf8(bytes).map_err(|_| XmlError::InvalidUtf8 { field })?,
            ),
            Cow::Owned(bytes) => {
                Cow::Owned(String::from_utf8(bytes).map_err(|_| XmlError::InvalidUtf8 { field })?)
            }
        };
        if is_cdata {
            pending.push_cdata(chunk);
        } else {
            pending.push(chunk);
        }
        Ok(())
    }

    fn take_reference(
        &mut self,
        reference: &quick_xml::events::BytesRef<'_>,
    ) -> Result<(), XmlError> {
        let position = self.event_start;
        let resolved = match reference.resolve_char_ref() {
            Ok(Some(character)) => character,
            Ok(None) => match reference.as_ref() {
                b"lt" => '<',
                b"gt" => '>',
                b"amp" => '&',
                b"apos" => '\'',
                b"quot" => '"',
                name => {
                    return Err(XmlError::UndefinedEntity {
                        name: String::from_utf8_lossy(name).into_owned(),
                        position,
                    })
                }
            },
            Err(source) => return Err(XmlError::Syntax { position, source }),
        };

        match self.place {
            Place::After => return Err(self.trailing_content()),
            Place::Before => return Err(XmlError::MissingRoot),
            Place::Inside { depth: 1 } => {}
            Place::Inside { .. } => return Ok(()),
        }
        if let Some(pending) = self.pending.as_mut() {
            let mut buffer = [0; 4];
            pending.push(Cow::Owned(resolved.encode_utf8(&mut buffer).to_owned()));
        }
        Ok(())
    }

    fn trailing_content(&self) -> XmlError {
        XmlError::TrailingContent {
            position: self.event_start,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(body: &str) -> Fields<'_> {
        Fields::read(body.as_bytes()).expect("the body should be accepted")
    }

    #[test]
    fn bare_text_and_cdata_read_alike() {
        let fields = read(
            "<xml><MsgType>text</MsgType><Content><![CDATA[hi]]></Content>\
             <CreateTime>\n  1348831860\n</CreateTime></xml>",
        );
        assert_eq!(fields.text(Field::MsgType), Some("text"));
        assert_eq!(fields.text(Field::Content), Some("hi"));
        assert_eq!(fields.token(Field::CreateTime), Some("1348831860"));
    }

    #[test]
    fn whitespace_around_cdata_is_trimmed_but_not_inside() {
        let fields = read("<xml><Content>\n  <![CDATA[  two  spaces ]]>  \n</Content></xml>");
        assert_eq!(fields.text(Field::Content), Some("  two  spaces "));
        assert_eq!(fields.token(Field::Content), Some("two  spaces"));
    }

    #[test]
    fn single_chunk_values_borrow_the_body() {
        let fields = read("<xml><Content><![CDATA[hello]]></Content></xml>");
        assert!(matches!(
            fields.values[Field::Content as usize],
            Some(Cow::Borrowed("hello"))
        ));
    }

    #[test]
    fn predefined_entities_and_character_references_resolve() {
        let fields = read(
            "<xml><Content> a &lt;b&gt; &amp; &quot;c&apos; &#x4E2D;&#25991; </Content></xml>",
        );
        assert_eq!(fields.text(Field::Content), Some("a <b> & \"c' 中文"));
    }

    #[test]
    fn cdata_split_around_text_joins() {
        let fields = read("<xml><Content><![CDATA[a]]]]><![CDATA[>b]]></Content></xml>");
        assert_eq!(fields.text(Field::Content), Some("a]]>b"));
    }

    #[test]
    fn empty_element_is_present_and_empty() {
        let fields = read("<xml><EventKey/><Ticket></Ticket></xml>");
        assert_eq!(fields.text(Field::EventKey), Some(""));
        assert_eq!(fields.token(Field::EventKey), None);
        assert_eq!(fields.text(Field::Ticket), Some(""));
        assert_eq!(fields.text(Field::Content), None);
    }

    #[test]
    fn nested_and_unknown_elements_are_skipped() {
        let fields = read(
            "<xml><Event>scancode_push</Event><ScanCodeInfo><ScanType>qrcode</ScanType>\
             <Content>inner</Content></ScanCodeInfo><AgentID>218</AgentID></xml>",
        );
        assert_eq!(fields.text(Field::Event), Some("scancode_push"));
        assert_eq!(fields.text(Field::Content), None);
    }

    #[test]
    fn doctype_is_rejected() {
        let body = "<?xml version=\"1.0\"?><!DOCTYPE xml [<!ENTITY x \"boom\">]><xml><Content>&x;</Content></xml>";
        assert!(matches!(
            Fields::read(body.as_bytes()),
            Err(XmlError::DoctypeNotAllowed)
        ));
    }

    #[test]
    fn undefined_entity_is_rejected() {
        let error = Fields::read(b"<xml><Content>&x;</Content></xml>").unwrap_err();
        assert!(
            matches!(&error, XmlError::UndefinedEntity { name, .. } if name == "x"),
            "expected an undefined entity error, got {error:?}"
        );
    }

    #[test]
    fn wrong_or_missing_root_is_named() {
        assert!(matches!(
            Fields::read(b"<message><MsgType>text</MsgType></message>"),
            Err(XmlError::WrongRoot(name)) if name == "message"
        ));
        assert!(matches!(Fields::read(b""), Err(XmlError::MissingRoot)));
        assert!(matches!(Fields::read(b"  \n"), Err(XmlError::MissingRoot)));
        assert!(matches!(
            Fields::read(b"MsgType=text"),
            Err(XmlError::MissingRoot)
        ));
    }

    #[test]
    fn malformed_xml_reports_a_position() {
        let error = Fields::read(b"<xml><MsgType>text</Content></xml>").unwrap_err();
        assert!(
            matches!(error, XmlError::Syntax { position: 18, .. }),
            "expected a syntax error at byte 18, got {error:?}"
        );
        assert_eq!(error.to_string(), "not well-formed XML at byte 18");
    }

    #[test]
    fn truncated_body_is_unclosed() {
        assert!(matches!(
            Fields::read(b"<xml><MsgType>text</MsgType>"),
            Err(XmlError::Unclosed)
        ));
    }

    #[test]
    fn content_after_root_is_rejected() {
        assert!(matches!(
            Fields::read(b"<xml></xml><xml></xml>"),
            Err(XmlError::TrailingContent { position: 11 })
        ));
        assert!(Fields::read(b"<xml></xml>\n").is_ok());
    }

    #[test]
    fn duplicate_field_is_rejected() {
        assert!(matches!(
            Fields::read(b"<xml><MsgType>text</MsgType><MsgType>image</MsgType></xml>"),
            Err(XmlError::Duplicate("MsgType"))
        ));
    }

    fn fixtures() -> Vec<(String, Vec<u8>)> {
        let folder = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/wechat");
        let mut fixtures: Vec<_> = std::fs::read_dir(folder)
            .expect("the fixture folder should exist")
            .map(|entry| entry.unwrap().path())
            .filter(|path| path.extension().is_some_and(|extension| extension == "xml"))
            .map(|path| (path.display().to_string(), std::fs::read(&path).unwrap()))
            .collect();
        fixtures.sort();
        assert!(
            fixtures.len() >= 20,
            "expected the WeChat fixtures, found {}",
            fixtures.len()
        );
        fixtures
    }

    /// Fails when the fast path accepts a body that the full reader reads differently.
    fn assert_readers_agree(body: &[u8]) {
        let mut fast = Fields::empty();
        if flat::scan(body, &mut fast) {
            let mut full = Fields::empty();
            if let Err(error) = FieldReader::new(body, &mut full).run() {
                panic!(
                    "the fast path accepted {:?} but the full reader failed: {error}",
                    String::from_utf8_lossy(body)
                );
            }
            assert_eq!(fast, full, "body {:?}", String::from_utf8_lossy(body));
        }
    }

    #[test]
    fn fast_path_reads_every_plaintext_fixture() {
        for (name, body) in fixtures() {
            let mut fields = Fields::empty();
            assert!(
                flat::scan(&body, &mut fields),
                "{name} should take the fast path"
            );
        }
    }

    #[test]
    fn fast_path_resolves_references() {
        let body = b"<xml><Content> a &amp; b &lt;3 &#x1F600;&#25991; </Content></xml>";
        let mut fields = Fields::empty();
        assert!(
            flat::scan(body, &mut fields),
            "references should take the fast path"
        );
        assert_eq!(fields.text(Field::Content), Some("a & b <3 😀文"));
    }

    #[test]
    fn fast_path_agrees_on_variants() {
        let variants = [
            "<xml></xml>",
            "<xml/>",
            " \r\n<xml>\t</xml> \n",
            "<xml><Content/><MsgType></MsgType></xml>",
            "<xml><Content>  a  b  </Content></xml>",
            "<xml><Content> \u{3000}全角\u{3000} </Content></xml>",
            "<xml><Content>\n<![CDATA[ x ]]>\n</Content></xml>",
            "<xml><Content><![CDATA[]]></Content></xml>",
            "<xml><Content><![CDATA[a]]>b</Content></xml>",
            "<xml><Content>a<![CDATA[b]]></Content></xml>",
            "<xml><Content><![CDATA[<xml>&amp;]]></Content></xml>",
            "<xml><Content>a > b</Content></xml>",
            "<xml><Content>a &amp; b</Content></xml>",
            "<xml><Content> &lt;&gt;&apos;&quot; &#x1F600;&#25991; </Content></xml>",
            "<xml><Content>&#32;x&#x20;</Content></xml>",
            "<xml><Content>&#0;</Content></xml>",
            "<xml><Content>&#xD800;</Content></xml>",
            "<xml><Content>&#X41;</Content></xml>",
            "<xml><Content>&#+65;</Content></xml>",
            "<xml><Content>&#x;</Content></xml>",
            "<xml><Content>&#65</Content></xml>",
            "<xml><Content>&nbsp;</Content></xml>",
            "<xml><Content>a & b</Content></xml>",
            "<xml><Unknown>&custom;</Unknown></xml>",
            "<xml><Content>x</Content ></xml>",
            "<xml><Content a=\"1\">x</Content></xml>",
            "<xml><Unknown>\u{ff}</Unknown><Content>x</Content></xml>",
            "<xml><Content>x</content></xml>",
            "<xml><Content>x</Content><Content>y</Content></xml>",
            "<xml><ScanCodeInfo><ScanType>qrcode</ScanType></ScanCodeInfo></xml>",
            "<xml><_x>1</_x><9x>1</9x></xml>",
            "<xml><!-- note --><Content>x</Content></xml>",
            "<?xml version=\"1.0\"?><xml><Content>x</Content></xml>",
            "<xml><Content>x</Content></xml><xml/>",
            "<xml><Content>x</Content></xml>trailing",
            "<xml><Content>x</Content>",
            "<xml><Content>x",
            "<xml ><Content>x</Content></xml>",
        ];
        for body in variants {
            assert_readers_agree(body.as_bytes());
        }
    }

    #[test]
    fn fast_path_agrees_on_corrupted_fixtures() {
        for (_, body) in fixtures() {
            for end in 0..body.len() {
                assert_readers_agree(&body[..end]);
            }
            for index in 0..body.len() {
                for replacement in [b'<', b'>', b'/', b'&', b' ', b']', b'x', 0xff] {
                    let mut corrupted = body.clone();
                    corrupted[index] = replacement;
                    assert_readers_agree(&corrupted);
                }
            }
        }
    }

    #[test]
    fn every_field_name_maps_back_to_its_field() {
        for (index, field) in Field::ALL.into_iter().enumerate() {
            assert_eq!(field as usize, index, "Field::ALL out of declaration order");
            assert_eq!(
                Field::from_tag(field.name().as_bytes()),
                Some(field),
                "name {}",
                field.name()
            );
        }
    }

    #[test]
    fn names_close_to_field_names_are_unknown() {
        for tag in [
            &b""[..],
            b"Msg",
            b"MsgI",
            b"MsgTypeX",
            b"msgtype",
            b"Location_Z",
            b"EventKey\0",
            b"ToUserNameToUserName",
        ] {
            assert_eq!(
                Field::from_tag(tag),
                None,
                "tag {:?}",
                String::from_utf8_lossy(tag)
            );
        }
    }

    #[test]
    fn fast_path_reads_names_at_every_window_edge() {
        // Names of 14 to 17 bytes put the `>` at the end of the 16-byte window or past it.
        for name in [
            "A",
            "Abcdefghijklmn",
            "Abcdefghijklmno",
            "Abcdefghijklmnop",
            "Abcdefghijklmnopq",
        ] {
            let body = format!("<xml><{name}>x</{name}><Url>u</Url></xml>");
            let mut fields = Fields::empty();
            assert!(
                flat::scan(body.as_bytes(), &mut fields),
                "{body} should take the fast path"
            );
            assert_eq!(fields.text(Field::Url), Some("u"), "{body}");
            assert_readers_agree(body.as_bytes());
        }
    }

    #[test]
    fn fast_path_agrees_on_name_variants() {
        let variants = [
            "<xml><MsgId>1</MsgId><MsgType>text</MsgType></xml>",
            "<xml><EventKey>k</EventKey><Event>e</Event></xml>",
            "<xml><MediaId16K>a</MediaId16K><MediaId>b</MediaId></xml>",
            "<xml><Location_X>1</Location_X><Location_Y>2</Location_Y></xml>",
            "<xml><Url>x</Url>",
            "<xml><Url>x</Url",
            "<xml><Url>x</Ur></xml>",
            "<xml><Url>x</UrlX></xml>",
            "<xml><Url>x</url></xml>",
            "<xml><MsgId>1</MsgType></xml>",
            "<xml><MsgType>text</MsgId></xml>",
            "<xml><Content>x</Contentx></xml>",
            "<xml><Content>x</Content></xml ",
            "<xml><Content >x</Content></xml>",
            "<xml><Content\n>x</Content></xml>",
            "<xml><Content/></xml>",
            "<xml><Content />x</xml>",
            "<xml><Content\u{0}>x</Content></xml>",
            "<xml><ContentContentContent>x</ContentContentContent></xml>",
            "<xml><x:Content>x</x:Content></xml>",
            "<xml><Url>\u{4E2D}</Url><Title>\u{1F600}</Title></xml>",
        ];
        for body in variants {
            assert_readers_agree(body.as_bytes());
        }
    }

    #[test]
    fn invalid_utf8_names_the_field() {
        assert!(matches!(
            Fields::read(b"<xml><Content>\xff\xfe</Content></xml>"),
            Err(XmlError::InvalidUtf8 { field: "Content" })
        ));
    }
}
