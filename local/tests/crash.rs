//! Durability: the server is killed with SIGKILL while messages flow and started again on the
//! same data folder. Every message acknowledged with `200 success` must reach the agent, and a
//! client gets none of the frames it acked again.

mod support;

use std::collections::{BTreeMap, HashSet};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use support::text_xml;
use tokio_tungstenite::tungstenite::Message;

const MESSAGES: usize = 3000;
const KILL_AFTER_ACCEPTED: usize = 400;
const USERS: usize = 50;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wxkf(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_wxkf"));
    command.args(args).env("RUST_LOG", "warn");
    command
}

fn start_server(port: u16, data_dir: &str) -> Child {
    wxkf(&[
        "serve",
        "--addr",
        &format!("127.0.0.1:{port}"),
        "--data-dir",
        data_dir,
    ])
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .unwrap()
}

async fn wait_ready(http: &reqwest::Client, port: u16) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if http
            .get(format!("http://127.0.0.1:{port}/healthz"))
            .send()
            .await
            .is_ok()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("server on port {port} did not become ready within 20 s");
}

fn output(args: &[&str]) -> String {
    let out = wxkf(args).output().unwrap();
    assert!(out.status.success(), "wxkf {args:?} failed");
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// What the agent client holds: frames by seq, and message ids seen.
#[derive(Default)]
struct Received {
    by_seq: BTreeMap<u64, String>,
    ids: Vec<String>,
    /// Frames that arrived again although the client had acked them.
    acked_redelivered: Vec<u64>,
    acked: u64,
}

impl Received {
    /// Returns the highest seq below which the client has every frame. Frames can arrive out of
    /// seq order when messages race, and seqs have no gaps.
    fn watermark(&self) -> u64 {
        let mut mark = 0;
        while self.by_seq.contains_key(&(mark + 1)) {
            mark += 1;
        }
        mark
    }
}

/// Reads frames until the socket closes, recording message ids by seq and acking the
/// watermark as it grows.
async fn run_agent(url: String, received: Arc<Mutex<Received>>) {
    let Ok((socket, _)) = tokio_tungstenite::connect_async(&url).await else {
        return;
    };
    let (mut sink, mut stream) = socket.split();
    sink.send(Message::Text(r#"{"action":"heartbeat"}"#.into()))
        .await
        .unwrap();
    while let Some(Ok(message)) = stream.next().await {
        let Message::Text(text) = message else {
            continue;
        };
        let frame: serde_json::Value = serde_json::from_str(&text).unwrap();
        let Some(seq) = frame["data"]["seq"].as_u64() else {
            continue;
        };
        if frame["data"]["data"]["event"] == "contacts" {
            continue;
        }
        let ack = {
            let mut held = received.lock().unwrap();
            if held.by_seq.contains_key(&seq) {
                // Frames above the acked watermark may come again after a resume; the client
                // drops them by seq. Frames at or below it must not.
                if seq <= held.acked {
                    held.acked_redelivered.push(seq);
                }
                continue;
            }
            let id = frame["data"]["id"].as_str().unwrap().to_owned();
            if frame["data"]["msg_type"] == "text" {
                held.ids.push(id.clone());
            }
            held.by_seq.insert(seq, id);
            held.acked = held.watermark();
            held.acked
        };
        let ack = format!(r#"{{"action":"ack","seq":{ack}}}"#);
        if sink.send(Message::Text(ack.into())).await.is_err() {
            return;
        }
    }
}

async fn post_text(http: &reqwest::Client, port: u16, user: &str, id: &str) -> bool {
    let response = http
        .post(format!(
            "http://127.0.0.1:{port}/im_component/wx_official_account/send_xml"
        ))
        .timeout(Duration::from_secs(5))
        .body(text_xml(user, id, "消息"))
        .send()
        .await;
    matches!(response, Ok(response) if response.status() == 200)
}

async fn wait_for(received: &Arc<Mutex<Received>>, expected: &HashSet<String>, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let held: HashSet<String> = received.lock().unwrap().ids.iter().cloned().collect();
        if expected.is_subset(&held) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{} {what} never arrived",
            expected.difference(&held).count()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_loses_no_accepted_message() {
    let data = tempfile::tempdir().unwrap();
    let data_dir = data.path().to_str().unwrap().to_owned();
    let port = free_port();
    let http = reqwest::Client::new();
    let token = output(&["token", "kf01", "--data-dir", &data_dir]);
    let socket_url = format!(
        "ws://127.0.0.1:{port}/im_component/wx_official_account/msg?userid=kf01&token={token}"
    );
    let mut server = start_server(port, &data_dir);
    wait_ready(&http, port).await;

    // Phase 1: the agent is online, takes 50 users and acks their first messages.
    let received = Arc::new(Mutex::new(Received::default()));
    let agent = tokio::spawn(run_agent(socket_url.clone(), received.clone()));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut first = HashSet::new();
    for user in 0..USERS {
        let id = format!("{}", 8_000_000_000_000_000_000u64 + user as u64);
        assert!(post_text(&http, port, &format!("oUser{user}"), &id).await);
        first.insert(id);
    }
    wait_for(&received, &first, "first messages").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    agent.abort();
    tokio::time::sleep(Duration::from_millis(200)).await;

    // Phase 2: with the agent offline, four senders post concurrently and the server is
    // killed mid-flow; each sender records the ids acknowledged with `success`.
    let accepted = Arc::new(Mutex::new(HashSet::new()));
    let mut senders = Vec::new();
    for lane in 0..4 {
        let http = http.clone();
        let accepted = accepted.clone();
        senders.push(tokio::spawn(async move {
            for n in (lane..MESSAGES).step_by(4) {
                let id = format!("{}", 9_000_000_000_000_000_000u64 + n as u64);
                if !post_text(&http, port, &format!("oUser{}", n % USERS), &id).await {
                    return;
                }
                accepted.lock().unwrap().insert(id);
            }
        }));
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while accepted.lock().unwrap().len() < KILL_AFTER_ACCEPTED {
        assert!(
            Instant::now() < deadline,
            "messages were not accepted in time"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    server.kill().unwrap();
    server.wait().unwrap();
    for sender in senders {
        sender.await.unwrap();
    }

    // Phase 3: restart on the same folder; the agent reconnects without last_seq and gets,
    // from the store, every accepted message and none it acked.
    let mut server = start_server(port, &data_dir);
    wait_ready(&http, port).await;
    let agent = tokio::spawn(run_agent(socket_url, received.clone()));
    let accepted = accepted.lock().unwrap().clone();
    wait_for(&received, &accepted, "accepted messages").await;
    server.kill().unwrap();
    server.wait().unwrap();
    agent.abort();

    let held = received.lock().unwrap();
    eprintln!(
        "accepted {} of {MESSAGES} before the kill; the client holds {} messages",
        accepted.len(),
        held.ids.len()
    );
    let unique: HashSet<&String> = held.ids.iter().collect();
    assert!(accepted.len() >= KILL_AFTER_ACCEPTED);
    assert_eq!(
        unique.len(),
        held.ids.len(),
        "a message reached the client twice"
    );
    assert_eq!(
        held.acked_redelivered,
        Vec::<u64>::new(),
        "acked frames were delivered again"
    );
}
