//! The JSON `send` route's body: a message from a WeChat user, passed on by an upstream system
//! in the agent frame's own shape.
//!
//! ```json
//! {"data": {"msg_type": "text", "contact_id": "OPENID", "data": {"content": "…"}},
//!  "result": {"code": 1001, "message": "common"}}
//! ```
//!
//! `data` may also carry `id`, `name`, `avatar`, `company_id` and `send_time`. Errors name the
//! field by its path, such as `data.data.content`, because they go back to the caller.

use serde_json::{Map, Value};

use crate::config::AccountDirectory;
use crate::frame::{code_for_msg_type, parse_i64};
use crate::ids::{CompanyId, IdError, MessageId, OpenId};
use crate::message::{Inbound, InboundKind, MediaSource, MessageBody, Profile};
use crate::time::Timestamp;

/// The latest `send_time` accepted: 9999-12-31T23:59:59Z. A larger value is almost always
/// milliseconds sent in place of seconds.
const MAX_SEND_TIME_SECS: i64 = 253_402_300_799;

/// An error that rejects a `send` body. Its message goes back to the caller.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum UpstreamError {
    #[error("body is not valid JSON: {0}")]
    InvalidJson(String),
    #[error("{field} is missing")]
    Missing { field: &'static str },
    #[error("{field} must be {expected}")]
    WrongType {
        field: &'static str,
        expected: &'static str,
    },
    #[error("data.msg_type {0:?} is not supported; expected text, image, voice, video, location or link")]
    UnsupportedMsgType(String),
    #[error("result.code {code} does not match msg_type {msg_type:?} (expected {expected})")]
    CodeMismatch {
        code: i64,
        msg_type: String,
        expected: i32,
    },
    #[error("{field} is invalid: {reason}")]
    InvalidId {
        field: &'static str,
        reason: IdError,
    },
    #[error("{field} is missing; an image, voice or video message needs media_path or media_id")]
    MissingMedia { field: &'static str },
    #[error("data.send_time {0} is out of range; expected Unix seconds, not milliseconds")]
    SendTimeOutOfRange(i64),
}

/// Parses a `send` body into the message it carries.
///
/// `id` may be a string or a non-negative integer and defaults to a generated id, `send_time`
/// (Unix seconds) defaults to `now`, and `company_id` to the default company. An empty string
/// counts as absent, because the protocol's examples send `"id": ""`.
pub fn parse_send(
    body: &[u8],
    directory: &AccountDirectory,
    now: Timestamp,
) -> Result<Inbound, UpstreamError> {
    let root: Value = serde_json::from_slice(body)
        .map_err(|error| UpstreamError::InvalidJson(error.to_string()))?;
    let root = as_object(&root, "body")?;
    let data = required_object(root, "data")?;

    let msg_type = required_string(data, "data.msg_type")?;
    let fields = required_object(data, "data.data")?;
    let message = read_body(msg_type, fields)?;
    check_result_code(root, msg_type)?;

    let user = OpenId::parse(required_string(data, "data.contact_id")?).map_err(|reason| {
        UpstreamError::InvalidId {
            field: "data.contact_id",
            reason,
        }
    })?;
    let company = match optional_string(data, "data.company_id")? {
        Some(company) => CompanyId::parse(company).map_err(|reason| UpstreamError::InvalidId {
            field: "data.company_id",
            reason,
        })?,
        None => directory.default_company.clone(),
    };

    Ok(Inbound {
        company,
        user,
        profile: Profile {
            name: optional_string(data, "data.name")?.map(str::to_owned),
            avatar: optional_string(data, "data.avatar")?.map(str::to_owned),
        },
        sent_at: read_send_time(data)?.unwrap_or(now),
        kind: InboundKind::Message {
            id: read_id(data)?,
            body: message,
        },
    })
}

fn read_body(msg_type: &str, fields: &Map<String, Value>) -> Result<MessageBody, UpstreamError> {
    let optional = |path| optional_string(fields, path).map(|value| value.map(str::to_owned));

    let body = match msg_type {
        "text" => MessageBody::Text {
            content: string_or_empty(fields, "data.data.content")?
                .ok_or(UpstreamError::Missing {
                    field: "data.data.content",
                })?
                .to_owned(),
        },
        "image" => MessageBody::Image {
            media: read_media(fields)?,
        },
        "voice" => MessageBody::Voice {
            media: read_media(fields)?,
            format: optional("data.data.format")?,
            recognition: optional("data.data.recognition")?,
            media_id_16k: optional("data.data.media_id_16k")?,
        },
        "video" => MessageBody::Video {
            media: read_media(fields)?,
            thumb_media_id: optional("data.data.thumb_media_id")?,
            short: false,
        },
        "location" => MessageBody::Location {
            latitude: required_number(fields, "data.data.latitude")?,
            longitude: required_number(fields, "data.data.longitude")?,
            scale: optional_number(fields, "data.data.scale")?,
            label: string_or_empty(fields, "data.data.label")?
                .unwrap_or_default()
                .to_owned(),
        },
        "link" => MessageBody::Link {
            title: required_string(fields, "data.data.title")?.to_owned(),
            description: string_or_empty(fields, "data.data.description")?
                .unwrap_or_default()
                .to_owned(),
            url: required_string(fields, "data.data.url")?.to_owned(),
        },
        other => return Err(UpstreamError::UnsupportedMsgType(other.to_owned())),
    };
    Ok(body)
}

fn read_media(fields: &Map<String, Value>) -> Result<MediaSource, UpstreamError> {
    let media = MediaSource {
        media_id: optional_string(fields, "data.data.media_id")?.map(str::to_owned),
        url: optional_string(fields, "data.data.media_path")?.map(str::to_owned),
    };
    if media.media_id.is_none() && media.url.is_none() {
        return Err(UpstreamError::MissingMedia {
            field: "data.data.media_path",
        });
    }
    Ok(media)
}

/// Checks `result.code` against `msg_type` when the caller sent one. The code may be a number
/// or a numeric string, as in the agent protocol.
fn check_result_code(root: &Map<String, Value>, msg_type: &str) -> Result<(), UpstreamError> {
    let Some(result) = lookup(root, "result") else {
        return Ok(());
    };
    let Some(code) = lookup(as_object(result, "result")?, "result.code") else {
        return Ok(());
    };
    let code = parse_i64(code).ok_or(UpstreamError::WrongType {
        field: "result.code",
        expected: "a number",
    })?;

    match code_for_msg_type(msg_type) {
        Some(expected) if i64::from(expected) != code => Err(UpstreamError::CodeMismatch {
            code,
            msg_type: msg_type.to_owned(),
            expected,
        }),
        _ => Ok(()),
    }
}

/// Reads `data.id` as its exact text. An integer is accepted only up to `u64::MAX`, because
/// serde_json stores larger ones as floats that would change their digits.
fn read_id(data: &Map<String, Value>) -> Result<MessageId, UpstreamError> {
    let text = match lookup(data, "data.id") {
        None => return Ok(MessageId::generate()),
        Some(Value::String(text)) if text.is_empty() => return Ok(MessageId::generate()),
        Some(Value::String(text)) => text.clone(),
        Some(Value::Number(number)) if number.is_u64() => number.to_string(),
        Some(_) => {
            return Err(UpstreamError::WrongType {
                field: "data.id",
                expected: "a string or a non-negative integer",
            })
        }
    };
    MessageId::parse(text).map_err(|reason| UpstreamError::InvalidId {
        field: "data.id",
        reason,
    })
}

fn read_send_time(data: &Map<String, Value>) -> Result<Option<Timestamp>, UpstreamError> {
    let Some(value) = lookup(data, "data.send_time") else {
        return Ok(None);
    };
    let secs = value.as_i64().ok_or(UpstreamError::WrongType {
        field: "data.send_time",
        expected: "an integer (Unix seconds)",
    })?;
    if !(0..=MAX_SEND_TIME_SECS).contains(&secs) {
        return Err(UpstreamError::SendTimeOutOfRange(secs));
    }
    Ok(Some(Timestamp::from_secs(secs)))
}

/// Returns the member named by the last segment of `path`, treating `null` as absent.
fn lookup<'v>(object: &'v Map<String, Value>, path: &'static str) -> Option<&'v Value> {
    let key = path.rsplit_once('.').map_or(path, |(_, key)| key);
    object.get(key).filter(|value| !value.is_null())
}

fn as_object<'v>(
    value: &'v Value,
    path: &'static str,
) -> Result<&'v Map<String, Value>, UpstreamError> {
    value.as_object().ok_or(UpstreamError::WrongType {
        field: path,
        expected: "a JSON object",
    })
}

fn required_object<'v>(
    object: &'v Map<String, Value>,
    path: &'static str,
) -> Result<&'v Map<String, Value>, UpstreamError> {
    let value = lookup(object, path).ok_or(UpstreamError::Missing { field: path })?;
    as_object(value, path)
}

/// Reads an optional string, keeping an empty one.
fn string_or_empty<'v>(
    object: &'v Map<String, Value>,
    path: &'static str,
) -> Result<Option<&'v str>, UpstreamError> {
    match lookup(object, path) {
        None => Ok(None),
        Some(value) => value.as_str().map(Some).ok_or(UpstreamError::WrongType {
            field: path,
            expected: "a string",
        }),
    }
}

/// Reads an optional string; an empty one counts as absent.
fn optional_string<'v>(
    object: &'v Map<String, Value>,
    path: &'static str,
) -> Result<Option<&'v str>, UpstreamError> {
    Ok(string_or_empty(object, path)?.filter(|value| !value.is_empty()))
}

fn required_string<'v>(
    object: &'v Map<String, Value>,
    path: &'static str,
) -> Result<&'v str, UpstreamError> {
    optional_string(object, path)?.ok_or(UpstreamError::Missing { field: path })
}

fn optional_number(
    object: &Map<String, Value>,
    path: &'static str,
) -> Result<Option<f64>, UpstreamError> {
    match lookup(object, path) {
        None => Ok(None),
        Some(value) => value.as_f64().map(Some).ok_or(UpstreamError::WrongType {
            field: path,
            expected: "a number",
        }),
    }
}

fn required_number(object: &Map<String, Value>, path: &'static str) -> Result<f64, UpstreamError> {
    optional_number(object, path)?.ok_or(UpstreamError::Missing { field: path })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Timestamp = Timestamp(1_700_000_000_000);

    fn directory() -> AccountDirectory {
        AccountDirectory::single(CompanyId::parse("acme").unwrap())
    }

    fn parse(body: &str) -> Result<Inbound, UpstreamError> {
        parse_send(body.as_bytes(), &directory(), NOW)
    }

    fn error_text(body: &str) -> String {
        match parse(body) {
            Ok(inbound) => panic!("expected {body} to be rejected, got {inbound:?}"),
            Err(error) => error.to_string(),
        }
    }

    fn message_body(inbound: &Inbound) -> &MessageBody {
        match &inbound.kind {
            InboundKind::Message { body, .. } => body,
            InboundKind::Event(event) => panic!("expected a message, got {event:?}"),
        }
    }

    fn message_id(inbound: &Inbound) -> &str {
        match &inbound.kind {
            InboundKind::Message { id, .. } => id.as_str(),
            InboundKind::Event(event) => panic!("expected a message, got {event:?}"),
        }
    }

    #[test]
    fn minimal_text_uses_defaults() {
        let inbound = parse(
            r#"{"data":{"msg_type":"text","contact_id":"oUser","data":{"content":"你好 😀 /::)"}},
                "result":{"code":1001,"message":"common"}}"#,
        )
        .unwrap();
        assert_eq!(inbound.company.as_str(), "acme");
        assert_eq!(inbound.user.as_str(), "oUser");
        assert_eq!(inbound.profile, Profile::default());
        assert_eq!(inbound.sent_at, NOW);
        assert!(
            message_id(&inbound).starts_with("wx"),
            "generated id {}",
            message_id(&inbound)
        );
        assert_eq!(
            message_body(&inbound),
            &MessageBody::Text {
                content: "你好 😀 /::)".into()
            }
        );
    }

    #[test]
    fn optional_fields_are_taken() {
        let inbound = parse(
            r#"{"data":{"msg_type":"text","contact_id":"oUser","data":{"content":"hi"},
                "id":"up-42","name":"小明","avatar":"https://example.com/a.png",
                "company_id":"beta","send_time":1678688556}}"#,
        )
        .unwrap();
        assert_eq!(message_id(&inbound), "up-42");
        assert_eq!(inbound.company.as_str(), "beta");
        assert_eq!(inbound.profile.name.as_deref(), Some("小明"));
        assert_eq!(
            inbound.profile.avatar.as_deref(),
            Some("https://example.com/a.png")
        );
        assert_eq!(inbound.sent_at, Timestamp::from_secs(1_678_688_556));
    }

    #[test]
    fn integer_id_keeps_its_digits() {
        let inbound = parse(
            r#"{"data":{"msg_type":"text","contact_id":"o","id":18446744073709551615,"data":{"content":""}}}"#,
        )
        .unwrap();
        assert_eq!(message_id(&inbound), "18446744073709551615");
    }

    #[test]
    fn id_beyond_u64_or_fractional_is_rejected() {
        for id in ["18446744073709551616", "1.5", "-1", "true"] {
            let body = format!(
                r#"{{"data":{{"msg_type":"text","contact_id":"o","id":{id},"data":{{"content":"x"}}}}}}"#
            );
            assert_eq!(
                error_text(&body),
                "data.id must be a string or a non-negative integer",
                "id {id}"
            );
        }
    }

    #[test]
    fn empty_strings_count_as_absent() {
        let inbound = parse(
            r#"{"data":{"msg_type":"text","contact_id":"o","id":"","name":"","avatar":"","company_id":"","data":{"content":"x"}}}"#,
        )
        .unwrap();
        assert!(message_id(&inbound).starts_with("wx"));
        assert_eq!(inbound.profile, Profile::default());
        assert_eq!(inbound.company.as_str(), "acme");
    }

    #[test]
    fn media_types_read_path_and_id() {
        let inbound = parse(
            r#"{"data":{"msg_type":"voice","contact_id":"o","data":{"media_path":"https://example.com/v.amr","media_id":"M1","format":"amr"}},"result":{"code":"1003"}}"#,
        )
        .unwrap();
        assert_eq!(
            message_body(&inbound),
            &MessageBody::Voice {
                media: MediaSource {
                    media_id: Some("M1".into()),
                    url: Some("https://example.com/v.amr".into()),
                },
                format: Some("amr".into()),
                recognition: None,
                media_id_16k: None,
            }
        );

        let inbound = parse(
            r#"{"data":{"msg_type":"video","contact_id":"o","data":{"media_path":"https://example.com/v.mp4"}},"result":{"code":1004}}"#,
        )
        .unwrap();
        assert_eq!(
            message_body(&inbound),
            &MessageBody::Video {
                media: MediaSource {
                    media_id: None,
                    url: Some("https://example.com/v.mp4".into()),
                },
                thumb_media_id: None,
                short: false,
            }
        );
    }

    #[test]
    fn media_without_source_is_rejected() {
        assert_eq!(
            error_text(r#"{"data":{"msg_type":"image","contact_id":"o","data":{}}}"#),
            "data.data.media_path is missing; an image, voice or video message needs media_path or media_id"
        );
    }

    #[test]
    fn location_and_link_parse() {
        let inbound = parse(
            r#"{"data":{"msg_type":"location","contact_id":"o","data":{"latitude":23.134521,"longitude":113.358803,"scale":20,"label":"广州"}}}"#,
        )
        .unwrap();
        assert_eq!(
            message_body(&inbound),
            &MessageBody::Location {
                latitude: 23.134521,
                longitude: 113.358803,
                scale: Some(20.0),
                label: "广州".into(),
            }
        );

        let inbound = parse(
            r#"{"data":{"msg_type":"link","contact_id":"o","data":{"title":"T","url":"https://example.com/"}}}"#,
        )
        .unwrap();
        assert_eq!(
            message_body(&inbound),
            &MessageBody::Link {
                title: "T".into(),
                description: String::new(),
                url: "https://example.com/".into(),
            }
        );
    }

    #[test]
    fn errors_name_field_and_problem() {
        let cases = [
            ("{not json", "body is not valid JSON: key must be a string at line 1 column 2"),
            ("[]", "body must be a JSON object"),
            (r#"{"result":{}}"#, "data is missing"),
            (r#"{"data":{"msg_type":"text","data":{"content":"x"}}}"#, "data.contact_id is missing"),
            (r#"{"data":{"msg_type":"text","contact_id":"o"}}"#, "data.data is missing"),
            (r#"{"data":{"msg_type":"text","contact_id":"o","data":{}}}"#, "data.data.content is missing"),
            (r#"{"data":{"msg_type":"text","contact_id":"o","data":{"content":5}}}"#, "data.data.content must be a string"),
            (r#"{"data":{"msg_type":7,"contact_id":"o","data":{}}}"#, "data.msg_type must be a string"),
            (r#"{"data":{"msg_type":"text","contact_id":"a b","data":{"content":"x"}}}"#, "data.contact_id is invalid: contact_id contains a control character or whitespace"),
            (r#"{"data":{"msg_type":"text","contact_id":"o","data":{"content":"x"}},"result":{"code":1002}}"#, r#"result.code 1002 does not match msg_type "text" (expected 1001)"#),
            (r#"{"data":{"msg_type":"text","contact_id":"o","data":{"content":"x"}},"result":{"code":"abc"}}"#, "result.code must be a number"),
            (r#"{"data":{"msg_type":"location","contact_id":"o","data":{"latitude":"23.1","longitude":113.3}}}"#, "data.data.latitude must be a number"),
            (r#"{"data":{"msg_type":"location","contact_id":"o","data":{"latitude":23.1}}}"#, "data.data.longitude is missing"),
            (r#"{"data":{"msg_type":"link","contact_id":"o","data":{"title":"T"}}}"#, "data.data.url is missing"),
            (r#"{"data":{"msg_type":"text","contact_id":"o","send_time":1700000000000,"data":{"content":"x"}}}"#, "data.send_time 1700000000000 is out of range; expected Unix seconds, not milliseconds"),
            (r#"{"data":{"msg_type":"text","contact_id":"o","send_time":"1700000000","data":{"content":"x"}}}"#, "data.send_time must be an integer (Unix seconds)"),
        ];
        for (body, expected) in cases {
            assert_eq!(error_text(body), expected, "body {body}");
        }
    }

    #[test]
    fn system_and_unknown_msg_types_are_rejected() {
        for msg_type in ["system", "sticker"] {
            let body =
                format!(r#"{{"data":{{"msg_type":"{msg_type}","contact_id":"o","data":{{}}}}}}"#);
            assert_eq!(
                error_text(&body),
                format!("data.msg_type \"{msg_type}\" is not supported; expected text, image, voice, video, location or link")
            );
        }
    }

    #[test]
    fn garbage_bodies_never_panic() {
        let bodies: [&[u8]; 6] = [
            b"",
            b"null",
            b"\xff\xfe",
            b"{\"data\":null}",
            b"{\"data\":[]}",
            b"1e999",
        ];
        for body in bodies {
            assert!(parse_send(body, &directory(), NOW).is_err(), "{body:?}");
        }
    }
}
