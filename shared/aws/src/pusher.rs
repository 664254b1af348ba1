//! The pusher port on the API Gateway Management API: `POST /@connections/{id}`.
//!
//! API Gateway returns 410 Gone for a socket that closed, and 403 Forbidden for a connection
//! id it no longer has; both become [`PushError::Gone`], so the hub removes that connection
//! and keeps the message for the next one. Throttling (429 `LimitExceededException`) and
//! server errors are retried with a growing pause, at most [`PUSH_ATTEMPTS`] times in all. A
//! payload over the 128 KB message limit is rejected before any request and never retried.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_apigatewaymanagement::error::SdkError;
use aws_sdk_apigatewaymanagement::operation::post_to_connection::PostToConnectionError;
use aws_sdk_apigatewaymanagement::primitives::Blob;
use aws_sdk_apigatewaymanagement::Client;
use tracing::{debug, warn};
use wxkf_core::ids::ConnectionId;
use wxkf_core::ports::{PushError, Pusher};

/// API Gateway's limit for one WebSocket message, in bytes.
pub const MAX_MESSAGE_BYTES: usize = 128 * 1024;

/// Requests per push at most, the first included.
pub const PUSH_ATTEMPTS: u32 = 4;

/// The pause before the first retry; it doubles for each further one (50, 100, 200 ms).
const FIRST_RETRY_PAUSE: Duration = Duration::from_millis(50);

/// Pushes frames through the management API of one WebSocket API stage.
#[derive(Debug, Clone)]
pub struct ApiGatewayPusher {
    client: Client,
    first_retry_pause: Duration,
}

impl ApiGatewayPusher {
    /// Wraps a client from [`crate::clients::management_client`], whose own retries are off so
    /// that this pusher alone decides what is retried.
    pub fn new(client: Client) -> Self {
        Self {
            client,
            first_retry_pause: FIRST_RETRY_PAUSE,
        }
    }

    /// Sets the pause before the first retry; tests shorten it.
    pub fn with_first_retry_pause(mut self, pause: Duration) -> Self {
        self.first_retry_pause = pause;
        self
    }
}

/// The verdict on one failed request.
#[derive(Debug)]
enum Outcome {
    Final(PushError),
    Retry(PushError),
}

fn judge(error: SdkError<PostToConnectionError>, payload_len: usize) -> Outcome {
    let status = error
        .raw_response()
        .map(|response| response.status().as_u16());
    if let SdkError::ServiceError(service) = &error {
        match service.err() {
            PostToConnectionError::GoneException(_) => return Outcome::Final(PushError::Gone),
            PostToConnectionError::ForbiddenException(_) => {
                warn!("management API answered 403; treating the connection as gone");
                return Outcome::Final(PushError::Gone);
            }
            PostToConnectionError::PayloadTooLargeException(_) => {
                return Outcome::Final(PushError::TooLarge(payload_len))
            }
            PostToConnectionError::LimitExceededException(_) => {
                return Outcome::Retry(PushError::Failed(Box::new(error)))
            }
            _ => {}
        }
    }
    match status {
        Some(410) | Some(403) => Outcome::Final(PushError::Gone),
        Some(413) => Outcome::Final(PushError::TooLarge(payload_len)),
        Some(429) | Some(500..=599) | None => Outcome::Retry(PushError::Failed(Box::new(error))),
        Some(_) => Outcome::Final(PushError::Failed(Box::new(error))),
    }
}

#[async_trait]
impl Pusher for ApiGatewayPusher {
    async fn push(&self, connection: &ConnectionId, payload: &str) -> Result<(), PushError> {
        if payload.len() > MAX_MESSAGE_BYTES {
            return Err(PushError::TooLarge(payload.len()));
        }
        let mut pause = self.first_retry_pause;
        let mut attempt = 1;
        loop {
            // The id goes in raw: the SDK percent-encodes the path, including the `=` padding.
            let result = self
                .client
                .post_to_connection()
                .connection_id(connection.as_str())
                .data(Blob::new(payload.as_bytes()))
                .send()
                .await;
            let error = match result {
                Ok(_) => return Ok(()),
                Err(error) => error,
            };
            match judge(error, payload.len()) {
                Outcome::Final(error) => return Err(error),
                Outcome::Retry(error) if attempt >= PUSH_ATTEMPTS => return Err(error),
                Outcome::Retry(_) => {
                    debug!(%connection, attempt, "push throttled or failed; retrying");
                    tokio::time::sleep(pause).await;
                    pause *= 2;
                    attempt += 1;
                }
            }
        }
    }
}
