//! The agent WebSocket, `GET …/msg?userid=…&token=…[&last_seq=N]`.
//!
//! The token is checked before the upgrade, so a bad one gets a plain 401 and no socket. Once
//! open, the socket behaves like one behind API Gateway: the hub records it but pushes nothing
//! until the agent's first frame, text frames over 128 KB close it, and it closes after 10
//! minutes without a frame from the agent.

use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, Query, State};
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use tokio::sync::mpsc;
use tracing::{error, warn};
use wxkf_core::error_chain;
use wxkf_core::frame::error_frame;
use wxkf_core::ids::{AgentId, ConnectionId, Seq};
use wxkf_core::token::AgentClaims;

use super::error::ApiError;
use super::gateway::{Gateway, Outgoing, MAX_MESSAGE_BYTES};
use super::AppState;

/// API Gateway closes a WebSocket after 10 minutes without traffic from the client.
const IDLE_TIMEOUT: Duration = Duration::from_secs(600);

#[derive(Debug, Deserialize)]
pub struct SocketQuery {
    userid: Option<String>,
    token: Option<String>,
    last_seq: Option<String>,
}

/// Checks the agent's token and upgrades to a WebSocket.
pub async fn upgrade(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Query(query): Query<SocketQuery>,
    upgrade: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    let claims = match authenticate(&state, &query) {
        Ok(claims) => claims,
        Err(error) => return error.into_response(),
    };
    let resume_after = match query.last_seq.as_deref().map(str::parse::<u64>) {
        None => None,
        Some(Ok(seq)) => Some(Seq(seq)),
        Some(Err(_)) => {
            return ApiError::bad_request("last_seq must be a non-negative integer").into_response()
        }
    };
    let upgrade = match upgrade {
        Ok(upgrade) => upgrade,
        Err(rejection) => {
            return ApiError::bad_request(format!("not a WebSocket upgrade: {rejection}"))
                .into_response()
        }
    };

    upgrade
        .max_message_size(MAX_MESSAGE_BYTES)
        .on_upgrade(move |socket| run(state, socket, claims, resume_after, peer))
}

fn authenticate(state: &AppState, query: &SocketQuery) -> Result<AgentClaims, ApiError> {
    let userid = query
        .userid
        .as_deref()
        .ok_or_else(|| ApiError::unauthorized("userid is missing"))?;
    let agent = AgentId::parse(userid)
        .map_err(|error| ApiError::unauthorized(format!("userid is invalid: {error}")))?;
    state
        .signer
        .verify(
            query.token.as_deref().unwrap_or(""),
            &agent,
            state.clock.now(),
        )
        .map_err(|error| ApiError::unauthorized(error.to_string()))
}

/// Runs one socket until either side closes it.
async fn run(
    state: AppState,
    socket: WebSocket,
    claims: AgentClaims,
    resume_after: Option<Seq>,
    peer: SocketAddr,
) {
    let id = Gateway::new_connection_id();
    let outgoing = state
        .gateway
        .register(&id, peer.ip().to_string(), state.clock.now());
    if let Err(error) = state.hub.connect(&claims, id.clone(), resume_after).await {
        error!(connection = %id, error = %error_chain(&error), "cannot record connection");
        state.gateway.unregister(&id);
        return;
    }

    let (sink, stream) = socket.split();
    let writer = tokio::spawn(write_frames(sink, outgoing));
    read_frames(&state, &id, stream).await;

    state.gateway.unregister(&id);
    // The writer ends once the gateway dropped its sender and the queue is flushed.
    let _ = writer.await;
    if let Err(error) = state.hub.disconnect(&id).await {
        error!(connection = %id, error = %error_chain(&error), "cannot remove connection");
    }
}

async fn read_frames(
    state: &AppState,
    id: &ConnectionId,
    mut stream: futures_util::stream::SplitStream<WebSocket>,
) {
    loop {
        let next = match tokio::time::timeout(IDLE_TIMEOUT, stream.next()).await {
            Ok(Some(Ok(message))) => message,
            Ok(Some(Err(error))) => {
                warn!(connection = %id, %error, "socket read failed");
                return;
            }
            Ok(None) => return,
            Err(_) => {
                state.gateway.close(id);
                return;
            }
        };
        state.gateway.touch(id, state.clock.now());

        let text = match next {
            Message::Text(text) => text,
            Message::Binary(_) => {
                let _ = state.gateway.send(
                    id,
                    error_frame("binary frames are not supported; send JSON text"),
                );
                continue;
            }
            Message::Close(_) => return,
            Message::Ping(_) | Message::Pong(_) => continue,
        };
        if let Err(error) = state.hub.handle_frame(id, text.as_str()).await {
            error!(connection = %id, error = %error_chain(&error), "agent frame failed");
            let _ = state.gateway.send(
                id,
                error_frame("the hub could not handle this frame; retry later"),
            );
        }
    }
}

async fn write_frames(
    mut sink: futures_util::stream::SplitSink<WebSocket, Message>,
    mut outgoing: mpsc::Receiver<Outgoing>,
) {
    while let Some(next) = outgoing.recv().await {
        match next {
            Outgoing::Text(text) => {
                if sink
                    .send(Message::Text(Utf8Bytes::from(text)))
                    .await
                    .is_err()
                {
                    return;
                }
            }
            Outgoing::Close => break,
        }
    }
    let _ = sink
        .send(Message::Close(Some(CloseFrame {
            code: 1000,
            reason: Utf8Bytes::from_static("closed by the hub"),
        })))
        .await;
}
