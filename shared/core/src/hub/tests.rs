//! Hub behaviour on the in-memory adapters with a manual clock.

use std::sync::Arc;

use serde_json::Value;

use crate::config::HubSettings;
use crate::hub::{Hub, Received};
use crate::ids::{AgentId, CompanyId, ConnectionId, MessageId, OpenId, Seq};
use crate::memory::{MemoryStore, RecordingPusher};
use crate::message::{Inbound, InboundKind, MessageBody, Profile, UserEvent};
use crate::ports::ConnectionStore;
use crate::time::{Clock, ManualClock, Timestamp};
use crate::token::AgentClaims;

const START: i64 = 1_700_000_000;

struct TestHub {
    hub: Hub,
    store: Arc<MemoryStore>,
    pusher: Arc<RecordingPusher>,
    clock: Arc<ManualClock>,
    next_connection: std::sync::atomic::AtomicU32,
}

impl TestHub {
    fn new() -> Self {
        Self::with_settings(HubSettings::default())
    }

    fn with_settings(settings: HubSettings) -> Self {
        let store = Arc::new(MemoryStore::default());
        let pusher = Arc::new(RecordingPusher::default());
        let clock = Arc::new(ManualClock::new(Timestamp::from_secs(START)));
        let hub = Hub::new(store.clone(), pusher.clone(), clock.clone(), settings);
        Self {
            hub,
            store,
            pusher,
            clock,
            next_connection: Default::default(),
        }
    }

    fn claims(agent: &str) -> AgentClaims {
        AgentClaims {
            agent: AgentId::parse(agent).unwrap(),
            company: company(),
            expires_at: Timestamp::from_secs(START + 10 * 24 * 3600),
        }
    }

    /// Connects a socket without sending its first frame.
    async fn open(&self, agent: &str, last_seq: Option<u64>) -> ConnectionId {
        let n = self
            .next_connection
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let id = ConnectionId::parse(format!("conn{n}=")).unwrap();
        self.hub
            .connect(&Self::claims(agent), id.clone(), last_seq.map(Seq))
            .await
            .unwrap();
        id
    }

    /// Connects a socket and sends the heartbeat clients send first; clears what it received.
    async fn connect(&self, agent: &str) -> ConnectionId {
        let id = self.open(agent, None).await;
        self.heartbeat(&id).await;
        self.pusher.take(&id);
        id
    }

    async fn heartbeat(&self, id: &ConnectionId) {
        self.hub
            .handle_frame(id, r#"{"action":"heartbeat"}"#)
            .await
            .unwrap();
    }

    /// Frames the socket received since the last call, parsed.
    fn received(&self, id: &ConnectionId) -> Vec<Value> {
        self.pusher
            .take(id)
            .iter()
            .map(|text| serde_json::from_str(text).unwrap())
            .collect()
    }

    async fn text(&self, user: &str, msg_id: &str, content: &str) -> Received {
        self.hub
            .receive(text(user, msg_id, content, self.clock.now()))
            .await
            .unwrap()
    }
}

fn company() -> CompanyId {
    CompanyId::parse("acme").unwrap()
}

fn text(user: &str, msg_id: &str, content: &str, at: Timestamp) -> Inbound {
    Inbound {
        company: company(),
        user: OpenId::parse(user).unwrap(),
        profile: Profile::default(),
        sent_at: at,
        kind: InboundKind::Message {
            id: MessageId::parse(msg_id).unwrap(),
            body: MessageBody::Text {
                content: content.into(),
            },
        },
    }
}

fn event(user: &str, event: UserEvent, at: Timestamp) -> Inbound {
    Inbound {
        company: company(),
        user: OpenId::parse(user).unwrap(),
        profile: Profile::default(),
        sent_at: at,
        kind: InboundKind::Event(event),
    }
}

fn events(frames: &[Value]) -> Vec<String> {
    frames
        .iter()
        .map(|frame| match frame["data"]["msg_type"].as_str() {
            Some("system") => frame["data"]["data"]["event"].as_str().unwrap().to_owned(),
            Some(other) => format!("{other}:{}", frame["data"]["id"].as_str().unwrap()),
            None => format!("code:{}", frame["result"]["code"]),
        })
        .collect()
}

fn delivered_to(received: &Received) -> &str {
    match received {
        Received::Delivered { agent, .. } => agent.as_str(),
        other => panic!("expected the message to be delivered, got {other:?}"),
    }
}

#[tokio::test]
async fn first_message_assigns_user_and_notifies_agent() {
    let t = TestHub::new();
    let socket = t.connect("kf1").await;

    let outcome = t.text("oUser1", "10001", "你好").await;

    assert_eq!(delivered_to(&outcome), "kf1");
    let frames = t.received(&socket);
    assert_eq!(events(&frames), ["contact_assigned", "text:10001"]);
    assert_eq!(frames[0]["data"]["data"]["contact_id"], "oUser1");
    assert_eq!(frames[1]["data"]["data"]["content"], "你好");
    assert_eq!(frames[1]["data"]["contact_id"], "oUser1");
    assert_eq!(frames[1]["data"]["company_id"], "acme");
    assert_eq!(frames[1]["result"]["code"], 1001);
    assert!(
        frames[1]["data"]["seq"].as_u64() > frames[0]["data"]["seq"].as_u64(),
        "seq must increase"
    );
}

#[tokio::test]
async fn new_users_go_to_least_loaded_agent() {
    let t = TestHub::new();
    t.connect("kf1").await;
    t.clock.advance_secs(1);
    t.connect("kf2").await;

    let first = t.text("oUser1", "1", "a").await;
    let second = t.text("oUser2", "2", "b").await;
    let third = t.text("oUser3", "3", "c").await;

    // kf1 connected first, so it has been idle longest and wins the first tie.
    assert_eq!(delivered_to(&first), "kf1");
    assert_eq!(delivered_to(&second), "kf2");
    assert_eq!(delivered_to(&third), "kf1");
}

#[tokio::test]
async fn assignment_sticks_while_agent_is_offline() {
    let t = TestHub::new();
    let socket = t.connect("kf1").await;
    t.text("oUser1", "1", "a").await;
    t.hub.disconnect(&socket).await.unwrap();
    t.connect("kf2").await;

    let outcome = t.text("oUser1", "2", "b").await;

    assert_eq!(delivered_to(&outcome), "kf1");
    assert!(
        matches!(outcome, Received::Delivered { sockets: 0, .. }),
        "kf1 is offline, so no socket took it: {outcome:?}"
    );
}

#[tokio::test]
async fn offline_messages_arrive_in_order_on_first_frame() {
    let t = TestHub::new();
    let socket = t.connect("kf1").await;
    t.text("oUser1", "1", "a").await;
    t.hub.disconnect(&socket).await.unwrap();
    t.pusher.take(&socket);
    t.text("oUser1", "2", "b").await;
    t.text("oUser1", "3", "c").await;

    let again = t.open("kf1", None).await;
    assert!(
        t.pusher.sent(&again).is_empty(),
        "nothing may be pushed before the first frame"
    );
    t.heartbeat(&again).await;

    assert_eq!(
        events(&t.received(&again)),
        ["contacts", "text:2", "text:3", "code:101"]
    );
}

#[tokio::test]
async fn last_seq_replays_everything_after_it() {
    let t = TestHub::new();
    let socket = t.connect("kf1").await;
    t.text("oUser1", "1", "a").await;
    t.text("oUser1", "2", "b").await;
    let frames = t.received(&socket);
    let first_text_seq = frames[1]["data"]["seq"].as_u64().unwrap();

    let replay = t.open("kf1", Some(first_text_seq)).await;
    t.heartbeat(&replay).await;

    assert_eq!(
        events(&t.received(&replay)),
        ["contacts", "text:2", "code:101"]
    );
}

#[tokio::test]
async fn acked_messages_are_not_sent_again() {
    let t = TestHub::new();
    let socket = t.connect("kf1").await;
    t.text("oUser1", "1", "a").await;
    let last = t.received(&socket)[1]["data"]["seq"].as_u64().unwrap();
    t.hub
        .handle_frame(&socket, &format!(r#"{{"action":"ack","seq":{last}}}"#))
        .await
        .unwrap();
    t.hub.disconnect(&socket).await.unwrap();

    let again = t.open("kf1", None).await;
    t.heartbeat(&again).await;

    assert_eq!(events(&t.received(&again)), ["contacts", "code:101"]);
}

#[tokio::test]
async fn wechat_retry_is_delivered_once() {
    let t = TestHub::new();
    let socket = t.connect("kf1").await;

    let first = t.text("oUser1", "24523365472734781234", "a").await;
    let retry = t.text("oUser1", "24523365472734781234", "a").await;

    assert_eq!(delivered_to(&first), "kf1");
    assert_eq!(retry, Received::Duplicate);
    assert_eq!(
        events(&t.received(&socket)),
        ["contact_assigned", "text:24523365472734781234"]
    );
}

#[tokio::test]
async fn same_msg_id_from_two_users_both_arrive() {
    let t = TestHub::new();
    t.connect("kf1").await;

    let first = t.text("oUser1", "777", "a").await;
    let second = t.text("oUser2", "777", "b").await;

    assert_eq!(delivered_to(&first), "kf1");
    assert_eq!(delivered_to(&second), "kf1");
}

#[tokio::test]
async fn event_retry_is_delivered_once() {
    let t = TestHub::new();
    let socket = t.connect("kf1").await;
    let at = t.clock.now();
    let subscribe = UserEvent::Subscribe {
        scene: Some("42".into()),
        ticket: None,
    };

    let first = t
        .hub
        .receive(event("oUser1", subscribe.clone(), at))
        .await
        .unwrap();
    let retry = t.hub.receive(event("oUser1", subscribe, at)).await.unwrap();

    assert_eq!(delivered_to(&first), "kf1");
    assert_eq!(retry, Received::Duplicate);
    let frames = t.received(&socket);
    assert_eq!(events(&frames), ["contact_assigned", "user_subscribed"]);
    assert_eq!(frames[1]["data"]["data"]["scene"], "42");
}

#[tokio::test]
async fn users_wait_in_queue_until_an_agent_connects() {
    let t = TestHub::new();
    let queued = t.text("oUser1", "1", "a").await;
    t.text("oUser2", "2", "b").await;
    t.text("oUser1", "3", "c").await;
    assert!(matches!(queued, Received::Queued { .. }), "{queued:?}");

    let socket = t.open("kf1", None).await;
    t.heartbeat(&socket).await;

    assert_eq!(
        events(&t.received(&socket)),
        [
            "contacts",
            "contact_assigned",
            "text:1",
            "text:3",
            "contact_assigned",
            "text:2",
            "code:101"
        ]
    );
}

#[tokio::test]
async fn full_agent_sends_users_to_queue() {
    let t = TestHub::with_settings(HubSettings {
        max_contacts_per_agent: 1,
        ..HubSettings::default()
    });
    t.connect("kf1").await;

    let first = t.text("oUser1", "1", "a").await;
    let second = t.text("oUser2", "2", "b").await;

    assert_eq!(delivered_to(&first), "kf1");
    assert!(matches!(second, Received::Queued { .. }), "{second:?}");
}

#[tokio::test]
async fn lapsed_window_releases_contact_and_frees_room() {
    let t = TestHub::with_settings(HubSettings {
        max_contacts_per_agent: 1,
        // Keeps the socket open across the window; API Gateway would have needed reconnects.
        connection_ttl_secs: 100 * 3600,
        ..HubSettings::default()
    });
    let socket = t.connect("kf1").await;
    t.text("oUser1", "1", "a").await;
    t.text("oUser2", "2", "b").await;
    t.received(&socket);

    t.clock.advance_secs(48 * 3600 + 1);
    let report = t.hub.sweep().await.unwrap();

    assert_eq!(report.released, 1);
    let frames = t.received(&socket);
    assert_eq!(
        events(&frames),
        ["contact_released", "contact_assigned", "text:2"]
    );
    assert_eq!(frames[0]["data"]["data"]["reason"], "window_closed");
}

#[tokio::test]
async fn unsubscribe_releases_contact() {
    let t = TestHub::new();
    let socket = t.connect("kf1").await;
    t.text("oUser1", "1", "a").await;
    t.received(&socket);

    let outcome = t
        .hub
        .receive(event("oUser1", UserEvent::Unsubscribe, t.clock.now()))
        .await
        .unwrap();

    assert_eq!(delivered_to(&outcome), "kf1");
    assert_eq!(
        events(&t.received(&socket)),
        ["user_unsubscribed", "contact_released"]
    );
    t.hub
        .handle_frame(&socket, r#"{"action":"contacts"}"#)
        .await
        .unwrap();
    let contacts = t.received(&socket);
    assert_eq!(
        contacts[0]["data"]["data"]["contacts"],
        serde_json::json!([])
    );
}

#[tokio::test]
async fn location_report_of_unserved_user_is_ignored() {
    let t = TestHub::new();
    t.connect("kf1").await;
    let report = UserEvent::Location {
        latitude: 23.1,
        longitude: 113.3,
        precision: Some(119.0),
    };

    let outcome = t
        .hub
        .receive(event("oUser1", report, t.clock.now()))
        .await
        .unwrap();

    assert_eq!(outcome, Received::Ignored);
}

#[tokio::test]
async fn every_socket_of_an_agent_gets_each_message() {
    let t = TestHub::new();
    let phone = t.connect("kf1").await;
    let desktop = t.connect("kf1").await;

    t.text("oUser1", "1", "a").await;

    assert_eq!(events(&t.received(&phone)), ["contact_assigned", "text:1"]);
    assert_eq!(
        events(&t.received(&desktop)),
        ["contact_assigned", "text:1"]
    );
}

#[tokio::test]
async fn gone_socket_is_removed_and_message_kept() {
    let t = TestHub::new();
    let socket = t.connect("kf1").await;
    t.text("oUser1", "1", "a").await;
    t.received(&socket);
    t.pusher.close(&socket);

    let outcome = t.text("oUser1", "2", "b").await;

    assert!(
        matches!(outcome, Received::Delivered { sockets: 0, .. }),
        "{outcome:?}"
    );
    let now = t.clock.now();
    assert!(
        t.store.connection(&socket, now).await.unwrap().is_none(),
        "a gone socket must be removed"
    );
    let again = t.open("kf1", None).await;
    t.heartbeat(&again).await;
    assert_eq!(
        events(&t.received(&again)),
        ["contacts", "text:2", "code:101"]
    );
}

#[tokio::test]
async fn bad_agent_frames_get_error_frames() {
    let t = TestHub::new();
    let socket = t.connect("kf1").await;

    for frame in [
        "not json",
        r#"{"action":"dance"}"#,
        r#"{"action":"ack"}"#,
        "[]",
    ] {
        t.hub.handle_frame(&socket, frame).await.unwrap();
        let answers = t.received(&socket);
        assert_eq!(answers.len(), 1, "one answer to {frame}");
        assert_eq!(answers[0]["result"]["code"], -1, "error code for {frame}");
        assert!(
            answers[0]["data"]["error"].as_str().unwrap().len() > 5,
            "the error names the problem for {frame}"
        );
    }
}

#[tokio::test]
async fn contacts_request_lists_open_contacts() {
    let t = TestHub::new();
    let socket = t.connect("kf1").await;
    t.text("oUser1", "1", "a").await;
    t.received(&socket);

    t.hub
        .handle_frame(&socket, r#"{"action":"contacts"}"#)
        .await
        .unwrap();

    let frames = t.received(&socket);
    assert_eq!(events(&frames), ["contacts"]);
    let list = frames[0]["data"]["data"]["contacts"].as_array().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["contact_id"], "oUser1");
    assert_eq!(frames[0]["result"]["code"], 102);
}

#[tokio::test]
async fn concurrent_first_messages_end_with_one_agent() {
    let t = Arc::new(TestHub::new());
    for agent in ["kf1", "kf2", "kf3"] {
        t.connect(agent).await;
    }

    let mut tasks = Vec::new();
    for n in 0..20 {
        let t = t.clone();
        tasks.push(tokio::spawn(async move {
            t.text("oRacer", &format!("{n}"), "hi").await
        }));
    }
    let mut agents = std::collections::HashSet::new();
    for task in tasks {
        agents.insert(delivered_to(&task.await.unwrap()).to_owned());
    }

    assert_eq!(
        agents.len(),
        1,
        "all messages must reach one agent: {agents:?}"
    );
}
