//! Message XML to the JSON text an agent's socket receives: the per-message work of the
//! `send_xml` route minus storing and pushing. Frames are built by the hub's own
//! [`inbound_frame`], so the benchmark times exactly what the hub sends.

use wxkf_core::config::AccountDirectory;
use wxkf_core::hub::{frame_id, inbound_frame};
use wxkf_core::ids::Seq;
use wxkf_core::wechat::{self, Parsed, XmlError};

/// Parses one message and returns its frame as JSON, or `None` for a message the hub accepts
/// but does not forward.
pub fn frame_json(
    xml: &[u8],
    directory: &AccountDirectory,
    seq: Seq,
) -> Result<Option<String>, XmlError> {
    let Parsed::Inbound(inbound) = wechat::parse_xml(xml, directory)? else {
        return Ok(None);
    };

    // A pushed XML message carries no nickname or avatar. The hub then uses the ones stored
    // with the contact, which are empty for a new contact.
    let name = inbound.profile.name.as_deref().unwrap_or("");
    let avatar = inbound.profile.avatar.as_deref().unwrap_or("");
    let id = frame_id(&inbound);
    let frame = inbound_frame(&inbound, &id, name, avatar);
    Ok(Some(frame.to_json_with_seq(seq)))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::path::Path;

    use serde_json::Value;
    use wxkf_core::ids::CompanyId;

    use super::*;
    use crate::corpus;

    fn directory() -> AccountDirectory {
        AccountDirectory::single(CompanyId::parse("default").unwrap())
    }

    fn render(xml: &str) -> Value {
        let json = frame_json(xml.as_bytes(), &directory(), Seq(7))
            .unwrap()
            .expect("message should be forwarded");
        serde_json::from_str(&json).unwrap()
    }

    #[test]
    fn corpus_covers_every_forwarded_type() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus/wechat-messages.xml");
        let mut kinds = BTreeSet::new();
        for (index, xml) in corpus::read(&path).unwrap().iter().enumerate() {
            let frame = frame_json(xml.as_bytes(), &directory(), Seq(1))
                .unwrap_or_else(|error| panic!("corpus message {index} is invalid: {error}"))
                .unwrap_or_else(|| panic!("corpus message {index} is not forwarded"));
            let frame: Value = serde_json::from_str(&frame).unwrap();
            let kind = match frame["data"]["msg_type"].as_str().unwrap() {
                "system" => frame["data"]["data"]["event"].as_str().unwrap().to_owned(),
                msg_type => msg_type.to_owned(),
            };
            kinds.insert(kind);
        }
        let expected = [
            "image",
            "link",
            "location",
            "menu_click",
            "menu_view",
            "text",
            "user_location",
            "user_scanned",
            "user_subscribed",
            "user_unsubscribed",
            "video",
            "voice",
        ];
        assert_eq!(
            kinds,
            expected.map(str::to_owned).into(),
            "frame kinds in the corpus"
        );
    }

    #[test]
    fn text_frame_keeps_twenty_digit_msg_id() {
        let frame = render(
            "<xml><ToUserName>gh_a</ToUserName><FromUserName>oUser</FromUserName>\
             <CreateTime>1733302811</CreateTime><MsgType>text</MsgType>\
             <Content><![CDATA[你好 😀]]></Content><MsgId>24829357190345612801</MsgId></xml>",
        );
        assert_eq!(frame["data"]["id"], "24829357190345612801");
        assert_eq!(frame["data"]["seq"], 7);
        assert_eq!(frame["data"]["data"]["content"], "你好 😀");
        assert_eq!(frame["result"]["code"], 1001);
    }

    #[test]
    fn view_event_frame_has_url_and_menu_id() {
        let frame = render(
            "<xml><ToUserName>gh_a</ToUserName><FromUserName>oUser</FromUserName>\
             <CreateTime>1733304241</CreateTime><MsgType>event</MsgType><Event>VIEW</Event>\
             <EventKey>https://example.com/a</EventKey><MenuId>41</MenuId></xml>",
        );
        let body = &frame["data"]["data"];
        assert_eq!(body["event"], "menu_view");
        assert_eq!(body["text"], "用户 oUser 打开了菜单链接");
        assert_eq!(body["url"], "https://example.com/a");
        assert_eq!(body["menu_id"], "41");
        assert_eq!(frame["data"]["contact_id"], "system01");
        assert_eq!(frame["result"]["code"], 102);
    }
}
