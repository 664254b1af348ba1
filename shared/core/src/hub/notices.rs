//! The system frames (code 102) the hub raises, with a stable English `event` for programs and
//! a Chinese `text` for the agent.

use serde::Serialize;
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

    /// The name an agent knows the user by: the nickname, else the OpenID.
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

/// Why a contact left an agent's list.
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

/// `data.data` of a user event's system frame: the common fields, then those of the event.
#[derive(Serialize, Default)]
struct UserEventBody<'a> {
    event: &'static str,
    text: String,
    contact_id: &'a str,
    name: &'a str,
    avatar: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    scene: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ticket: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    latitude: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    longitude: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    precision: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    url: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    menu_id: Option<&'a str>,
}

/// The frame for a user event; `id` is stable for a given event so retries carry the same id.
/// It is built from a typed body rather than a `Map`, as it is on the per-message path.
pub(crate) fn user_event(
    id: &MessageId,
    company: &CompanyId,
    at: Timestamp,
    user: &UserRef,
    event: &UserEvent,
) -> Frame {
    let label = user.label();
    let common = UserEventBody {
        contact_id: user.user.as_str(),
        name: user.name,
        avatar: user.avatar,
        ..UserEventBody::default()
    };
    let body = match event {
        UserEvent::Subscribe { scene, ticket } => UserEventBody {
            event: "user_subscribed",
            text: match scene {
                Some(scene) => format!("用户 {label} 扫码关注了公众号（场景 {scene}）"),
                None => format!("用户 {label} 关注了公众号"),
            },
            scene: scene.as_deref(),
            ticket: ticket.as_deref(),
            ..common
        },
        UserEvent::Unsubscribe => UserEventBody {
            event: "user_unsubscribed",
            text: format!("用户 {label} 取消了关注"),
            ..common
        },
        UserEvent::Scan { scene, ticket } => UserEventBody {
            event: "user_scanned",
            text: format!("用户 {label} 扫描了二维码（场景 {scene}）"),
            scene: Some(scene),
            ticket: ticket.as_deref(),
            ..common
        },
        UserEvent::Location {
            latitude,
            longitude,
            precision,
        } => UserEventBody {
            event: "user_location",
            text: format!("用户 {label} 上报了地理位置"),
            latitude: Some(*latitude),
            longitude: Some(*longitude),
            precision: *precision,
            ..common
        },
        UserEvent::Click { key } => UserEventBody {
            event: "menu_click",
            text: format!("用户 {label} 点击了菜单 {key}"),
            key: Some(key),
            ..common
        },
        UserEvent::View { url, menu_id } => UserEventBody {
            event: "menu_view",
            text: format!("用户 {label} 打开了菜单链接"),
            url: Some(url),
            menu_id: menu_id.as_deref(),
            ..common
        },
    };
    Frame::system_with_body(id, company, at, &body)
}

/// The contact list, sent on an agent's first frame and on request. It is not stored, so it
/// carries the stream's current last position as its `seq`: resuming from it loses nothing.
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
