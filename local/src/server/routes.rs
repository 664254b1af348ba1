//! The HTTP routes. Each one parses with wxkf-core, calls the hub once, and answers.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use tracing::{debug, info};
use wxkf_core::hub::Received;
use wxkf_core::message::InboundKind;
use wxkf_core::upstream;
use wxkf_core::wechat::{self, Parsed, PushQuery, WechatError};

use super::error::ApiError;
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
) -> Result<Response, ApiError> {
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok());
    if !state.api_keys.accepts_header(authorization) {
        return Err(ApiError::unauthorized(
            "missing or unknown API key; send Authorization: Bearer API_KEY",
        ));
    }
    let body = read_body(body, state.body_limit_bytes)?;
    let inbound = upstream::parse_send(&body, &state.directory, state.clock.now())
        .map_err(|error| ApiError::bad_request(error.to_string()))?;
    let id = match &inbound.kind {
        InboundKind::Message { id, .. } => id.to_string(),
        InboundKind::Event(_) => String::new(),
    };

    let received = state.hub.receive(inbound).await?;
    let status = outcome_name(&received);
    Ok(Json(json!({
        "data": { "id": id, "status": status },
        "result": { "code": 0, "message": "ok" },
    }))
    .into_response())
}

/// `POST …/send_xml`: WeChat's message XML, plain or encrypted. Answered `success` once the
/// message is stored, which also ends WeChat's retries.
pub async fn send_xml(
    State(state): State<AppState>,
    Query(query): Query<PushQuery>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = read_body(body, state.body_limit_bytes)?;
    let xml = wechat::open_body(&query, &body, &state.wechat).map_err(wechat_error)?;
    let parsed = wechat::parse_xml(&xml, &state.directory)
        .map_err(|error| ApiError::bad_request(format!("invalid message XML: {error}")))?;

    match parsed {
        Parsed::Inbound(inbound) => {
            let received = state.hub.receive(inbound).await?;
            debug!(outcome = outcome_name(&received), "WeChat message handled");
        }
        Parsed::Ignored { msg_type, event } => {
            info!(%msg_type, event = event.as_deref().unwrap_or(""), "WeChat message type not forwarded");
        }
    }
    Ok(success())
}

/// `GET …/send_xml`: WeChat's server verification; echoes `echostr` when the signature is
/// right.
pub async fn verify_url(
    State(state): State<AppState>,
    Query(query): Query<PushQuery>,
) -> Result<Response, ApiError> {
    let echostr = wechat::verify_url(&query, &state.wechat).map_err(wechat_error)?;
    Ok((
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        echostr,
    )
        .into_response())
}

fn success() -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "success",
    )
        .into_response()
}

fn outcome_name(received: &Received) -> &'static str {
    match received {
        Received::Delivered { .. } => "delivered",
        Received::Queued { .. } => "queued",
        Received::Duplicate => "duplicate",
        Received::Ignored => "ignored",
    }
}

fn read_body(body: Result<Bytes, BytesRejection>, limit: usize) -> Result<Bytes, ApiError> {
    body.map_err(|rejection| match rejection.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::with_status(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("body exceeds the limit of {limit} bytes"),
        ),
        status => ApiError::with_status(status, format!("cannot read body: {rejection}")),
    })
}

fn wechat_error(error: WechatError) -> ApiError {
    match error {
        WechatError::SignatureMismatch => ApiError::unauthorized(error.to_string()),
        other => ApiError::bad_request(other.to_string()),
    }
}
