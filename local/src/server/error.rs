//! One error type for the HTTP routes, turned into a response in one place: the body is the
//! protocol's error frame `{"data":{},"result":{"code":-1,"message":"…"}}`. Client mistakes are
//! logged at `warn` with their reason; internal failures at `error`, and clients never see
//! their details.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use tracing::{error, warn};
use wxkf_core::error_chain;
use wxkf_core::hub::HubError;

#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            message: message.into(),
        }
    }

    pub fn with_status(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }
}

impl From<HubError> for ApiError {
    fn from(hub_error: HubError) -> Self {
        error!(error = %error_chain(&hub_error), "request failed inside the hub");
        Self {
            status: StatusCode::SERVICE_UNAVAILABLE,
            message: "the hub could not store the message; retry later".into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_client_error() {
            warn!(status = self.status.as_u16(), reason = %self.message, "request rejected");
        }
        let body = json!({ "data": {}, "result": { "code": -1, "message": self.message } });
        (self.status, Json(body)).into_response()
    }
}

/// The answer when a handler panicked: a plain 500 with no detail.
pub fn panic_response(_panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    error!("request handler panicked");
    ApiError::with_status(StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
}
