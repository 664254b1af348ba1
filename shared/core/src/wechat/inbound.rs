//! WeChat's message XML turned into an [`Inbound`]: the message types and user events the hub
//! forwards to agents, and [`Parsed::Ignored`] for everything else.

use crate::config::AccountDirectory;
use crate::ids::{AccountId, CompanyId, MessageId, OpenId};
use crate::message::{Inbound, InboundKind, MediaSource, MessageBody, Profile, UserEvent};
use crate::time::Timestamp;

use super::xml::{Field, Fields, XmlError};

/// A message body that was read successfully.
#[derive(Debug, Clone, PartialEq)]
pub enum Parsed {
    Inbound(Inbound),
    /// Accepted but not forwarded: an unknown `MsgType`, or an event that is unknown or about
    /// the account rather than a user (`MASSSENDJOBFINISH`, `TEMPLATESENDJOBFINISH`, which spell
    /// their id `MsgID`).
    Ignored {
        msg_type: String,
        /// The `Event` of an ignored event message.
        event: Option<String>,
    },
}

/// The message types and events wxkf forwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Message(MessageKind),
    Event(EventKind),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MessageKind {
    Text,
    Image,
    Voice,
    Video { short: bool },
    Location,
    Link,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EventKind {
    Subscribe,
    Unsubscribe,
    Scan,
    Location,
    Click,
    View,
}

/// Parses a message or event as WeChat pushes it, or in the simplified form.
///
/// WeChat's form has `ToUserName` (the official account, `gh_…`) and `FromUserName` (the
/// user's OpenID), and the company is the account's in `directory`. The simplified form has no
/// `FromUserName`: `ToUserName` names the user and the company is the default one.
///
/// Every field may be bare text or CDATA with whitespace around it. A message without `MsgId`
/// gets a generated id. An unknown type or event needs only `MsgType` (and `Event`) and
/// returns [`Parsed::Ignored`]. The error names the missing or invalid field.
pub fn parse_xml(body: &[u8], directory: &AccountDirectory) -> Result<Parsed, XmlError> {
    let mut fields = Fields::empty();
    fields.read_from(body)?;

    let Some(msg_type) = fields.token(Field::MsgType) else {
        return Err(XmlError::Missing("MsgType"));
    };
    let event = if msg_type == "event" {
        Some(
            fields
                .token(Field::Event)
                .ok_or_else(|| missing_in(Field::Event, "event message"))?,
        )
    } else {
        None
    };
    let Some(kind) = classify(msg_type, event) else {
        return Ok(Parsed::Ignored {
            msg_type: msg_type.to_owned(),
            event: event.map(str::to_owned),
        });
    };

    let (company, user) = read_sender(&fields, directory)?;
    let created = required(&fields, Field::CreateTime)?;
    let created: i64 = created
        .parse()
        .map_err(|_| invalid_number(Field::CreateTime, created))?;

    let kind = match kind {
        Kind::Message(kind) => InboundKind::Message {
            id: read_message_id(&fields)?,
            body: read_body(kind, &fields)?,
        },
        Kind::Event(kind) => InboundKind::Event(read_event(kind, &fields)?),
    };

    Ok(Parsed::Inbound(Inbound {
        company,
        user,
        profile: Profile::default(),
        sent_at: Timestamp::from_secs(created),
        kind,
    }))
}

/// Event names are case-sensitive: WeChat writes `subscribe` and `unsubscribe` in lower case
/// and the others in upper case.
fn classify(msg_type: &str, event: Option<&str>) -> Option<Kind> {
    let kind = match (msg_type, event) {
        ("text", _) => Kind::Message(MessageKind::Text),
        ("image", _) => Kind::Message(MessageKind::Image),
        ("voice", _) => Kind::Message(MessageKind::Voice),
        ("video", _) => Kind::Message(MessageKind::Video { short: false }),
        ("shortvideo", _) => Kind::Message(MessageKind::Video { short: true }),
        ("location", _) => Kind::Message(MessageKind::Location),
        ("link", _) => Kind::Message(MessageKind::Link),
        ("event", Some("subscribe")) => Kind::Event(EventKind::Subscribe),
        ("event", Some("unsubscribe")) => Kind::Event(EventKind::Unsubscribe),
        ("event", Some("SCAN")) => Kind::Event(EventKind::Scan),
        ("event", Some("LOCATION")) => Kind::Event(EventKind::Location),
        ("event", Some("CLICK")) => Kind::Event(EventKind::Click),
        ("event", Some("VIEW")) => Kind::Event(EventKind::View),
        _ => return None,
    };
    Some(kind)
}

fn read_sender(
    fields: &Fields<'_>,
    directory: &AccountDirectory,
) -> Result<(CompanyId, OpenId), XmlError> {
    match fields.token(Field::FromUserName) {
        Some(from) => {
            let user = parse_id(OpenId::parse, Field::FromUserName, from)?;
            // With no accounts mapped every message goes to the default company, so the
            // account id is neither needed nor checked.
            if directory.accounts.is_empty() {
                return Ok((directory.default_company.clone(), user));
            }
            let account = fields
                .token(Field::ToUserName)
                .map(|to| parse_id(AccountId::parse, Field::ToUserName, to))
                .transpose()?;
            Ok((directory.company_of(account.as_ref()).clone(), user))
        }
        None => {
            let to = required(fields, Field::ToUserName)?;
            let user = parse_id(OpenId::parse, Field::ToUserName, to)?;
            Ok((directory.default_company.clone(), user))
        }
    }
}

/// Reads `MsgId` as its decimal digits, because MsgIds exceed 2^53 and a float would change
/// them.
fn read_message_id(fields: &Fields<'_>) -> Result<MessageId, XmlError> {
    match fields.token(Field::MsgId) {
        Some(digits) if digits.bytes().all(|byte| byte.is_ascii_digit()) => {
            parse_id(MessageId::parse, Field::MsgId, digits)
        }
        Some(other) => Err(invalid_number(Field::MsgId, other)),
        None => Ok(MessageId::generate()),
    }
}

fn read_body(kind: MessageKind, fields: &Fields<'_>) -> Result<MessageBody, XmlError> {
    let optional = |field| fields.token(field).map(str::to_owned);
    let free_text = |field| fields.text(field).unwrap_or_default().to_owned();

    let body = match kind {
        MessageKind::Text => MessageBody::Text {
            content: fields
                .text(Field::Content)
                .ok_or_else(|| missing_in(Field::Content, "text message"))?
                .to_owned(),
        },
        MessageKind::Image => {
            let media = MediaSource {
                media_id: optional(Field::MediaId),
                url: optional(Field::PicUrl),
            };
            if media.media_id.is_none() && media.url.is_none() {
                return Err(XmlError::MissingIn {
                    field: "PicUrl or MediaId",
                    context: "image message",
                });
            }
            MessageBody::Image { media }
        }
        MessageKind::Voice => MessageBody::Voice {
            media: media_by_id(fields, "voice message")?,
            format: optional(Field::Format),
            recognition: fields
                .text(Field::Recognition)
                .filter(|text| !text.trim().is_empty())
                .map(str::to_owned),
            media_id_16k: optional(Field::MediaId16K),
        },
        MessageKind::Video { short } => MessageBody::Video {
            media: media_by_id(
                fields,
                if short {
                    "shortvideo message"
                } else {
                    "video message"
                },
            )?,
            thumb_media_id: optional(Field::ThumbMediaId),
            short,
        },
        MessageKind::Location => MessageBody::Location {
            latitude: required_float(fields, Field::LocationX, "location message")?,
            longitude: required_float(fields, Field::LocationY, "location message")?,
            scale: optional_float(fields, Field::Scale)?,
            label: free_text(Field::Label),
        },
        MessageKind::Link => MessageBody::Link {
            title: free_text(Field::Title),
            description: free_text(Field::Description),
            url: fields
                .token(Field::Url)
                .ok_or_else(|| missing_in(Field::Url, "link message"))?
                .to_owned(),
        },
    };
    Ok(body)
}

fn read_event(kind: EventKind, fields: &Fields<'_>) -> Result<UserEvent, XmlError> {
    let ticket = fields.token(Field::Ticket).map(str::to_owned);

    let event = match kind {
        EventKind::Subscribe => UserEvent::Subscribe {
            scene: fields
                .token(Field::EventKey)
                .and_then(|key| key.strip_prefix("qrscene_"))
                .filter(|scene| !scene.is_empty())
                .map(str::to_owned),
            ticket,
        },
        EventKind::Unsubscribe => UserEvent::Unsubscribe,
        EventKind::Scan => UserEvent::Scan {
            scene: required_in(fields, Field::EventKey, "SCAN event")?.to_owned(),
            ticket,
        },
        EventKind::Location => UserEvent::Location {
            latitude: required_float(fields, Field::Latitude, "LOCATION event")?,
            longitude: required_float(fields, Field::Longitude, "LOCATION event")?,
            precision: optional_float(fields, Field::Precision)?,
        },
        EventKind::Click => UserEvent::Click {
            key: required_in(fields, Field::EventKey, "CLICK event")?.to_owned(),
        },
        EventKind::View => UserEvent::View {
            url: required_in(fields, Field::EventKey, "VIEW event")?.to_owned(),
            menu_id: fields.token(Field::MenuId).map(str::to_owned),
        },
    };
    Ok(event)
}

fn media_by_id(fields: &Fields<'_>, context: &'static str) -> Result<MediaSource, XmlError> {
    Ok(MediaSource {
        media_id: Some(required_in(fields, Field::MediaId, context)?.to_owned()),
        url: None,
    })
}

fn required<'f>(fields: &'f Fields<'_>, field: Field) -> Result<&'f str, XmlError> {
    fields
        .token(field)
        .ok_or_else(|| XmlError::Missing(field.name()))
}

fn required_in<'f>(
    fields: &'f Fields<'_>,
    field: Field,
    context: &'static str,
) -> Result<&'f str, XmlError> {
    fields
        .token(field)
        .ok_or_else(|| missing_in(field, context))
}

fn required_float(
    fields: &Fields<'_>,
    field: Field,
    context: &'static str,
) -> Result<f64, XmlError> {
    parse_float(field, required_in(fields, field, context)?)
}

fn optional_float(fields: &Fields<'_>, field: Field) -> Result<Option<f64>, XmlError> {
    fields
        .token(field)
        .map(|value| parse_float(field, value))
        .transpose()
}

/// Parses a decimal number. Rust also reads `inf` and `NaN`, which no coordinate can be.
fn parse_float(field: Field, value: &str) -> Result<f64, XmlError> {
    value
        .parse::<f64>()
        .ok()
        .filter(|number| number.is_finite())
        .ok_or_else(|| invalid_number(field, value))
}

fn parse_id<T>(
    parse: impl FnOnce(String) -> Result<T, crate::ids::IdError>,
    field: Field,
    value: &str,
) -> Result<T, XmlError> {
    parse(value.to_owned()).map_err(|source| XmlError::InvalidId {
        field: field.name(),
        source,
    })
}

fn missing_in(field: Field, context: &'static str) -> XmlError {
    XmlError::MissingIn {
        field: field.name(),
        context,
    }
}

fn invalid_number(field: Field, value: &str) -> XmlError {
    XmlError::InvalidNumber {
        field: field.name(),
        value: value.to_owned(),
    }
}
