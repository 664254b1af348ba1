//! `wxkf serve --store dynamodb` end to end, as the AWS deployment runs: JSON route → hub →
//! DynamoDB (moto on loopback) → API Gateway Management API client → this server's
//! `@connections` endpoint → the agent's real WebSocket.

mod support;

use std::process::Command;
use std::time::Duration;

use support::{Agent, TestServer};
use wxkf::app::StoreKind;

/// The moto endpoint: `WXKF_MOTO_ENDPOINT` when set, else the one `scripts/moto.sh` starts.
/// Without moto this test fails; it never passes silently.
fn moto_endpoint() -> String {
    if let Ok(endpoint) = std::env::var("WXKF_MOTO_ENDPOINT") {
        assert!(
            endpoint.starts_with("http://127.0.0.1:"),
            "WXKF_MOTO_ENDPOINT must be a loopback URL, got {endpoint:?}"
        );
        return endpoint;
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/moto.sh");
    let output = Command::new("bash").arg(script).output().unwrap();
    assert!(
        output.status.success(),
        "moto is required for this test and {script} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamodb_store_delivers_through_management_api() {
    let endpoint = moto_endpoint();
    // This file holds one test, so setting the process environment races with nothing.
    std::env::set_var("AWS_ENDPOINT_URL_DYNAMODB", &endpoint);
    std::env::set_var("AWS_ACCESS_KEY_ID", "test");
    std::env::set_var("AWS_SECRET_ACCESS_KEY", "test");
    std::env::set_var("AWS_REGION", "us-east-1");
    std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");
    std::env::set_var(
        "WXKF_TABLE",
        format!("wxkf-serve-test-{}", std::process::id()),
    );
    let server = TestServer::start_on(StoreKind::Dynamodb, |_| None).await;
    let mut agent = server.agent("kf01").await;

    let response = server
        .post_json(r#"{"data":{"msg_type":"text","contact_id":"oUser1","id":"m-1","data":{"content":"你好"}}}"#)
        .await;

    assert_eq!(response.status(), 200);
    let notice = agent.next().await;
    assert_eq!(notice["data"]["data"]["event"], "contact_assigned");
    let frame = agent.next().await;
    assert_eq!(frame["data"]["id"], "m-1");
    assert_eq!(frame["data"]["data"]["content"], "你好");

    // The agent leaves; the next push gets 410 from the gateway, which removes the connection
    // and keeps the message for the next socket.
    drop(agent);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let response = server
        .post_json(r#"{"data":{"msg_type":"text","contact_id":"oUser1","id":"m-2","data":{"content":"还在吗"}}}"#)
        .await;
    assert_eq!(response.status(), 200);

    let token = server.token("kf01", "default", 3600);
    let mut again = Agent::connect(&server.socket_url("kf01", &token, "")).await;
    again.send_text(r#"{"action":"heartbeat"}"#).await;
    assert_eq!(again.next().await["data"]["data"]["event"], "contacts");
    let waiting = again.next().await;
    assert_eq!(
        waiting["data"]["id"], "m-2",
        "the message waited in DynamoDB"
    );
    assert_eq!(again.next().await["result"]["code"], 101);
}
