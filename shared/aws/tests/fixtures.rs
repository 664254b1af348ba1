//! Feeds every event in `events/` to the handler of its function, in the order a session
//! happens (connect, first frame, messages, disconnect), on the DynamoDB store on moto and a
//! recording pusher, and checks each response. The scheduled sweep gets its own session, with a
//! contact whose window closed an hour earlier.

mod support;

use std::collections::HashMap;
use std::sync::Arc;

use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use aws_lambda_events::encodings::Body;
use serde_json::Value;
use wxkf_aws::lambda::http::HttpHandler;
use wxkf_aws::lambda::sweep::{SweepHandler, SweepResponse};
use wxkf_aws::lambda::websocket::WebSocketHandler;
use wxkf_aws::lambda::Runtime;
use wxkf_core::config::Config;
use wxkf_core::frame::Frame;
use wxkf_core::ids::{AgentId, CompanyId, ConnectionId, MessageId, OpenId};
use wxkf_core::memory::RecordingPusher;
use wxkf_core::ports::{AssignOutcome, Assignment, ConnectionStore, ContactStore};
use wxkf_core::time::{ManualClock, Timestamp};

const EVENTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../events");

/// The settings the fixtures were made for; `events/README.md` lists them.
fn config() -> Config {
    let vars = HashMap::from([
        ("WXKF_TOKEN_SECRET", "fixture-token-secret"),
        ("WXKF_API_KEYS", "test-api-key"),
        ("WXKF_WECHAT_TOKEN", "wechat-test-token"),
    ]);
    Config::from_lookup(|name| vars.get(name).map(|value| value.to_string())).unwrap()
}

fn read(name: &str) -> String {
    std::fs::read_to_string(format!("{EVENTS}/{name}"))
        .unwrap_or_else(|error| panic!("reading events/{name}: {error}"))
}

fn websocket_event(name: &str) -> ApiGatewayWebsocketProxyRequest {
    serde_json::from_str(&read(name)).unwrap_or_else(|error| panic!("events/{name}: {error}"))
}

fn http_event(name: &str) -> lambda_http::Request {
    lambda_http::request::from_str(&read(name))
        .unwrap_or_else(|error| panic!("events/{name}: {error}"))
}

fn text(response: &ApiGatewayProxyResponse) -> String {
    match &response.body {
        Some(Body::Text(text)) => text.clone(),
        None => String::new(),
        other => panic!("unexpected body {other:?}"),
    }
}

fn http_body(response: &lambda_http::Response<lambda_http::Body>) -> String {
    match response.body() {
        lambda_http::Body::Text(text) => text.clone(),
        lambda_http::Body::Empty => String::new(),
        other => panic!("unexpected body {other:?}"),
    }
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|error| panic!("{text:?} is not JSON: {error}"))
}

#[tokio::test]
async fn every_fixture_gets_expected_response() {
    let store = Arc::new(*support::fresh_store().await);
    let pusher = Arc::new(RecordingPusher::new());
    let clock = Arc::new(ManualClock::new(Timestamp::from_secs(1_796_412_612)));
    let runtime = Runtime::new(config(), store.clone(), pusher.clone(), clock);
    let connect = WebSocketHandler::for_connect(runtime.clone()).unwrap();
    let socket = WebSocketHandler::new(runtime.clone());
    let http = HttpHandler::new(runtime);
    let agent_socket = ConnectionId::parse("TWegAcC4EowCHnA=").unwrap();

    for name in ["ws-connect-bad-token.json", "ws-connect-missing-token.json"] {
        let response = connect.connect(websocket_event(name)).await;
        assert_eq!(response.status_code, 401, "{name}: {}", text(&response));
    }
    let response = connect.connect(websocket_event("ws-connect.json")).await;
    assert_eq!(
        response.status_code,
        200,
        "ws-connect.json: {}",
        text(&response)
    );

    let response = socket
        .default(websocket_event("ws-default-heartbeat.json"))
        .await;
    assert_eq!(response.status_code, 200, "ws-default-heartbeat.json");
    let sent = pusher.take(&agent_socket);
    assert_eq!(
        sent.len(),
        2,
        "the contact list, then the heartbeat reply: {sent:?}"
    );
    assert_eq!(json(&sent[0])["data"]["data"]["event"], "contacts");
    assert_eq!(
        sent[1], r#"{"data":{},"result":{"code":101,"message":"heartbeat"}}"#,
        "the heartbeat reply"
    );

    let response = http.send(http_event("http-send.json")).await;
    assert_eq!(
        response.status(),
        200,
        "http-send.json: {}",
        http_body(&response)
    );
    let answer = json(&http_body(&response));
    assert_eq!(answer["result"], json(r#"{"code":0,"message":"ok"}"#));
    assert_eq!(answer["data"]["status"], "delivered");
    let sent = pusher.take(&agent_socket);
    assert_eq!(
        sent.len(),
        2,
        "the assignment notice, then the message: {sent:?}"
    );
    assert_eq!(json(&sent[0])["data"]["data"]["event"], "contact_assigned");
    let message = json(&sent[1]);
    assert_eq!(message["data"]["data"]["content"], "你好，我想咨询订单");
    assert_eq!(
        message["data"]["id"], answer["data"]["id"],
        "the frame carries the answered id"
    );
    assert_eq!(message["data"]["seq"], 2);

    for name in [
        "ws-default-ack.json",
        "ws-default-contacts.json",
        "ws-default-malformed.json",
    ] {
        let response = socket.default(websocket_event(name)).await;
        assert_eq!(response.status_code, 200, "{name}: {}", text(&response));
    }
    let sent = pusher.take(&agent_socket);
    assert_eq!(sent.len(), 2, "a contact list and an error frame: {sent:?}");
    let contacts = json(&sent[0]);
    assert_eq!(contacts["data"]["data"]["event"], "contacts");
    assert!(
        sent[0].contains("oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"),
        "the contact list names the new contact: {}",
        sent[0]
    );
    assert_eq!(
        json(&sent[1])["result"]["code"],
        -1,
        "the malformed frame is rejected"
    );
    assert_eq!(
        store.cursor_acked(&agent_socket).await,
        1,
        "the ack reached the store"
    );

    let response = socket
        .default(websocket_event("ws-default-unknown-connection.json"))
        .await;
    assert_eq!(
        response.status_code, 410,
        "a frame from an unknown connection"
    );

    for (name, status) in [
        ("http-send-no-key.json", 401),
        ("http-send-invalid-json.json", 400),
        ("http-send-code-mismatch.json", 400),
    ] {
        let response = http.send(http_event(name)).await;
        assert_eq!(
            response.status(),
            status,
            "{name}: {}",
            http_body(&response)
        );
        assert_eq!(json(&http_body(&response))["result"]["code"], -1, "{name}");
    }

    let response = http.send_xml(http_event("http-send-xml.json")).await;
    assert_eq!(
        response.status(),
        200,
        "http-send-xml.json: {}",
        http_body(&response)
    );
    assert_eq!(http_body(&response), "success");
    let sent = pusher.take(&agent_socket);
    assert_eq!(
        sent.len(),
        1,
        "the XML message reaches the same agent: {sent:?}"
    );
    assert_eq!(json(&sent[0])["data"]["id"], "24523365472734781234");

    let retry = http.send_xml(http_event("http-send-xml.json")).await;
    assert_eq!(
        http_body(&retry),
        "success",
        "a WeChat retry is answered success"
    );
    assert!(
        pusher.take(&agent_socket).is_empty(),
        "a retry is not delivered twice"
    );

    for (name, status) in [
        ("http-send-xml-malformed.json", 400),
        ("http-send-xml-bad-signature.json", 401),
        ("http-send-xml-verify-bad-signature.json", 401),
    ] {
        let response = http.send_xml(http_event(name)).await;
        assert_eq!(
            response.status(),
            status,
            "{name}: {}",
            http_body(&response)
        );
    }
    let response = http.send_xml(http_event("http-send-xml-verify.json")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        http_body(&response),
        "6203495831716913218",
        "the echostr comes back"
    );

    let response = socket
        .disconnect(websocket_event("ws-disconnect.json"))
        .await;
    assert_eq!(response.status_code, 200, "ws-disconnect.json");
    let left = store
        .connection(&agent_socket, Timestamp::from_secs(1_796_412_700))
        .await
        .unwrap();
    assert_eq!(left, None, "the disconnected connection is gone");
}

#[tokio::test]
async fn sweep_schedule_releases_lapsed_contact() {
    // The time in sweep-schedule.json, 48 seconds after ws-connect.json's.
    let now = Timestamp::from_secs(1_796_412_660);
    let store = Arc::new(*support::fresh_store().await);
    let pusher = Arc::new(RecordingPusher::new());
    let clock = Arc::new(ManualClock::new(now));
    let runtime = Runtime::new(config(), store.clone(), pusher.clone(), clock);
    let connect = WebSocketHandler::for_connect(runtime.clone()).unwrap();
    let socket = WebSocketHandler::new(runtime.clone());
    let sweep = SweepHandler::new(runtime);
    let agent_socket = ConnectionId::parse("TWegAcC4EowCHnA=").unwrap();
    let company = CompanyId::parse("default").unwrap();
    let user = OpenId::parse("oUpF8uMuAJO_M2pxb1Q9zNjWeS6o").unwrap();

    let assigned_at = now.plus_secs(-49 * 3600);
    let outcome = store
        .try_assign(Assignment {
            company: company.clone(),
            user: user.clone(),
            agent: AgentId::parse("kf01").unwrap(),
            name: "小明".to_owned(),
            avatar: String::new(),
            now: assigned_at,
            window_closes_at: now.plus_secs(-3600),
            max_contacts: 10,
            notice: Frame::system(
                &MessageId::generate(),
                &company,
                assigned_at,
                "contact_assigned",
                "新联系人 小明 已分配给你",
                serde_json::Map::new(),
            ),
        })
        .await
        .unwrap();
    assert!(
        matches!(outcome, AssignOutcome::Assigned { .. }),
        "arranging a contact whose window closed: {outcome:?}"
    );
    let response = connect.connect(websocket_event("ws-connect.json")).await;
    assert_eq!(
        response.status_code,
        200,
        "ws-connect.json: {}",
        text(&response)
    );
    let response = socket
        .default(websocket_event("ws-default-heartbeat.json"))
        .await;
    assert_eq!(response.status_code, 200, "ws-default-heartbeat.json");
    pusher.take(&agent_socket);

    let event: Value = serde_json::from_str(&read("sweep-schedule.json"))
        .unwrap_or_else(|error| panic!("events/sweep-schedule.json: {error}"));
    let response = sweep.sweep(event).await.expect("the sweep succeeds");

    assert_eq!(response.released, 1, "the lapsed contact is released");
    let sent = pusher.take(&agent_socket);
    assert_eq!(sent.len(), 1, "one contact_released frame: {sent:?}");
    let notice = json(&sent[0]);
    assert_eq!(notice["data"]["data"]["event"], "contact_released");
    assert_eq!(notice["data"]["data"]["reason"], "window_closed");
    assert_eq!(notice["data"]["data"]["contact_id"], user.as_str());
    assert_eq!(
        store.contact(&company, &user).await.unwrap(),
        None,
        "the contact record is gone"
    );

    let again = sweep
        .sweep(Value::Null)
        .await
        .expect("a second sweep succeeds");
    assert_eq!(
        again,
        SweepResponse {
            released: 0,
            pruned: 0
        },
        "a second sweep finds nothing left"
    );
    assert!(
        pusher.take(&agent_socket).is_empty(),
        "the agent is told once"
    );
}

#[test]
fn every_fixture_is_covered() {
    let covered = [
        "ws-connect.json",
        "ws-connect-bad-token.json",
        "ws-connect-missing-token.json",
        "ws-disconnect.json",
        "ws-default-heartbeat.json",
        "ws-default-ack.json",
        "ws-default-contacts.json",
        "ws-default-malformed.json",
        "ws-default-unknown-connection.json",
        "http-send.json",
        "http-send-no-key.json",
        "http-send-invalid-json.json",
        "http-send-code-mismatch.json",
        "http-send-xml.json",
        "http-send-xml-malformed.json",
        "http-send-xml-bad-signature.json",
        "http-send-xml-verify.json",
        "http-send-xml-verify-bad-signature.json",
        "sweep-schedule.json",
    ];
    let mut present: Vec<String> = std::fs::read_dir(EVENTS)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.ends_with(".json"))
        .collect();
    present.sort();
    let mut expected: Vec<String> = covered.iter().map(|name| name.to_string()).collect();
    expected.sort();
    assert_eq!(
        present, expected,
        "each fixture in events/ is fed to a handler above"
    );
}

trait AckedPosition {
    async fn cursor_acked(&self, connection: &ConnectionId) -> u64;
}

impl AckedPosition for wxkf_aws::DynamoStore {
    async fn cursor_acked(&self, connection: &ConnectionId) -> u64 {
        use wxkf_core::ports::StreamStore;
        let agent = self
            .connection(connection, Timestamp::from_secs(1_796_412_612))
            .await
            .unwrap()
            .expect("the agent's connection is open")
            .agent;
        self.cursor(&agent).await.unwrap().acked.0
    }
}
