//! The local stand-in for API Gateway's connection management: a table of open sockets, the
//! [`GatewayPusher`] the hub pushes through, and the `@connections/{id}` routes that behave
//! like API Gateway's (410 Gone for a closed or unknown id), so the AWS pusher can be tested
//! against real sockets.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::engine::general_purpose::URL_SAFE;
use base64::Engine;
use serde_json::json;
use tokio::sync::mpsc;
use wxkf_core::ids::ConnectionId;
use wxkf_core::ports::{PushError, Pusher};
use wxkf_core::time::Timestamp;

use super::AppState;

/// API Gateway's WebSocket message limit.
pub const MAX_MESSAGE_BYTES: usize = 128 * 1024;

/// Frames queued for one socket before it counts as too slow and is closed. The agent then
/// reconnects with `last_seq` and loses nothing, as every frame is stored.
const SOCKET_QUEUE_FRAMES: usize = 4096;

/// The next item the socket task sends.
#[derive(Debug)]
pub enum Outgoing {
    Text(String),
    Close,
}

struct Socket {
    sender: mpsc::Sender<Outgoing>,
    connected_at: Timestamp,
    last_active_at: AtomicI64,
    source_ip: String,
}

/// The open sockets of this process.
#[derive(Default)]
pub struct Gateway {
    sockets: RwLock<HashMap<ConnectionId, Socket>>,
}

impl Gateway {
    /// Generates an id shaped like API Gateway's (`TWegAcC4EowCHnA=`): 11 random bytes in
    /// base64 with its padding. The URL-safe alphabet keeps the id usable in a path.
    pub fn new_connection_id() -> ConnectionId {
        let bytes: [u8; 11] = rand::random();
        ConnectionId::parse(URL_SAFE.encode(bytes)).expect("base64 text is a valid connection id")
    }

    /// Adds a socket and returns the receiver its task writes from.
    pub fn register(
        &self,
        id: &ConnectionId,
        source_ip: String,
        now: Timestamp,
    ) -> mpsc::Receiver<Outgoing> {
        let (sender, receiver) = mpsc::channel(SOCKET_QUEUE_FRAMES);
        let socket = Socket {
            sender,
            connected_at: now,
            last_active_at: AtomicI64::new(now.0),
            source_ip,
        };
        self.write().insert(id.clone(), socket);
        receiver
    }

    pub fn unregister(&self, id: &ConnectionId) {
        self.write().remove(id);
    }

    pub fn touch(&self, id: &ConnectionId, now: Timestamp) {
        if let Some(socket) = self.read().get(id) {
            socket.last_active_at.store(now.0, Ordering::Relaxed);
        }
    }

    /// Queues a text frame for the socket.
    pub fn send(&self, id: &ConnectionId, text: String) -> Result<(), PushError> {
        if text.len() > MAX_MESSAGE_BYTES {
            return Err(PushError::TooLarge(text.len()));
        }
        let sockets = self.read();
        let socket = sockets.get(id).ok_or(PushError::Gone)?;
        match socket.sender.try_send(Outgoing::Text(text)) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Closed(_)) => Err(PushError::Gone),
            Err(mpsc::error::TrySendError::Full(_)) => {
                // The client is not reading. Dropping the sender ends the socket task, which
                // closes the socket; everything unsent is in the store for the reconnect.
                drop(sockets);
                tracing::warn!(connection = %id, "socket queue full; closing slow socket");
                self.unregister(id);
                Err(PushError::Gone)
            }
        }
    }

    /// Asks the socket to close. Returns `false` for an unknown id.
    pub fn close(&self, id: &ConnectionId) -> bool {
        match self.read().get(id) {
            Some(socket) => {
                let _ = socket.sender.try_send(Outgoing::Close);
                true
            }
            None => false,
        }
    }

    pub fn open_sockets(&self) -> usize {
        self.read().len()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<ConnectionId, Socket>> {
        // A panic while holding the lock cannot leave the map half-updated (every write is a
        // single insert or remove), so a poisoned lock is still safe to use.
        self.sockets
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<ConnectionId, Socket>> {
        self.sockets
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The hub's pusher for `wxkf serve`: straight into the socket table.
#[derive(Clone)]
pub struct GatewayPusher(pub Arc<Gateway>);

#[async_trait]
impl Pusher for GatewayPusher {
    async fn push(&self, connection: &ConnectionId, payload: &str) -> Result<(), PushError> {
        self.0.send(connection, payload.to_owned())
    }
}

/// Returns 410 Gone, as API Gateway does for management calls on closed or unknown ids.
fn gone() -> Response {
    (StatusCode::GONE, Json(json!({ "message": "Gone" }))).into_response()
}

fn forbidden() -> Response {
    (
        StatusCode::FORBIDDEN,
        Json(json!({ "message": "@connections is served to loopback clients only" })),
    )
        .into_response()
}

/// `POST /@connections/{id}`: sends the body to the socket as one text frame.
pub async fn post_to_connection(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    if !peer.ip().is_loopback() {
        return forbidden();
    }
    let Ok(id) = ConnectionId::parse(id) else {
        return gone();
    };
    let Ok(text) = String::from_utf8(body.to_vec()) else {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({ "message": "body must be UTF-8 text" })),
        )
            .into_response();
    };
    match state.gateway.send(&id, text) {
        Ok(()) => StatusCode::OK.into_response(),
        Err(PushError::TooLarge(size)) => (
            StatusCode::PAYLOAD_TOO_LARGE,
            Json(json!({ "message": format!("payload of {size} bytes exceeds {MAX_MESSAGE_BYTES}") })),
        )
            .into_response(),
        Err(_) => gone(),
    }
}

/// `GET /@connections/{id}`: the connection's times and source address.
pub async fn get_connection(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(id): Path<String>,
) -> Response {
    if !peer.ip().is_loopback() {
        return forbidden();
    }
    let Ok(id) = ConnectionId::parse(id) else {
        return gone();
    };
    let sockets = state.gateway.read();
    let Some(socket) = sockets.get(&id) else {
        return gone();
    };
    let last_active = Timestamp(socket.last_active_at.load(Ordering::Relaxed));
    Json(json!({
        "connectedAt": rfc3339(socket.connected_at),
        "lastActiveAt": rfc3339(last_active),
        "identity": { "sourceIp": socket.source_ip },
    }))
    .into_response()
}

/// `DELETE /@connections/{id}`: closes the socket.
pub async fn delete_connection(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(id): Path<String>,
) -> Response {
    if !peer.ip().is_loopback() {
        return forbidden();
    }
    match ConnectionId::parse(id) {
        Ok(id) if state.gateway.close(&id) => StatusCode::NO_CONTENT.into_response(),
        _ => gone(),
    }
}

/// Formats a timestamp as RFC 3339 in UTC, as API Gateway does.
fn rfc3339(at: Timestamp) -> String {
    let secs = at.as_secs();
    let days = secs.div_euclid(86_400);
    let of_day = secs.rem_euclid(86_400);
    // Civil-from-days conversion for the proleptic Gregorian calendar.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        of_day / 3600,
        of_day % 3600 / 60,
        of_day % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_ids_look_like_api_gateway_ids() {
        let id = Gateway::new_connection_id();
        assert_eq!(id.as_str().len(), 16);
        assert!(
            id.as_str().ends_with('='),
            "{id} should end with base64 padding"
        );
        assert!(
            !id.as_str().contains('/'),
            "{id} must be usable in a URL path"
        );
    }

    #[test]
    fn rfc3339_formats_known_instants() {
        assert_eq!(rfc3339(Timestamp::from_secs(0)), "1970-01-01T00:00:00Z");
        assert_eq!(
            rfc3339(Timestamp::from_secs(1_348_831_860)),
            "2012-09-28T11:31:00Z"
        );
        assert_eq!(
            rfc3339(Timestamp::from_secs(951_782_400)),
            "2000-02-29T00:00:00Z"
        );
    }

    #[test]
    fn send_to_unknown_socket_is_gone() {
        let gateway = Gateway::default();
        let id = Gateway::new_connection_id();
        assert!(matches!(
            gateway.send(&id, "x".into()),
            Err(PushError::Gone)
        ));
    }

    #[test]
    fn oversize_frame_is_rejected_before_queueing() {
        let gateway = Gateway::default();
        let id = Gateway::new_connection_id();
        let _receiver = gateway.register(&id, "127.0.0.1".into(), Timestamp(0));
        let result = gateway.send(&id, "x".repeat(MAX_MESSAGE_BYTES + 1));
        assert!(matches!(result, Err(PushError::TooLarge(size)) if size == MAX_MESSAGE_BYTES + 1));
    }
}
