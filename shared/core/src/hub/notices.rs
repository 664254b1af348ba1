//! The system frames (code 102) the hub raises, with a stable English `event` for programs and
//! a Chinese `text` for the agent.

use serde_json::{json, Map, Value};

use crate::frame::Frame;
use crate::ids::{CompanyId, MessageId, OpenId, Seq};
use crate::message::UserEvent;
use crate::ports::Contact;
use crate::time::Timestamp;

/// The user a notice is about, as agents see it.
pub(crate) struct UserRef<'a> {
    pub user: &'a OpenId,
    pub name: &'a str,
    pub avatar: &'a str,
}

impl UserRef<'_> {
    fn fields(&self) -> Map<String, Value> {
        let mut fields = Map::new();
        fields.insert("contact_id".into(), Value::from(self.user.as_str()));
        fields.insert("name".into(), Value::from(self.name));
        fields.insert("avatar".into(), Value::from(self.avatar));
        fields
    }

    /// Returns the name shown to the agent: the nickname, else the OpenID.
    fn label(&self) -> &str {
        if self.name.is_empty() {
            self.user.as_str()
        } else {
            self.name
        }
    }
}

pub(crate) fn contact_assigned(company: &CompanyId, at: Timestamp, user: &UserRef) -> Frame {
    Frame::system(
        &MessageId::generate(),
        company,
        at,
        "contact_assigned",
        &format!("新联系人 {} 已分配给你", user.label()),
        user.fields(),
    )
}

/// The reason a contact left an agent's list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReleaseReason {
    WindowClosed,
    Unsubscribed,
}

impl ReleaseReason {
    fn as_str(self) -> &'static str {
        match self {
            ReleaseReason::WindowClosed => "window_closed",
            ReleaseReason::Unsubscribed => "unsubscribed",
        }
    }

    fn text(self) -> &'static str {
        match self {
            ReleaseReason::WindowClosed => "48 小时回复窗口已关闭",
            ReleaseReason::Unsubscribed => "用户已取消关注",
        }
    }
}

pub(crate) fn contact_released(
    company: &CompanyId,
    at: Timestamp,
    user: &UserRef,
    reason: ReleaseReason,
) -> Frame {
    let mut fields = user.fields();
    fields.insert("reason".into(), Value::from(reason.as_str()));
    Frame::system(
        &MessageId::generate(),
        company,
        at,
        "contact_released",
        &format!("联系人 {} 已移出列表：{}", user.label(), reason.text()),
        fields,
    )
}

/// Builds the frame for a user event. `id` is stable for a given event, so retries carry the
/// same id; the body is written field by field, as on the per-message path.
pub(crate) fn user_event(
    id: &MessageId,
    company: &CompanyId,
    at: Timestamp,
    user: &UserRef,
    event: &UserEvent,
) -> Frame {
    let label = user.label();
    let (name, text) = match event {
        UserEvent::Subscribe {
            scene: Some(scene), ..
        } => (
            "user_subscribed",
            concat(&["用户 ", label, " 扫码关注了公众号（场景 ", scene, "）"]),
        ),
        UserEvent::Subscribe { scene: None, .. } => (
            "user_subscribed",
            concat(&["用户 ", label, " 关注了公众号"]),
        ),
        UserEvent::Unsubscribe => (
            "user_unsubscribed",
            concat(&["用户 ", label, " 取消了关注"]),
        ),
        UserEvent::Scan { scene, .. } => (
            "user_scanned",
            concat(&["用户 ", label, " 扫描了二维码（场景 ", scene, "）"]),
        ),
        UserEvent::Location { .. } => (
            "user_location",
            concat(&["用户 ", label, " 上报了地理位置"]),
        ),
        UserEvent::Click { key } => ("menu_click", concat(&["用户 ", label, " 点击了菜单 ", key])),
        UserEvent::View { .. } => ("menu_view", concat(&["用户 ", label, " 打开了菜单链接"])),
    };

    Frame::system_written(id, company, at, |body| {
        body.string("event", name)
            .string("text", &text)
            .string("contact_id", user.user.as_str())
            .string("name", user.name)
            .string("avatar", user.avatar);
        match event {
            UserEvent::Subscribe { scene, ticket } => {
                body.optional_string("scene", scene.as_deref())
                    .optional_string("ticket", ticket.as_deref());
            }
            UserEvent::Unsubscribe => {}
            UserEvent::Scan { scene, ticket } => {
                body.string("scene", scene)
                    .optional_string("ticket", ticket.as_deref());
            }
            UserEvent::Location {
                latitude,
                longitude,
                precision,
            } => {
                body.float("latitude", *latitude)
                    .float("longitude", *longitude);
                if let Some(precision) = precision {
                    body.float("precision", *precision);
                }
            }
            UserEvent::Click { key } => {
                body.string("key", key);
            }
            UserEvent::View { url, menu_id } => {
                body.string("url", url)
                    .optional_string("menu_id", menu_id.as_deref());
            }
        }
    })
}

/// Builds the contact list frame, sent on an agent's first frame and on request. It is not
/// stored, so it carries the stream's last position as its `seq`, and resuming from it loses
/// nothing.
pub(crate) fn contacts(
    company: &CompanyId,
    at: Timestamp,
    contacts: &[Contact],
    last: Seq,
) -> Frame {
    let list: Vec<Value> = contacts
        .iter()
        .map(|contact| {
            json!({
                "contact_id": contact.user.as_str(),
                "name": contact.name,
                "avatar": contact.avatar,
                "last_message_time": contact.last_inbound_at.as_secs(),
                "window_closes_at": contact.window_closes_at.as_secs(),
            })
        })
        .collect();
    let mut fields = Map::new();
    fields.insert("contacts".into(), Value::Array(list));
    Frame::system(
        &MessageId::generate(),
        company,
        at,
        "contacts",
        &format!("联系人列表：共 {} 人", contacts.len()),
        fields,
    )
    .with_seq(last)
}

/// Joins text pieces; cheaper than `format!` on the per-event path, which has no formatting
/// to do.
fn concat(pieces: &[&str]) -> String {
    let mut text = String::with_capacity(pieces.iter().map(|piece| piece.len()).sum());
    for piece in pieces {
        text.push_str(piece);
    }
    text
}
