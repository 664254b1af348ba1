//! The HTTP routes. Each one reads the request, calls wxkf-core's [`Routes`] once, and writes
//! the answer back.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use wxkf_core::routes::Routes;
use wxkf_core::wechat::PushQuery;

use super::error::{answer_response, ApiError};
use super::AppState;

/// `GET /healthz`: the process is up.
pub async fn healthz() -> &'static str {
    "ok"
}

/// `POST …/send`: a message from an upstream system, as JSON, with a Bearer API key.
pub async fn send(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok());
    let body = match read_body(body, &state.routes) {
        Ok(body) => body,
        Err(error) => return error.into_response(),
    };
    answer_response(state.routes.send(authorization, &body).await)
}

/// `POST …/send_xml`: WeChat's message XML, plain or encrypted.
pub async fn send_xml(
    State(state): State<AppState>,
    Query(query): Query<PushQuery>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match read_body(body, &state.routes) {
        Ok(body) => body,
        Err(error) => return error.into_response(),
    };
    answer_response(state.routes.send_xml(&query, &body).await)
}

/// `GET …/send_xml`: WeChat's server verification.
pub async fn verify_url(State(state): State<AppState>, Query(query): Query<PushQuery>) -> Response {
    answer_response(state.routes.verify_url(&query))
}

/// Maps a body that could not be read (over the limit, broken off) to an error frame.
fn read_body(body: Result<Bytes, BytesRejection>, routes: &Routes) -> Result<Bytes, ApiError> {
    body.map_err(|rejection| match rejection.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::with_status(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "body exceeds the limit of {} bytes",
                routes.body_limit_bytes()
            ),
        ),
        status => ApiError::with_status(status, format!("cannot read body: {rejection}")),
    })
}
