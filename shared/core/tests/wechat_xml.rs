//! WeChat message XML, from the fixture files in `fixtures/wechat`, through `parse_xml`.

use std::collections::HashMap;
use std::path::PathBuf;

use wxkf_core::config::AccountDirectory;
use wxkf_core::ids::{AccountId, CompanyId};
use wxkf_core::message::{Inbound, InboundKind, MediaSource, MessageBody, Profile, UserEvent};
use wxkf_core::time::Timestamp;
use wxkf_core::wechat::{parse_xml, Parsed, XmlError};

const ACCOUNT: &str = "gh_7f083739789a";
const USER: &str = "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o";

fn fixture(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/wechat")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|error| panic!("cannot read {}: {error}", path.display()))
}

/// Builds a directory where the fixtures' account belongs to `acme` and any other account to
/// `default-co`.
fn directory() -> AccountDirectory {
    AccountDirectory {
        default_company: CompanyId::parse("default-co").unwrap(),
        accounts: HashMap::from([(
            AccountId::parse(ACCOUNT).unwrap(),
            CompanyId::parse("acme").unwrap(),
        )]),
    }
}

fn inbound(name: &str) -> Inbound {
    match parse_xml(&fixture(name), &directory()) {
        Ok(Parsed::Inbound(inbound)) => inbound,
        other => panic!("expected {name} to parse as a forwarded message, got {other:?}"),
    }
}

fn message(name: &str) -> (String, MessageBody) {
    let inbound = inbound(name);
    assert_eq!(inbound.company.as_str(), "acme", "company of {name}");
    assert_eq!(inbound.user.as_str(), USER, "user of {name}");
    assert_eq!(inbound.profile, Profile::default(), "profile of {name}");
    match inbound.kind {
        InboundKind::Message { id, body } => (id.to_string(), body),
        InboundKind::Event(event) => panic!("expected {name} to be a message, got {event:?}"),
    }
}

fn event(name: &str) -> UserEvent {
    let inbound = inbound(name);
    assert_eq!(inbound.company.as_str(), "acme", "company of {name}");
    assert_eq!(inbound.user.as_str(), USER, "user of {name}");
    match inbound.kind {
        InboundKind::Event(event) => event,
        InboundKind::Message { body, .. } => panic!("expected {name} to be an event, got {body:?}"),
    }
}

fn parse_error(body: &str) -> XmlError {
    match parse_xml(body.as_bytes(), &directory()) {
        Err(error) => error,
        Ok(parsed) => panic!("expected {body:?} to be rejected, got {parsed:?}"),
    }
}

fn message_xml(msg_type: &str, fields: &str) -> String {
    format!(
        "<xml><ToUserName>{ACCOUNT}</ToUserName><FromUserName>{USER}</FromUserName>\
         <CreateTime>1700000000</CreateTime><MsgType>{msg_type}</MsgType>{fields}</xml>"
    )
}

#[test]
fn text_fixture_parses() {
    let inbound = inbound("text.xml");
    assert_eq!(inbound.sent_at, Timestamp::from_secs(1_348_831_860));
    let (id, body) = message("text.xml");
    assert_eq!(id, "24523365472734781234");
    assert_eq!(
        body,
        MessageBody::Text {
            content: "this is a test".into()
        }
    );
}

#[test]
fn twenty_digit_msg_id_survives_exactly() {
    let (id, _) = message("text.xml");
    assert_eq!(id, "24523365472734781234");
    assert_ne!(id, (24523365472734781234_u128 as f64).to_string());
}

#[test]
fn text_keeps_special_characters() {
    let (_, body) = message("text_special_characters.xml");
    assert_eq!(
        body,
        MessageBody::Text {
            content: "你好，客服 😀 /::) \u{1d}行末".into()
        }
    );
}

#[test]
fn simplified_form_takes_user_from_to_user_name() {
    let inbound = inbound("text_simplified.xml");
    assert_eq!(inbound.user.as_str(), "toUser");
    assert_eq!(inbound.company.as_str(), "default-co");
    assert_eq!(inbound.sent_at, Timestamp::from_secs(1_348_831_860));
    match inbound.kind {
        InboundKind::Message { id, body } => {
            assert_eq!(id.as_str(), "1234567890123456");
            assert_eq!(
                body,
                MessageBody::Text {
                    content: "this is a test".into()
                }
            );
        }
        other => panic!("expected a text message, got {other:?}"),
    }
}

#[test]
fn unmapped_account_goes_to_default_company() {
    let body = String::from_utf8(fixture("text.xml"))
        .unwrap()
        .replace(ACCOUNT, "gh_unmapped");
    match parse_xml(body.as_bytes(), &directory()).unwrap() {
        Parsed::Inbound(inbound) => assert_eq!(inbound.company.as_str(), "default-co"),
        other => panic!("expected a message, got {other:?}"),
    }
}

#[test]
fn image_fixture_parses() {
    let (id, body) = message("image.xml");
    assert_eq!(id, "24523365472734781236");
    assert_eq!(
        body,
        MessageBody::Image {
            media: MediaSource {
                media_id: Some("Xr9kW2pZ3vYq7bN1cD5eF8gH0jK4mL6nP2rS9tU3wV7x".into()),
                url: Some("http://mmbiz.qpic.cn/mmbiz_jpg/5cJ3K0ibHSZmTXqE/0".into()),
            }
        }
    );
}

#[test]
fn voice_fixture_keeps_media_id_16k() {
    let (_, body) = message("voice.xml");
    assert_eq!(
        body,
        MessageBody::Voice {
            media: MediaSource {
                media_id: Some("vQ3mN8bX1cZ5dF2gH7jK9lP0rS4tU6wY8aB3eC5fG7hJ".into()),
                url: None,
            },
            format: Some("amr".into()),
            recognition: None,
            media_id_16k: Some("vQ3mN8bX1cZ5dF2gH7jK9lP0rS4tU6wY8aB3eC5f16k0".into()),
        }
    );
}

#[test]
fn video_and_shortvideo_fixtures_parse() {
    let (_, video) = message("video.xml");
    assert_eq!(
        video,
        MessageBody::Video {
            media: MediaSource {
                media_id: Some("mV1dE2oF3iG4lH5eI6mJ7eK8dL9iM0aN1iO2dP3vQ4iR5d".into()),
                url: None,
            },
            thumb_media_id: Some("tH1uM2bN3mO4eP5dQ6iR7aS8iT9dU0vV1iW2dX3tY4hZ5m".into()),
            short: false,
        }
    );

    let (_, short) = message("shortvideo.xml");
    assert_eq!(
        short,
        MessageBody::Video {
            media: MediaSource {
                media_id: Some("sV1dE2oF3iG4lH5eI6mJ7eK8dL9iM0aN1iO2dP3vQ4iR5d".into()),
                url: None,
            },
            thumb_media_id: Some("sT1uM2bN3mO4eP5dQ6iR7aS8iT9dU0vV1iW2dX3tY4hZ5m".into()),
            short: true,
        }
    );
}

#[test]
fn location_fixture_parses() {
    let (_, body) = message("location.xml");
    assert_eq!(
        body,
        MessageBody::Location {
            latitude: 23.134521,
            longitude: 113.358803,
            scale: Some(20.0),
            label: "广州市天河区天河路".into(),
        }
    );
}

#[test]
fn link_fixture_parses() {
    let (_, body) = message("link.xml");
    assert_eq!(
        body,
        MessageBody::Link {
            title: "公众平台官网链接".into(),
            description: "公众平台官网链接".into(),
            url: "https://mp.weixin.qq.com/".into(),
        }
    );
}

#[test]
fn plain_subscribe_has_no_scene() {
    for name in ["event_subscribe.xml", "event_subscribe_empty_key.xml"] {
        assert_eq!(
            event(name),
            UserEvent::Subscribe {
                scene: None,
                ticket: None
            },
            "{name}"
        );
    }
}

#[test]
fn qr_subscribe_strips_the_prefix() {
    assert_eq!(
        event("event_subscribe_qrscene.xml"),
        UserEvent::Subscribe {
            scene: Some("123123".into()),
            ticket: Some(
                "gQH47joAAAAAAAAAASxodHRwOi8vd2VpeGluLnFxLmNvbS9xL2taZ2Z3TVRtNzJXV1Brb3ZhYmJJAAIEZ23sUwMEmm3sUw=="
                    .into()
            ),
        }
    );
}

#[test]
fn qrscene_prefix_is_stripped_once() {
    let cases = [
        ("qrscene_qrscene_x", Some("qrscene_x")),
        ("qrscene_", None),
        ("last_qrscene_5", None),
        ("QRSCENE_5", None),
        ("  qrscene_7  ", Some("7")),
    ];
    for (key, expected) in cases {
        let body = message_xml(
            "event",
            &format!("<Event>subscribe</Event><EventKey><![CDATA[{key}]]></EventKey>"),
        );
        let Ok(Parsed::Inbound(inbound)) = parse_xml(body.as_bytes(), &directory()) else {
            panic!("expected subscribe with EventKey {key:?} to parse");
        };
        assert_eq!(
            inbound.kind,
            InboundKind::Event(UserEvent::Subscribe {
                scene: expected.map(str::to_owned),
                ticket: None
            }),
            "EventKey {key:?}"
        );
    }
}

#[test]
fn unsubscribe_fixture_parses() {
    let inbound = inbound("event_unsubscribe.xml");
    assert_eq!(inbound.sent_at, Timestamp::from_secs(1_348_831_860));
    assert_eq!(inbound.kind, InboundKind::Event(UserEvent::Unsubscribe));
}

#[test]
fn scan_keeps_event_key_as_scene() {
    assert_eq!(
        event("event_scan.xml"),
        UserEvent::Scan {
            scene: "123123".into(),
            ticket: Some(
                "gQH47joAAAAAAAAAASxodHRwOi8vd2VpeGluLnFxLmNvbS9xL2taZ2Z3TVRtNzJXV1Brb3ZhYmJJAAIEZ23sUwMEmm3sUw=="
                    .into()
            ),
        }
    );
}

#[test]
fn location_event_fixture_parses() {
    assert_eq!(
        event("event_location.xml"),
        UserEvent::Location {
            latitude: 23.137466,
            longitude: 113.352425,
            precision: Some(119.38504),
        }
    );
}

#[test]
fn click_and_view_fixtures_parse() {
    assert_eq!(
        event("event_click.xml"),
        UserEvent::Click {
            key: "CONTACT_SERVICE".into()
        }
    );
    assert_eq!(
        event("event_view.xml"),
        UserEvent::View {
            url: "https://www.example.com/help".into(),
            menu_id: Some("412345678".into()),
        }
    );
}

#[test]
fn account_events_are_ignored() {
    for (name, event) in [
        ("event_masssendjobfinish.xml", "MASSSENDJOBFINISH"),
        ("event_templatesendjobfinish.xml", "TEMPLATESENDJOBFINISH"),
    ] {
        assert_eq!(
            parse_xml(&fixture(name), &directory()).unwrap(),
            Parsed::Ignored {
                msg_type: "event".into(),
                event: Some(event.into()),
            },
            "{name}"
        );
    }
}

#[test]
fn unknown_msg_type_is_ignored() {
    assert_eq!(
        parse_xml(&fixture("unknown_msg_type.xml"), &directory()).unwrap(),
        Parsed::Ignored {
            msg_type: "miniprogrampage".into(),
            event: None,
        }
    );
}

#[test]
fn event_names_are_case_sensitive() {
    let body = message_xml("event", "<Event>Subscribe</Event>");
    assert_eq!(
        parse_xml(body.as_bytes(), &directory()).unwrap(),
        Parsed::Ignored {
            msg_type: "event".into(),
            event: Some("Subscribe".into()),
        }
    );
}

#[test]
fn encrypted_envelope_alone_is_not_a_message() {
    let error = match parse_xml(&fixture("encrypted_safe.xml"), &directory()) {
        Err(error) => error,
        Ok(parsed) => panic!("expected the envelope to be rejected, got {parsed:?}"),
    };
    assert_eq!(error.to_string(), "missing MsgType");
}

#[test]
fn compatible_mode_plaintext_fields_parse() {
    let Parsed::Inbound(inbound) = parse_xml(&fixture("encrypted_compatible.xml"), &directory())
        .expect("the compatible-mode body should parse")
    else {
        panic!("expected a forwarded message");
    };
    assert_eq!(inbound.user.as_str(), "oyORnuP8q7ou2gfYjqLzSIWZf0rs");
    assert_eq!(
        inbound.kind,
        InboundKind::Message {
            id: wxkf_core::ids::MessageId::parse("6054768590064713728").unwrap(),
            body: MessageBody::Text {
                content: "abcdteT".into()
            },
        }
    );
}

#[test]
fn fields_accept_bare_text_cdata_and_whitespace() {
    let body = "<xml>\n  <ToUserName>  gh_7f083739789a </ToUserName>\n  \
        <FromUserName>\n<![CDATA[oUpF8uMuAJO_M2pxb1Q9zNjWeS6o]]>\n</FromUserName>\n  \
        <CreateTime><![CDATA[ 1700000000 ]]></CreateTime>\n  \
        <MsgType> <![CDATA[location]]> </MsgType>\n  \
        <Location_X>\t23.5 </Location_X><Location_Y><![CDATA[113.25]]></Location_Y>\n  \
        <Scale> </Scale><Label/>\n  <MsgId> <![CDATA[42]]> </MsgId>\n</xml>";
    let Parsed::Inbound(inbound) = parse_xml(body.as_bytes(), &directory()).unwrap() else {
        panic!("expected a forwarded message");
    };
    assert_eq!(inbound.company.as_str(), "acme");
    assert_eq!(inbound.user.as_str(), USER);
    assert_eq!(inbound.sent_at, Timestamp::from_secs(1_700_000_000));
    assert_eq!(
        inbound.kind,
        InboundKind::Message {
            id: wxkf_core::ids::MessageId::parse("42").unwrap(),
            body: MessageBody::Location {
                latitude: 23.5,
                longitude: 113.25,
                scale: None,
                label: String::new(),
            },
        }
    );
}

#[test]
fn message_without_msg_id_gets_a_generated_id() {
    let body = message_xml("text", "<Content>hi</Content>");
    let Parsed::Inbound(inbound) = parse_xml(body.as_bytes(), &directory()).unwrap() else {
        panic!("expected a forwarded message");
    };
    let InboundKind::Message { id, .. } = inbound.kind else {
        panic!("expected a message");
    };
    assert!(id.as_str().starts_with("wx"), "generated id {id}");
    assert_eq!(id.as_str().len(), 26);
}

#[test]
fn missing_fields_are_named() {
    let cases = [
        (
            "<xml><ToUserName>u</ToUserName><CreateTime>1</CreateTime></xml>".to_owned(),
            "missing MsgType",
        ),
        (
            "<xml><CreateTime>1</CreateTime><MsgType>text</MsgType><Content>x</Content></xml>"
                .to_owned(),
            "missing ToUserName",
        ),
        (
            "<xml><ToUserName>u</ToUserName><MsgType>text</MsgType><Content>x</Content></xml>"
                .to_owned(),
            "missing CreateTime",
        ),
        (message_xml("text", ""), "missing Content in text message"),
        (
            message_xml("image", "<PicUrl> </PicUrl>"),
            "missing PicUrl or MediaId in image message",
        ),
        (
            message_xml("voice", "<Format>amr</Format>"),
            "missing MediaId in voice message",
        ),
        (message_xml("video", ""), "missing MediaId in video message"),
        (
            message_xml("shortvideo", ""),
            "missing MediaId in shortvideo message",
        ),
        (
            message_xml("location", "<Location_X>1</Location_X>"),
            "missing Location_Y in location message",
        ),
        (
            message_xml("link", "<Title>t</Title>"),
            "missing Url in link message",
        ),
        (message_xml("event", ""), "missing Event in event message"),
        (
            message_xml("event", "<Event>SCAN</Event>"),
            "missing EventKey in SCAN event",
        ),
        (
            message_xml("event", "<Event>CLICK</Event><EventKey/>"),
            "missing EventKey in CLICK event",
        ),
        (
            message_xml("event", "<Event>VIEW</Event>"),
            "missing EventKey in VIEW event",
        ),
        (
            message_xml("event", "<Event>LOCATION</Event><Latitude>1</Latitude>"),
            "missing Longitude in LOCATION event",
        ),
    ];
    for (body, expected) in cases {
        assert_eq!(parse_error(&body).to_string(), expected, "body {body}");
    }
}

#[test]
fn invalid_numbers_are_named() {
    let cases = [
        (
            message_xml("text", "<Content>x</Content>").replace("1700000000", "soon"),
            "invalid number in CreateTime: \"soon\"",
        ),
        (
            message_xml("text", "<Content>x</Content><MsgId>12a</MsgId>"),
            "invalid number in MsgId: \"12a\"",
        ),
        (
            message_xml("text", "<Content>x</Content><MsgId>2.4e19</MsgId>"),
            "invalid number in MsgId: \"2.4e19\"",
        ),
        (
            message_xml("location", "<Location_X>north</Location_X><Location_Y>1</Location_Y>"),
            "invalid number in Location_X: \"north\"",
        ),
        (
            message_xml("location", "<Location_X>1</Location_X><Location_Y>NaN</Location_Y>"),
            "invalid number in Location_Y: \"NaN\"",
        ),
        (
            message_xml(
                "event",
                "<Event>LOCATION</Event><Latitude>1</Latitude><Longitude>2</Longitude><Precision>inf</Precision>",
            ),
            "invalid number in Precision: \"inf\"",
        ),
    ];
    for (body, expected) in cases {
        assert_eq!(parse_error(&body).to_string(), expected, "body {body}");
    }
}

#[test]
fn invalid_ids_are_named() {
    let body = message_xml("text", "<Content>x</Content>").replace(USER, "o&#10;user");
    let error = parse_error(&body);
    assert!(
        matches!(
            error,
            XmlError::InvalidId {
                field: "FromUserName",
                ..
            }
        ),
        "expected an invalid FromUserName, got {error:?}"
    );
    assert_eq!(error.to_string(), "invalid FromUserName");
    let source = std::error::Error::source(&error).expect("the id error is kept as the source");
    assert_eq!(
        source.to_string(),
        "contact_id contains a control character or whitespace"
    );
}

#[test]
fn doctype_and_entities_are_rejected() {
    let billion_laughs = "<?xml version=\"1.0\"?>\n<!DOCTYPE xml [\n<!ENTITY a \"aaaaaaaaaa\">\n\
        <!ENTITY b \"&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;\">\n]>\n\
        <xml><MsgType>text</MsgType><Content>&b;</Content></xml>";
    assert!(matches!(
        parse_error(billion_laughs),
        XmlError::DoctypeNotAllowed
    ));
    assert_eq!(
        parse_error(billion_laughs).to_string(),
        "DOCTYPE is not allowed in message XML"
    );

    let external = "<!DOCTYPE xml SYSTEM \"file:///etc/passwd\"><xml/>";
    assert!(matches!(parse_error(external), XmlError::DoctypeNotAllowed));

    let undefined = message_xml("text", "<Content>&xxe;</Content>");
    assert!(matches!(
        parse_error(&undefined),
        XmlError::UndefinedEntity { ref name, .. } if name == "xxe"
    ));
}

#[test]
fn malformed_xml_is_a_clear_error() {
    let cases = [
        ("", "missing root <xml>"),
        ("hello", "missing root <xml>"),
        (
            "<root><MsgType>text</MsgType></root>",
            "root element must be <xml>, found <root>",
        ),
        (
            "<xml><MsgType>text</MsgType>",
            "not well-formed XML: the body ends before </xml>",
        ),
        (
            "<xml><MsgType>text</Content></xml>",
            "not well-formed XML at byte 18",
        ),
        (
            "<xml></xml><xml></xml>",
            "not well-formed XML: content after </xml> at byte 11",
        ),
        (
            "<xml><MsgType>text</MsgType><MsgType>link</MsgType></xml>",
            "duplicate MsgType",
        ),
    ];
    for (body, expected) in cases {
        assert_eq!(parse_error(body).to_string(), expected, "body {body:?}");
    }
}

#[test]
fn truncated_and_corrupted_fixtures_never_panic() {
    let names = [
        "text.xml",
        "text_special_characters.xml",
        "voice.xml",
        "location.xml",
        "event_view.xml",
        "encrypted_compatible.xml",
    ];
    for name in names {
        let body = fixture(name);
        for end in 0..body.len() {
            let _ = parse_xml(&body[..end], &directory());
        }
        for index in 0..body.len() {
            for replacement in [b'<', b'>', b'&', b']', 0xff, 0] {
                let mut corrupted = body.clone();
                corrupted[index] = replacement;
                let _ = parse_xml(&corrupted, &directory());
            }
        }
    }
}
