//! A wxkf server in this test process on a loopback port, with real HTTP and WebSocket
//! clients.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use secrecy::ExposeSecret;
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use wxkf::app::{self, RunningServer, ServeOptions, StoreKind};
use wxkf::data_dir::DataDir;
use wxkf_core::config::Config;
use wxkf_core::ids::{AgentId, CompanyId};
use wxkf_core::time::Timestamp;

pub const BASE: &str = "/im_component/wx_official_account";

/// How long a test waits for a frame that should come.
pub const FRAME_WAIT: Duration = Duration::from_secs(5);

pub struct TestServer {
    pub server: RunningServer,
    pub addr: SocketAddr,
    pub api_key: String,
    pub http: reqwest::Client,
    _data: tempfile::TempDir,
}

impl TestServer {
    pub async fn start() -> TestServer {
        Self::start_with(|_| None).await
    }

    /// Starts a server with extra `WXKF_…` variables.
    pub async fn start_with(vars: impl Fn(&str) -> Option<String>) -> TestServer {
        Self::start_on(StoreKind::Sqlite, vars).await
    }

    /// Starts a server on the given store.
    pub async fn start_on(store: StoreKind, vars: impl Fn(&str) -> Option<String>) -> TestServer {
        let data = tempfile::tempdir().unwrap();
        let config = Config::from_lookup(vars).unwrap();
        let options = ServeOptions {
            addr: "127.0.0.1:0".parse().unwrap(),
            data_dir: data.path().to_owned(),
            store,
        };
        let server = app::start(options, config.clone()).await.unwrap();
        let api_key = match config.api_keys.first() {
            Some(key) => key.expose_secret().to_owned(),
            None => DataDir::open(data.path())
                .unwrap()
                .api_key()
                .unwrap()
                .expose_secret()
                .to_owned(),
        };
        TestServer {
            addr: server.addr,
            server,
            api_key,
            http: reqwest::Client::new(),
            _data: data,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn token(&self, agent: &str, company: &str, valid_secs: i64) -> String {
        let now = self.server.state.clock.now();
        self.server.state.signer.mint(
            &AgentId::parse(agent).unwrap(),
            &CompanyId::parse(company).unwrap(),
            Timestamp(now.0).plus_secs(valid_secs),
        )
    }

    pub fn socket_url(&self, agent: &str, token: &str, extra: &str) -> String {
        format!(
            "ws://{}{BASE}/msg?userid={agent}&token={token}{extra}",
            self.addr
        )
    }

    /// Connects an agent of company `default` and sends the first heartbeat; returns the socket
    /// after its contact list and heartbeat answer were read.
    pub async fn agent(&self, agent: &str) -> Agent {
        let token = self.token(agent, "default", 3600);
        let mut agent = Agent::connect(&self.socket_url(agent, &token, "")).await;
        agent.send_text(r#"{"action":"heartbeat"}"#).await;
        let contacts = agent.next().await;
        assert_eq!(contacts["data"]["data"]["event"], "contacts");
        let heartbeat = agent.next().await;
        assert_eq!(heartbeat["result"]["code"], 101);
        agent
    }

    pub async fn post_json(&self, body: &str) -> reqwest::Response {
        self.http
            .post(self.url(&format!("{BASE}/send")))
            .bearer_auth(&self.api_key)
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
            .await
            .unwrap()
    }

    pub async fn post_xml(&self, body: impl Into<reqwest::Body>) -> reqwest::Response {
        self.http
            .post(self.url(&format!("{BASE}/send_xml")))
            .header("content-type", "text/xml")
            .body(body)
            .send()
            .await
            .unwrap()
    }
}

/// An agent's WebSocket.
pub struct Agent {
    pub socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl Agent {
    pub async fn connect(url: &str) -> Agent {
        let (socket, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        Agent { socket }
    }

    pub async fn send_text(&mut self, text: &str) {
        self.socket
            .send(Message::Text(text.to_owned().into()))
            .await
            .unwrap();
    }

    /// The next text frame, parsed; fails the test if none comes in time.
    pub async fn next(&mut self) -> Value {
        self.try_next(FRAME_WAIT)
            .await
            .expect("expected a frame from the hub")
    }

    pub async fn try_next(&mut self, wait: Duration) -> Option<Value> {
        loop {
            let message = tokio::time::timeout(wait, self.socket.next())
                .await
                .ok()??;
            match message.unwrap() {
                Message::Text(text) => return Some(serde_json::from_str(&text).unwrap()),
                Message::Close(_) => return None,
                _ => continue,
            }
        }
    }
}

/// WeChat's text message XML, as WeChat sends it.
pub fn text_xml(user: &str, msg_id: &str, content: &str) -> String {
    format!(
        "<xml><ToUserName><![CDATA[gh_test]]></ToUserName><FromUserName><![CDATA[{user}]]></FromUserName>\
<CreateTime>1348831860</CreateTime><MsgType><![CDATA[text]]></MsgType>\
<Content><![CDATA[{content}]]></Content><MsgId>{msg_id}</MsgId></xml>"
    )
}
