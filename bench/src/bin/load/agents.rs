//! The agents' WebSockets: connect, send the first heartbeat, wait for the hub's heartbeat
//! frame (code 101), then hand every text frame to the [`Tracker`].

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use futures_util::{SinkExt, StreamExt};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use wxkf_core::ids::{AgentId, CompanyId};
use wxkf_core::time::Timestamp;
use wxkf_core::token::TokenSigner;

use crate::tracker::Tracker;

const BASE_PATH: &str = "/im_component/wx_official_account";

/// How long one agent may take to connect and receive the heartbeat frame.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// How long the minted tokens stay valid; far longer than any bounded run.
const TOKEN_TTL_SECS: i64 = 3 * 3600;

/// The company `wxkf serve` assigns users to when no account mapping is configured.
const DEFAULT_COMPANY: &str = "default";

/// Connects `count` agents (`agent000`, `agent001`, …) and returns their reader tasks.
pub async fn connect_all(
    addr: &str,
    signer: &TokenSigner,
    count: usize,
    tracker: &Arc<Tracker>,
) -> anyhow::Result<Vec<JoinHandle<()>>> {
    let company = CompanyId::parse(DEFAULT_COMPANY).expect("\"default\" is a valid company id");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .context("the system clock is before 1970")?
        .as_secs() as i64;
    let expires_at = Timestamp::from_secs(now + TOKEN_TTL_SECS);

    let mut connecting = Vec::with_capacity(count);
    for number in 0..count {
        let agent = AgentId::parse(format!("agent{number:03}")).expect("agentNNN is a valid id");
        let token = signer.mint(&agent, &company, expires_at);
        let url = format!("ws://{addr}{BASE_PATH}/msg?userid={agent}&token={token}");
        connecting.push(tokio::spawn(connect(url, agent, tracker.clone())));
    }

    let mut readers = Vec::with_capacity(count);
    for task in connecting {
        readers.push(task.await.context("an agent task panicked")??);
    }
    Ok(readers)
}

/// Opens one socket, completes the heartbeat exchange and spawns its reader.
async fn connect(
    url: String,
    agent: AgentId,
    tracker: Arc<Tracker>,
) -> anyhow::Result<JoinHandle<()>> {
    let handshake = async {
        let (mut socket, _) = tokio_tungstenite::connect_async(&url)
            .await
            .with_context(|| format!("cannot open the socket of {agent}"))?;
        socket
            .send(Message::Text(r#"{"action":"heartbeat"}"#.into()))
            .await
            .with_context(|| format!("cannot send the heartbeat of {agent}"))?;
        // The contact list comes first, then the heartbeat frame (code 101).
        loop {
            let frame = socket
                .next()
                .await
                .with_context(|| {
                    format!("the socket of {agent} closed before the heartbeat frame")
                })?
                .with_context(|| format!("cannot read the socket of {agent}"))?;
            if let Message::Text(text) = frame {
                if text.contains(r#""code":101"#) {
                    return anyhow::Ok(socket);
                }
            }
        }
    };
    let socket = tokio::time::timeout(CONNECT_TIMEOUT, handshake)
        .await
        .with_context(|| format!("{agent} was not connected within {CONNECT_TIMEOUT:?}"))??;

    Ok(tokio::spawn(async move {
        let (_sink, mut stream) = socket.split();
        while let Some(Ok(frame)) = stream.next().await {
            if let Message::Text(text) = frame {
                tracker.mark_frame(text.as_str());
            }
        }
        tracker.closed_sockets.fetch_add(1, Ordering::Relaxed);
    }))
}
