//! Turning wxkf-core's route answers and the server's own rejections (a bad token, an unreadable
//! body, a panic) into responses, in one place. Every error body is the protocol's error frame,
//! built by [`Answer::error`], which also logs client mistakes at `warn`.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use tracing::error;
use wxkf_core::routes::Answer;

/// A request the server rejects before wxkf-core's routes see it.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::with_status(StatusCode::BAD_REQUEST, message)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::with_status(StatusCode::UNAUTHORIZED, message)
    }

    pub fn with_status(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        answer_response(Answer::error(self.status.as_u16(), self.message))
    }
}

/// Writes a route's answer as an HTTP response.
pub fn answer_response(answer: Answer) -> Response {
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (
        status,
        [(header::CONTENT_TYPE, answer.content_type)],
        answer.body,
    )
        .into_response()
}

/// Returns a plain 500 with no detail when a handler panicked.
pub fn panic_response(_panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    error!("request handler panicked");
    ApiError::with_status(StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
}
