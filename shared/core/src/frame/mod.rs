//! The agent WebSocket protocol: frames the hub sends and requests it accepts.
//!
//! Every frame is one JSON object `{"data": {…}, "result": {"code": N, "message": "…"}}`. The
//! codes are fixed by the original protocol: 101 heartbeat, 102 system, 1001–1004 text, image,
//! voice and video, and -1 error; 1005 location and 1006 link are wxkf's additions.
//! `result.code` is always a JSON number in what the hub sends.

mod json;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{json, Map, Value};

use crate::ids::{CompanyId, MessageId, OpenId, Seq, SYSTEM_CONTACT_ID};
use crate::message::{MediaSource, MessageBody};
use crate::time::Timestamp;

pub(crate) use json::ObjectWriter;

pub const CODE_HEARTBEAT: i32 = 101;
pub const CODE_SYSTEM: i32 = 102;
pub const CODE_ERROR: i32 = -1;

/// Returns the `result.code` for a message frame's `msg_type`, or `None` for an unknown type.
pub fn code_for_msg_type(msg_type: &str) -> Option<i32> {
    match msg_type {
        "system" => Some(CODE_SYSTEM),
        "text" => Some(1001),
        "image" => Some(1002),
        "voice" => Some(1003),
        "video" => Some(1004),
        "location" => Some(1005),
        "link" => Some(1006),
        _ => None,
    }
}

/// The sender name system frames carry.
pub const SYSTEM_NAME: &str = "系统消息";

/// A message or system frame as it is stored in an agent's stream and sent to its sockets.
///
/// The frame is kept as its JSON text, `{"data":{…},"result":{…}}`, written once when the
/// message arrives: every message passes through here, and building a struct of strings only
/// to serialise it again cost about half of the XML-to-frame conversion. A push splices the
/// frame's stream position in as `data.seq`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The text without `seq`.
    json: Box<str>,
    /// Byte offset of the `}` that closes `data`, where `,"seq":N` goes.
    data_end: usize,
    seq: Option<u64>,
}

/// Stored text that is not a frame.
#[derive(Debug, thiserror::Error)]
#[error("invalid frame JSON")]
pub struct InvalidFrame(#[source] serde_json::Error);

/// The fields every frame has, for writing.
struct Envelope<'a> {
    id: &'a str,
    name: &'a str,
    avatar: &'a str,
    msg_type: &'a str,
    contact_id: &'a str,
    company_id: &'a str,
    send_time: i64,
    code: i32,
    message: &'a str,
}

/// A frame's fields as they appear in stored text, for reading it back.
#[derive(Deserialize)]
struct StoredFrame {
    data: StoredData,
    result: StoredResult,
}

#[derive(Deserialize)]
struct StoredData {
    id: String,
    name: String,
    avatar: String,
    msg_type: String,
    contact_id: String,
    company_id: String,
    send_time: i64,
    data: Box<RawValue>,
    #[serde(default)]
    seq: Option<u64>,
}

#[derive(Deserialize)]
struct StoredResult {
    code: i32,
    message: String,
}

impl Frame {
    /// Builds the frame for a user's message.
    pub fn message(
        id: &MessageId,
        company: &CompanyId,
        user: &OpenId,
        name: &str,
        avatar: &str,
        sent_at: Timestamp,
        body: &MessageBody,
    ) -> Frame {
        let msg_type = body.msg_type();
        let envelope = Envelope {
            id: id.as_str(),
            name,
            avatar,
            msg_type,
            contact_id: user.as_str(),
            company_id: company.as_str(),
            send_time: sent_at.as_secs(),
            code: code_for_msg_type(msg_type).unwrap_or(CODE_SYSTEM),
            message: "common",
        };
        Frame::write(&envelope, |data| {
            let mut object = data.object("data");
            write_message_body(&mut object, body);
            object.close();
        })
    }

    /// Builds a system frame (code 102) whose `data.data` is `{"event": …, "text": …}` plus
    /// `fields`.
    pub fn system(
        id: &MessageId,
        company: &CompanyId,
        at: Timestamp,
        event: &str,
        text: &str,
        fields: Map<String, Value>,
    ) -> Frame {
        let mut body = fields;
        body.insert("event".to_owned(), Value::from(event));
        body.insert("text".to_owned(), Value::from(text));
        Frame::system_with_body(id, company, at, &body)
    }

    /// Builds a system frame whose `data.data` object `body` writes, starting with `event` and
    /// `text`.
    pub(crate) fn system_written(
        id: &MessageId,
        company: &CompanyId,
        at: Timestamp,
        body: impl FnOnce(&mut ObjectWriter<'_>),
    ) -> Frame {
        Frame::write(&Frame::system_envelope(id, company, at), |data| {
            let mut object = data.object("data");
            body(&mut object);
            object.close();
        })
    }

    fn system_envelope<'a>(
        id: &'a MessageId,
        company: &'a CompanyId,
        at: Timestamp,
    ) -> Envelope<'a> {
        Envelope {
            id: id.as_str(),
            name: SYSTEM_NAME,
            avatar: "",
            msg_type: "system",
            contact_id: SYSTEM_CONTACT_ID,
            company_id: company.as_str(),
            send_time: at.as_secs(),
            code: CODE_SYSTEM,
            message: "common",
        }
    }

    /// Builds a system frame from a body that serialises to an object with `event` and `text`.
    pub fn system_with_body(
        id: &MessageId,
        company: &CompanyId,
        at: Timestamp,
        body: &impl Serialize,
    ) -> Frame {
        let body = serde_json::to_string(body).expect("frame bodies are plain JSON data");
        Frame::write(&Frame::system_envelope(id, company, at), |data| {
            data.raw("data", &body);
        })
    }

    /// Writes the envelope, with `body` writing the `data.data` field.
    fn write(envelope: &Envelope, body: impl FnOnce(&mut ObjectWriter<'_>)) -> Frame {
        let strings = envelope.id.len()
            + envelope.name.len()
            + envelope.avatar.len()
            + envelope.contact_id.len()
            + envelope.company_id.len();
        let mut out = String::with_capacity(320 + strings);
        let mut frame = ObjectWriter::open(&mut out);

        let mut data = frame.object("data");
        data.string("id", envelope.id)
            .string("name", envelope.name)
            .string("avatar", envelope.avatar)
            .string("msg_type", envelope.msg_type)
            .string("contact_id", envelope.contact_id)
            .string("company_id", envelope.company_id)
            .integer("send_time", envelope.send_time);
        body(&mut data);
        let data_end = data.len();
        data.close();

        frame
            .object("result")
            .integer("code", envelope.code)
            .string("message", envelope.message)
            .close();
        frame.close();
        Frame {
            json: out.into_boxed_str(),
            data_end,
            seq: None,
        }
    }

    /// Reads a frame back from stored text, such as [`Frame::to_json`] or
    /// [`Frame::json_without_seq`] wrote.
    pub fn from_json(text: &str) -> Result<Frame, InvalidFrame> {
        let stored: StoredFrame = serde_json::from_str(text).map_err(InvalidFrame)?;
        let data = &stored.data;
        let envelope = Envelope {
            id: &data.id,
            name: &data.name,
            avatar: &data.avatar,
            msg_type: &data.msg_type,
            contact_id: &data.contact_id,
            company_id: &data.company_id,
            send_time: data.send_time,
            code: stored.result.code,
            message: &stored.result.message,
        };
        let frame = Frame::write(&envelope, |writer| {
            writer.raw("data", data.data.get());
        });
        Ok(Frame {
            seq: data.seq,
            ..frame
        })
    }

    /// Returns the frame as it is sent, carrying its stream position.
    pub fn with_seq(mut self, seq: Seq) -> Frame {
        self.seq = Some(seq.0);
        self
    }

    /// Returns the frame's stream position, once it has one.
    pub fn seq(&self) -> Option<Seq> {
        self.seq.map(Seq)
    }

    /// Returns the JSON text without `seq`, as stores keep it.
    pub fn json_without_seq(&self) -> &str {
        &self.json
    }

    /// Returns the frame as JSON text, with `data.seq` when it has a position.
    pub fn to_json(&self) -> String {
        match self.seq {
            Some(seq) => self.to_json_with_seq(Seq(seq)),
            None => self.json.to_string(),
        }
    }

    /// Returns the frame as JSON text at stream position `seq`.
    pub fn to_json_with_seq(&self, seq: Seq) -> String {
        let seq = seq.0;
        let mut out = String::with_capacity(self.json.len() + 28);
        out.push_str(&self.json[..self.data_end]);
        out.push_str(",\"seq\":");
        json::push_integer(&mut out, seq);
        out.push_str(&self.json[self.data_end..]);
        out
    }

    /// Parses the frame into a `Value`, for callers that inspect its fields.
    pub fn to_value(&self) -> Value {
        serde_json::from_str(&self.to_json()).expect("a frame is valid JSON")
    }
}

/// Serialises as the frame's JSON object (with `seq` when it has one).
impl Serialize for Frame {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let raw = RawValue::from_string(self.to_json()).map_err(serde::ser::Error::custom)?;
        raw.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Frame {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = Box::<RawValue>::deserialize(deserializer)?;
        Frame::from_json(raw.get()).map_err(serde::de::Error::custom)
    }
}

/// Writes the type-specific `data.data` of a message frame. Media bodies always have
/// `media_path` (empty when the source has no URL) and the other fields only when WeChat sent
/// them.
fn write_message_body(object: &mut ObjectWriter<'_>, body: &MessageBody) {
    match body {
        MessageBody::Text { content } => {
            object.string("content", content);
        }
        MessageBody::Image { media } => {
            media_fields(object, media);
        }
        MessageBody::Voice {
            media,
            format,
            recognition,
            media_id_16k,
        } => {
            media_fields(object, media)
                .optional_string("format", format.as_deref())
                .optional_string("recognition", recognition.as_deref())
                .optional_string("media_id_16k", media_id_16k.as_deref());
        }
        MessageBody::Video {
            media,
            thumb_media_id,
            short,
        } => {
            media_fields(object, media)
                .optional_string("thumb_media_id", thumb_media_id.as_deref())
                .optional_string("wechat_type", short.then_some("shortvideo"));
        }
        MessageBody::Location {
            latitude,
            longitude,
            scale,
            label,
        } => {
            object
                .float("latitude", *latitude)
                .float("longitude", *longitude)
                .nullable_float("scale", *scale)
                .string("label", label);
        }
        MessageBody::Link {
            title,
            description,
            url,
        } => {
            object
                .string("title", title)
                .string("description", description)
                .string("url", url);
        }
    }
}

fn media_fields<'w, 'o>(
    object: &'w mut ObjectWriter<'o>,
    media: &MediaSource,
) -> &'w mut ObjectWriter<'o> {
    object
        .string("media_path", media.url.as_deref().unwrap_or(""))
        .optional_string("media_id", media.media_id.as_deref())
}

/// Returns the code 101 frame sent in reply to an agent's heartbeat.
pub fn heartbeat_frame() -> String {
    r#"{"data":{},"result":{"code":101,"message":"heartbeat"}}"#.to_owned()
}

/// Returns the code -1 frame that gives an agent the reason its frame was rejected.
pub fn error_frame(error: &str) -> String {
    json!({ "data": { "error": error }, "result": { "code": CODE_ERROR, "message": "error" } })
        .to_string()
}

/// A frame an agent sent, parsed.
#[derive(Debug, Clone, PartialEq)]
pub enum AgentRequest {
    Heartbeat,
    /// Everything up to `seq` arrived.
    Ack {
        seq: Seq,
    },
    /// Send the contact list again.
    Contacts,
    /// A reply to a contact; `client_msg_id` lets the agent match the outcome.
    Send {
        client_msg_id: Option<String>,
        data: Value,
    },
}

/// Why an agent's frame was rejected; the text goes back in a code -1 frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("frame is not valid JSON: {0}")]
    InvalidJson(String),
    #[error("frame must be a JSON object")]
    NotAnObject,
    #[error("unknown action {0:?}; expected heartbeat, ack, contacts or send")]
    UnknownAction(String),
    #[error("action must be a string")]
    ActionNotString,
    #[error("ack needs a non-negative integer seq")]
    InvalidAckSeq,
    #[error("frame has neither an action nor result.code 101 (heartbeat)")]
    Unrecognized,
    #[error("result.code {0} is not something an agent can send; only 101 (heartbeat) is")]
    UnexpectedCode(String),
}

impl AgentRequest {
    /// Parses an agent's text frame. Both heartbeat forms are accepted: the original
    /// `{"data":{},"result":{"code":101,"message":"heartbeat"}}` (code as a number or a numeric
    /// string) and `{"action":"heartbeat"}`.
    pub fn parse(text: &str) -> Result<AgentRequest, RequestError> {
        let value: Value = serde_json::from_str(text)
            .map_err(|error| RequestError::InvalidJson(error.to_string()))?;
        let Value::Object(object) = value else {
            return Err(RequestError::NotAnObject);
        };

        if let Some(action) = object.get("action") {
            let action = action.as_str().ok_or(RequestError::ActionNotString)?;
            return match action {
                "heartbeat" => Ok(AgentRequest::Heartbeat),
                "contacts" => Ok(AgentRequest::Contacts),
                "ack" => {
                    let seq = object
                        .get("seq")
                        .and_then(parse_u64)
                        .ok_or(RequestError::InvalidAckSeq)?;
                    Ok(AgentRequest::Ack { seq: Seq(seq) })
                }
                "send" => Ok(AgentRequest::Send {
                    client_msg_id: object
                        .get("client_msg_id")
                        .and_then(Value::as_str)
                        .map(str::to_owned),
                    data: object.get("data").cloned().unwrap_or(Value::Null),
                }),
                other => Err(RequestError::UnknownAction(other.to_owned())),
            };
        }

        match object.get("result").and_then(|result| result.get("code")) {
            Some(code) => match parse_i64(code) {
                Some(101) => Ok(AgentRequest::Heartbeat),
                _ => Err(RequestError::UnexpectedCode(code.to_string())),
            },
            None => Err(RequestError::Unrecognized),
        }
    }
}

/// Reads a JSON number or a string of decimal digits, as the original protocol sometimes
/// writes codes as strings.
pub(crate) fn parse_i64(value: &Value) -> Option<i64> {
    match value {
        Value::Number(number) => number.as_i64(),
        Value::String(text) => text.trim().parse().ok(),
        _ => None,
    }
}

fn parse_u64(value: &Value) -> Option<u64> {
    match value {
        Value::Number(number) => number.as_u64(),
        Value::String(text) => text.trim().parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_heartbeat_forms_parse() {
        let seed = r#"{"data":{},"result":{"code":101,"message":"heartbeat"}}"#;
        let string_code = r#"{"data":{},"result":{"code":"101","message":"heartbeat"}}"#;
        let action = r#"{"action":"heartbeat"}"#;
        for text in [seed, string_code, action] {
            assert_eq!(
                AgentRequest::parse(text),
                Ok(AgentRequest::Heartbeat),
                "{text}"
            );
        }
    }

    #[test]
    fn ack_needs_a_seq() {
        assert_eq!(
            AgentRequest::parse(r#"{"action":"ack","seq":7}"#),
            Ok(AgentRequest::Ack { seq: Seq(7) })
        );
        assert_eq!(
            AgentRequest::parse(r#"{"action":"ack"}"#),
            Err(RequestError::InvalidAckSeq)
        );
        assert_eq!(
            AgentRequest::parse(r#"{"action":"ack","seq":-1}"#),
            Err(RequestError::InvalidAckSeq)
        );
    }

    #[test]
    fn unknown_and_malformed_frames_are_named() {
        assert_eq!(
            AgentRequest::parse(r#"{"action":"dance"}"#),
            Err(RequestError::UnknownAction("dance".into()))
        );
        assert!(matches!(
            AgentRequest::parse("{not json"),
            Err(RequestError::InvalidJson(_))
        ));
        assert_eq!(AgentRequest::parse("[1]"), Err(RequestError::NotAnObject));
        assert_eq!(
            AgentRequest::parse(r#"{"result":{"code":1001}}"#),
            Err(RequestError::UnexpectedCode("1001".into()))
        );
    }

    #[test]
    fn message_frame_has_seed_fields_in_order() {
        let frame = Frame::message(
            &MessageId::parse("1234567890123456").unwrap(),
            &CompanyId::parse("acme").unwrap(),
            &OpenId::parse("oUser").unwrap(),
            "",
            "",
            Timestamp::from_secs(1_348_831_860),
            &MessageBody::Text {
                content: "你好 😀 /::)".into(),
            },
        )
        .with_seq(Seq(3));
        assert_eq!(
            frame.to_json(),
            r#"{"data":{"id":"1234567890123456","name":"","avatar":"","msg_type":"text","contact_id":"oUser","company_id":"acme","send_time":1348831860,"data":{"content":"你好 😀 /::)"},"seq":3},"result":{"code":1001,"message":"common"}}"#
        );
    }

    #[test]
    fn frames_round_trip_through_stored_text() {
        let media = MediaSource {
            media_id: Some("media\"1".into()),
            url: Some("http://mmbiz.qpic.cn/a.jpg?x=1&y=\u{1d}".into()),
        };
        let bodies = [
            MessageBody::Text {
                content: "你好 😀 /::) \"quoted\" \\ \n\u{1d}".into(),
            },
            MessageBody::Image {
                media: MediaSource::default(),
            },
            MessageBody::Voice {
                media: media.clone(),
                format: Some("amr".into()),
                recognition: Some("".into()),
                media_id_16k: None,
            },
            MessageBody::Video {
                media,
                thumb_media_id: Some("thumb".into()),
                short: true,
            },
            MessageBody::Location {
                latitude: 23.134521,
                longitude: -113.358803,
                scale: None,
                label: "广州市".into(),
            },
            MessageBody::Link {
                title: "t".into(),
                description: String::new(),
                url: "https://example.com/?a=\"b\"".into(),
            },
        ];
        for body in &bodies {
            let frame = Frame::message(
                &MessageId::parse("24523365472734781234").unwrap(),
                &CompanyId::parse("acme").unwrap(),
                &OpenId::parse("oUser\"1").unwrap(),
                "小明\t",
                "https://a.example/\u{7f}.png",
                Timestamp::from_secs(1_348_831_860),
                body,
            );
            let value = frame.to_value();
            assert!(
                value["data"]["data"].is_object(),
                "body of {body:?} is a JSON object"
            );
            assert_eq!(value["data"]["contact_id"], "oUser\"1");
            assert_eq!(value["data"]["name"], "小明\t");
            assert_eq!(value["data"]["avatar"], "https://a.example/\u{7f}.png");
            assert_eq!(value["data"].get("seq"), None, "no seq before a position");
            assert_eq!(
                Frame::from_json(frame.json_without_seq()).unwrap(),
                frame,
                "stored text reads back as the same frame"
            );

            let with_seq = frame.with_seq(Seq(u64::MAX));
            let value = with_seq.to_value();
            assert_eq!(value["data"]["seq"], u64::MAX);
            assert_eq!(
                value["result"]["code"],
                code_for_msg_type(body.msg_type()).unwrap()
            );
            let read_back: Frame = serde_json::from_str(&with_seq.to_json()).unwrap();
            assert_eq!(
                read_back, with_seq,
                "serde reads the frame back with its seq"
            );
            assert_eq!(
                serde_json::to_string(&with_seq).unwrap(),
                with_seq.to_json()
            );
        }
    }

    #[test]
    fn message_bodies_have_protocol_fields() {
        let location = Frame::message(
            &MessageId::parse("1").unwrap(),
            &CompanyId::parse("acme").unwrap(),
            &OpenId::parse("o").unwrap(),
            "",
            "",
            Timestamp::from_secs(0),
            &MessageBody::Location {
                latitude: 23.1,
                longitude: 113.3,
                scale: Some(20.0),
                label: "广州".into(),
            },
        );
        assert_eq!(
            location.to_value()["data"]["data"],
            json!({"latitude": 23.1, "longitude": 113.3, "scale": 20.0, "label": "广州"})
        );
        let image = Frame::message(
            &MessageId::parse("2").unwrap(),
            &CompanyId::parse("acme").unwrap(),
            &OpenId::parse("o").unwrap(),
            "",
            "",
            Timestamp::from_secs(0),
            &MessageBody::Image {
                media: MediaSource {
                    media_id: Some("m".into()),
                    url: None,
                },
            },
        );
        assert_eq!(
            image.to_value()["data"]["data"],
            json!({"media_path": "", "media_id": "m"})
        );
    }

    #[test]
    fn system_frame_comes_from_system01() {
        let frame = Frame::system(
            &MessageId::parse("s1").unwrap(),
            &CompanyId::parse("acme").unwrap(),
            Timestamp::from_secs(10),
            "contact_assigned",
            "新联系人",
            Map::new(),
        );
        let value = frame.to_value();
        assert_eq!(value["data"]["contact_id"], "system01");
        assert_eq!(value["data"]["name"], "系统消息");
        assert_eq!(value["result"]["code"], 102);
        assert_eq!(value["data"]["data"]["event"], "contact_assigned");
    }
}
