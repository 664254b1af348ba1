//! The hub end to end: real HTTP requests in, real WebSocket frames out, SQLite on disk.

mod support;

use std::time::Duration;

use serde_json::Value;
use support::{text_xml, Agent, TestServer, BASE};

#[tokio::test]
async fn json_route_delivers_seed_frame() {
    let server = TestServer::start().await;
    let mut agent = server.agent("kf01").await;

    let response = server
        .post_json(
            r#"{"data":{"msg_type":"text","contact_id":"oUser1","id":"m-1","name":"小明","avatar":"https://example.invalid/a.png","data":{"content":"你好 😀 /::)"}},"result":{"code":1001,"message":"common"}}"#,
        )
        .await;

    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["data"]["id"], "m-1");
    assert_eq!(answer["result"]["code"], 0);
    let notice = agent.next().await;
    assert_eq!(notice["data"]["data"]["event"], "contact_assigned");
    let frame = agent.next().await;
    assert_eq!(
        frame["result"],
        serde_json::json!({"code": 1001, "message": "common"})
    );
    let data = &frame["data"];
    assert_eq!(data["id"], "m-1");
    assert_eq!(data["name"], "小明");
    assert_eq!(data["avatar"], "https://example.invalid/a.png");
    assert_eq!(data["msg_type"], "text");
    assert_eq!(data["contact_id"], "oUser1");
    assert_eq!(data["company_id"], "default");
    assert!(data["send_time"].is_i64(), "send_time must be an integer");
    assert!(data["seq"].is_u64(), "seq must be an integer");
    assert_eq!(data["data"]["content"], "你好 😀 /::)");
}

#[tokio::test]
async fn wechat_xml_keeps_msg_id_digits() {
    let server = TestServer::start().await;
    let mut agent = server.agent("kf01").await;

    let response = server
        .post_xml(text_xml("oUser1", "24523365472734781234", "this is a test"))
        .await;

    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "success");
    agent.next().await;
    let frame = agent.next().await;
    assert_eq!(frame["data"]["id"], "24523365472734781234");
    assert_eq!(frame["data"]["send_time"], 1348831860);
    assert_eq!(frame["data"]["contact_id"], "oUser1");
    assert_eq!(frame["data"]["data"]["content"], "this is a test");
}

#[tokio::test]
async fn simplified_xml_names_user_in_to_user_name() {
    let server = TestServer::start().await;
    let mut agent = server.agent("kf01").await;
    let seed = "<xml>\n  <ToUserName><![CDATA[toUser]]></ToUserName>\n  <CreateTime>1348831860</CreateTime>\n  <MsgType><![CDATA[text]]></MsgType>\n  <Content><![CDATA[this is a test]]></Content>\n  <MsgId>1234567890123456</MsgId>\n</xml>";

    let response = server.post_xml(seed).await;

    assert_eq!(response.status(), 200);
    agent.next().await;
    let frame = agent.next().await;
    assert_eq!(frame["data"]["contact_id"], "toUser");
    assert_eq!(frame["data"]["id"], "1234567890123456");
}

#[tokio::test]
async fn media_frames_carry_source_url_and_media_id() {
    let server = TestServer::start().await;
    let mut agent = server.agent("kf01").await;
    let image = "<xml><ToUserName><![CDATA[gh_test]]></ToUserName><FromUserName><![CDATA[oUser1]]></FromUserName><CreateTime>1348831860</CreateTime><MsgType><![CDATA[image]]></MsgType><PicUrl><![CDATA[http://mmbiz.qpic.cn/pic.jpg]]></PicUrl><MediaId><![CDATA[media_abc]]></MediaId><MsgId>1234567890123457</MsgId></xml>";

    assert_eq!(server.post_xml(image).await.status(), 200);

    agent.next().await;
    let frame = agent.next().await;
    assert_eq!(frame["result"]["code"], 1002);
    assert_eq!(
        frame["data"]["data"]["media_path"],
        "http://mmbiz.qpic.cn/pic.jpg"
    );
    assert_eq!(frame["data"]["data"]["media_id"], "media_abc");
}

#[tokio::test]
async fn control_character_in_cdata_is_accepted() {
    let server = TestServer::start().await;
    let mut agent = server.agent("kf01").await;

    let response = server.post_xml(text_xml("oUser1", "42", "a\u{1d}b")).await;

    assert_eq!(response.status(), 200);
    agent.next().await;
    assert_eq!(agent.next().await["data"]["data"]["content"], "a\u{1d}b");
}

#[tokio::test]
async fn wechat_retry_is_answered_success_and_delivered_once() {
    let server = TestServer::start().await;
    let mut agent = server.agent("kf01").await;

    for _ in 0..3 {
        let response = server.post_xml(text_xml("oUser1", "5555", "hi")).await;
        assert_eq!(response.text().await.unwrap(), "success");
    }
    server.post_xml(text_xml("oUser2", "5555", "hi")).await;

    let mut texts = Vec::new();
    while let Some(frame) = agent.try_next(Duration::from_millis(500)).await {
        if frame["data"]["msg_type"] == "text" {
            texts.push(frame["data"]["contact_id"].as_str().unwrap().to_owned());
        }
    }
    assert_eq!(texts, ["oUser1", "oUser2"]);
}

#[tokio::test]
async fn unknown_message_type_is_accepted_not_forwarded() {
    let server = TestServer::start().await;
    let mut agent = server.agent("kf01").await;
    let unknown = "<xml><ToUserName><![CDATA[gh_test]]></ToUserName><FromUserName><![CDATA[oUser1]]></FromUserName><CreateTime>1348831860</CreateTime><MsgType><![CDATA[miniprogrampage]]></MsgType><MsgId>99</MsgId></xml>";

    let response = server.post_xml(unknown).await;

    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "success");
    assert!(agent.try_next(Duration::from_millis(300)).await.is_none());
}

#[tokio::test]
async fn bad_input_gets_4xx_naming_the_problem() {
    let server = TestServer::start().await;
    let cases: Vec<(&str, String, u16, &str)> = vec![
        ("xml", "<xml><ToUserName>".into(), 400, "XML"),
        (
            "xml",
            "<!DOCTYPE xml [<!ENTITY x \"y\">]><xml><ToUserName>&x;</ToUserName></xml>".into(),
            400,
            "DOCTYPE",
        ),
        ("xml", "<xml><ToUserName>u</ToUserName></xml>".into(), 400, "MsgType"),
        ("json", "{not json".into(), 400, "JSON"),
        ("json", r#"{"data":{"msg_type":"text","data":{"content":"x"}}}"#.into(), 400, "contact_id"),
        (
            "json",
            r#"{"data":{"msg_type":"text","contact_id":"o1","data":{"content":"x"}},"result":{"code":1002}}"#.into(),
            400,
            "1002",
        ),
        (
            "json",
            r#"{"data":{"msg_type":"text","contact_id":"o1","data":{"content":5}}}"#.into(),
            400,
            "content",
        ),
        ("xml", format!("<xml>{}</xml>", "a".repeat(70 * 1024)), 413, "limit"),
    ];

    for (route, body, status, needle) in cases {
        let response = match route {
            "xml" => server.post_xml(body.clone()).await,
            _ => server.post_json(&body).await,
        };
        assert_eq!(
            response.status(),
            status,
            "status for {route} body {body:.60}"
        );
        let answer: Value = response.json().await.unwrap();
        assert_eq!(answer["result"]["code"], -1, "error code for {body:.60}");
        let message = answer["result"]["message"].as_str().unwrap();
        assert!(
            message.contains(needle),
            "message {message:?} should name {needle:?} for {body:.60}"
        );
    }

    let still_serving = server
        .http
        .get(server.url("/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(still_serving.status(), 200);
}

#[tokio::test]
async fn json_route_needs_api_key() {
    let server = TestServer::start().await;
    let body = r#"{"data":{"msg_type":"text","contact_id":"o1","data":{"content":"x"}}}"#;

    let response = server
        .http
        .post(server.url(&format!("{BASE}/send")))
        .bearer_auth("wrong")
        .body(body)
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), 401);
}

#[tokio::test]
async fn bad_tokens_are_refused_before_upgrade() {
    let server = TestServer::start().await;
    let other_secret_token = {
        let other = TestServer::start().await;
        other.token("kf01", "default", 3600)
    };
    let cases = [
        ("missing", server.socket_url("kf01", "", "")),
        ("forged", server.socket_url("kf01", &other_secret_token, "")),
        (
            "expired",
            server.socket_url("kf01", &server.token("kf01", "default", -10), ""),
        ),
        (
            "other agent",
            server.socket_url("kf02", &server.token("kf01", "default", 3600), ""),
        ),
    ];

    for (case, url) in cases {
        match tokio_tungstenite::connect_async(&url).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                assert_eq!(response.status(), 401, "status for {case} token")
            }
            other => panic!("{case} token should get 401, got {:?}", other.map(|_| ())),
        }
    }
}

#[tokio::test]
async fn both_heartbeats_and_contacts_are_answered() {
    let server = TestServer::start().await;
    let mut agent = server.agent("kf01").await;

    agent
        .send_text(r#"{"data":{},"result":{"code":101,"message":"heartbeat"}}"#)
        .await;
    let seed_answer = agent.next().await;
    agent.send_text(r#"{"action":"heartbeat"}"#).await;
    let action_answer = agent.next().await;
    agent.send_text(r#"{"action":"contacts"}"#).await;
    let contacts = agent.next().await;
    agent.send_text("{oops").await;
    let error = agent.next().await;
    agent.send_text(r#"{"action":"heartbeat"}"#).await;
    let after_error = agent.next().await;

    let heartbeat =
        serde_json::json!({"data": {}, "result": {"code": 101, "message": "heartbeat"}});
    assert_eq!(seed_answer, heartbeat);
    assert_eq!(action_answer, heartbeat);
    assert_eq!(contacts["data"]["data"]["event"], "contacts");
    assert_eq!(contacts["data"]["contact_id"], "system01");
    assert_eq!(error["result"]["code"], -1);
    assert!(error["data"]["error"].as_str().unwrap().contains("JSON"));
    assert_eq!(
        after_error, heartbeat,
        "the socket stays open after an error"
    );
}

#[tokio::test]
async fn each_socket_of_an_agent_gets_every_message() {
    let server = TestServer::start().await;
    let mut phone = server.agent("kf01").await;
    let mut desktop = server.agent("kf01").await;

    server.post_xml(text_xml("oUser1", "1", "hi")).await;

    for socket in [&mut phone, &mut desktop] {
        assert_eq!(
            socket.next().await["data"]["data"]["event"],
            "contact_assigned"
        );
        assert_eq!(socket.next().await["data"]["id"], "1");
    }
}

#[tokio::test]
async fn offline_agent_gets_messages_on_next_connect() {
    let server = TestServer::start().await;
    let agent = server.agent("kf01").await;
    drop(agent);
    tokio::time::sleep(Duration::from_millis(100)).await;

    for n in 1..=3 {
        server
            .post_xml(text_xml("oUser1", &n.to_string(), "hi"))
            .await;
    }
    let token = server.token("kf01", "default", 3600);
    let mut again = Agent::connect(&server.socket_url("kf01", &token, "")).await;
    again.send_text(r#"{"action":"heartbeat"}"#).await;

    let mut seen = Vec::new();
    while let Some(frame) = again.try_next(Duration::from_millis(500)).await {
        seen.push(match frame["data"]["msg_type"].as_str() {
            Some("system") => frame["data"]["data"]["event"].as_str().unwrap().to_owned(),
            Some(_) => frame["data"]["id"].as_str().unwrap().to_owned(),
            None => "heartbeat".to_owned(),
        });
    }
    assert_eq!(
        seen,
        ["contacts", "contact_assigned", "1", "2", "3", "heartbeat"]
    );
}

#[tokio::test]
async fn last_seq_on_url_replays_after_it() {
    let server = TestServer::start().await;
    let mut agent = server.agent("kf01").await;
    server.post_xml(text_xml("oUser1", "1", "a")).await;
    server.post_xml(text_xml("oUser1", "2", "b")).await;
    agent.next().await;
    let first = agent.next().await;
    agent.next().await;
    let after = first["data"]["seq"].as_u64().unwrap();

    let token = server.token("kf01", "default", 3600);
    let url = server.socket_url("kf01", &token, &format!("&last_seq={after}"));
    let mut replay = Agent::connect(&url).await;
    replay.send_text(r#"{"action":"heartbeat"}"#).await;

    assert_eq!(replay.next().await["data"]["data"]["event"], "contacts");
    assert_eq!(replay.next().await["data"]["id"], "2");
    assert_eq!(replay.next().await["result"]["code"], 101);
}
