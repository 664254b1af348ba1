//! A WeChat user's message or event after the XML or JSON route has parsed it. Both routes
//! produce the one [`Inbound`] type, so that routing and delivery never see the wire format.

use serde::{Deserialize, Serialize};

use crate::ids::{CompanyId, MessageId, OpenId};
use crate::time::Timestamp;

/// A message or event from a WeChat user, parsed and ready for routing.
#[derive(Debug, Clone, PartialEq)]
pub struct Inbound {
    pub company: CompanyId,
    pub user: OpenId,
    pub profile: Profile,
    /// When the user sent it (WeChat's `CreateTime`, whole seconds).
    pub sent_at: Timestamp,
    pub kind: InboundKind,
}

/// The user's nickname and avatar URL, when the caller knows them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Profile {
    pub name: Option<String>,
    pub avatar: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum InboundKind {
    Message { id: MessageId, body: MessageBody },
    Event(UserEvent),
}

/// The body of an ordinary message, one variant per agent frame type.
#[derive(Debug, Clone, PartialEq)]
pub enum MessageBody {
    Text {
        content: String,
    },
    Image {
        media: MediaSource,
    },
    Voice {
        media: MediaSource,
        /// WeChat's `Format`, usually `amr` or `speex`.
        format: Option<String>,
        /// Speech recognition result; mostly empty since WeChat stopped filling it.
        recognition: Option<String>,
        /// `MediaId16K`: the same recording at 16 kHz, when WeChat offers it.
        media_id_16k: Option<String>,
    },
    Video {
        media: MediaSource,
        thumb_media_id: Option<String>,
        /// WeChat's `shortvideo` type; agents see both as `video`.
        short: bool,
    },
    Location {
        latitude: f64,
        longitude: f64,
        scale: Option<f64>,
        label: String,
    },
    Link {
        title: String,
        description: String,
        url: String,
    },
}

/// The source a media message's file can be fetched from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MediaSource {
    /// WeChat's `MediaId`, fetched through `media/get`.
    pub media_id: Option<String>,
    /// A direct URL: an image's `PicUrl` or the JSON route's `media_path`.
    pub url: Option<String>,
}

/// An event WeChat reports about a user.
#[derive(Debug, Clone, PartialEq)]
pub enum UserEvent {
    /// A follow; `scene` is the QR scene with its `qrscene_` prefix removed.
    Subscribe {
        scene: Option<String>,
        ticket: Option<String>,
    },
    Unsubscribe,
    /// A scan of a parametric QR code by a user who already follows the account.
    Scan {
        scene: String,
        ticket: Option<String>,
    },
    /// The periodic location report (not something the user typed).
    Location {
        latitude: f64,
        longitude: f64,
        precision: Option<f64>,
    },
    /// A `click` menu button.
    Click {
        key: String,
    },
    /// A `view` menu button that opened a page.
    View {
        url: String,
        menu_id: Option<String>,
    },
}

impl UserEvent {
    /// WeChat's spelling of the event, as used in deduplication keys.
    pub fn wechat_name(&self) -> &'static str {
        match self {
            UserEvent::Subscribe { .. } => "subscribe",
            UserEvent::Unsubscribe => "unsubscribe",
            UserEvent::Scan { .. } => "SCAN",
            UserEvent::Location { .. } => "LOCATION",
            UserEvent::Click { .. } => "CLICK",
            UserEvent::View { .. } => "VIEW",
        }
    }

    /// Returns whether the event opens the user's 48-hour reply window. WeChat counts a message,
    /// a follow, a QR scan and a click menu event as interactions. A location report, a link menu
    /// event and an unfollow are not.
    pub fn opens_window(&self) -> bool {
        matches!(
            self,
            UserEvent::Subscribe { .. } | UserEvent::Scan { .. } | UserEvent::Click { .. }
        )
    }
}

impl MessageBody {
    /// Returns the agent frame's `msg_type` for this body.
    pub fn msg_type(&self) -> &'static str {
        match self {
            MessageBody::Text { .. } => "text",
            MessageBody::Image { .. } => "image",
            MessageBody::Voice { .. } => "voice",
            MessageBody::Video { .. } => "video",
            MessageBody::Location { .. } => "location",
            MessageBody::Link { .. } => "link",
        }
    }
}

/// The key under which a message or event is remembered to drop WeChat's retries: the user's
/// OpenID with the MsgId, or for events (which carry no MsgId) with CreateTime and the event.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DedupKey(String);

impl DedupKey {
    pub fn for_inbound(inbound: &Inbound) -> Self {
        let company = inbound.company.as_str();
        let user = inbound.user.as_str();
        let mut key = String::with_capacity(company.len() + user.len() + 48);
        key.push_str(company);
        match &inbound.kind {
            InboundKind::Message { id, .. } => {
                key.push_str("|m|");
                key.push_str(user);
                key.push('|');
                key.push_str(id.as_str());
            }
            InboundKind::Event(event) => {
                key.push_str("|e|");
                key.push_str(user);
                key.push('|');
                key.push_str(itoa_i64(inbound.sent_at.as_secs()).as_str());
                key.push('|');
                key.push_str(event.wechat_name());
            }
        }
        Self(key)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Rebuilds a key read back from a store.
    pub fn from_stored(value: String) -> Self {
        Self(value)
    }
}

/// Formats an integer without going through `fmt`, which dominates the cost of building a key.
fn itoa_i64(value: i64) -> String {
    let mut digits = [0u8; 20];
    let mut position = digits.len();
    let mut rest = value.unsigned_abs();
    loop {
        position -= 1;
        digits[position] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    let mut text = String::with_capacity(21);
    if value < 0 {
        text.push('-');
    }
    text.push_str(std::str::from_utf8(&digits[position..]).expect("ASCII digits"));
    text
}
