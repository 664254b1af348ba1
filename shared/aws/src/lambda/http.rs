//! The HTTP routes (API Gateway HTTP API, payload version 2.0), with the same responses as
//! `wxkf serve`: JSON error frames `{"data":{},"result":{"code":-1,…}}` on the
//! `send` route, plain `success` on `send_xml`, 4xx for every kind of bad input and 503 when
//! the hub could not store a message (so that WeChat retries).

use lambda_http::http::{header, Method, StatusCode};
use lambda_http::{Body, Request, RequestExt, Response};
use serde_json::json;
use tracing::{debug, error, info, warn};
use wxkf_core::hub::{HubError, Received};
use wxkf_core::message::InboundKind;
use wxkf_core::token::ApiKeys;
use wxkf_core::upstream;
use wxkf_core::wechat::{self, Parsed, PushQuery, WechatError};

use super::Runtime;
use wxkf_core::error_chain;

/// Handles `POST …/send` and `GET|POST …/send_xml` for one runtime.
#[derive(Clone)]
pub struct HttpHandler {
    runtime: Runtime,
    api_keys: ApiKeys,
}

/// A rejected request: its status and the message returned to the caller.
#[derive(Debug)]
struct Rejection {
    status: StatusCode,
    message: String,
}

impl Rejection {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    fn into_response(self) -> Response<Body> {
        if self.status.is_client_error() {
            warn!(status = self.status.as_u16(), reason = %self.message, "request rejected");
        }
        let body = json!({ "data": {}, "result": { "code": -1, "message": self.message } });
        json_response(self.status, body.to_string())
    }
}

impl From<HubError> for Rejection {
    fn from(failure: HubError) -> Self {
        error!(error = %error_chain(&failure), "request failed inside the hub");
        Rejection::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the hub could not store the message; retry later",
        )
    }
}

impl HttpHandler {
    pub fn new(runtime: Runtime) -> Self {
        let api_keys = ApiKeys::new(&runtime.config.api_keys);
        Self { runtime, api_keys }
    }

    /// `POST …/send`: a message from an upstream system, as JSON, with a Bearer API key.
    pub async fn send(&self, request: Request) -> Response<Body> {
        self.try_send(request)
            .await
            .unwrap_or_else(Rejection::into_response)
    }

    /// `GET …/send_xml` verifies the URL for WeChat; `POST …/send_xml` takes a message.
    pub async fn send_xml(&self, request: Request) -> Response<Body> {
        let result = if request.method() == Method::GET {
            self.verify_url(&request)
        } else {
            self.receive_xml(request).await
        };
        result.unwrap_or_else(Rejection::into_response)
    }

    async fn try_send(&self, request: Request) -> Result<Response<Body>, Rejection> {
        let authorization = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok());
        if !self.api_keys.accepts_header(authorization) {
            return Err(Rejection::new(
                StatusCode::UNAUTHORIZED,
                "missing or unknown API key; send Authorization: Bearer API_KEY",
            ));
        }
        let body = self.body(&request)?;
        let inbound = upstream::parse_send(
            body,
            &self.runtime.config.directory,
            self.runtime.clock.now(),
        )
        .map_err(|reason| Rejection::new(StatusCode::BAD_REQUEST, reason.to_string()))?;
        let id = match &inbound.kind {
            InboundKind::Message { id, .. } => id.to_string(),
            InboundKind::Event(_) => String::new(),
        };

        let received = self.runtime.hub.receive(inbound).await?;
        let body = json!({
            "data": { "id": id, "status": outcome_name(&received) },
            "result": { "code": 0, "message": "ok" },
        });
        Ok(json_response(StatusCode::OK, body.to_string()))
    }

    fn verify_url(&self, request: &Request) -> Result<Response<Body>, Rejection> {
        let query = push_query(request);
        let echostr =
            wechat::verify_url(&query, &self.runtime.config.wechat).map_err(wechat_rejection)?;
        Ok(text_response(StatusCode::OK, echostr))
    }

    async fn receive_xml(&self, request: Request) -> Result<Response<Body>, Rejection> {
        let query = push_query(&request);
        let body = self.body(&request)?;
        let xml = wechat::open_body(&query, body, &self.runtime.config.wechat)
            .map_err(wechat_rejection)?;
        let parsed = wechat::parse_xml(&xml, &self.runtime.config.directory).map_err(|reason| {
            Rejection::new(
                StatusCode::BAD_REQUEST,
                format!("invalid message XML: {reason}"),
            )
        })?;

        match parsed {
            Parsed::Inbound(inbound) => {
                let received = self.runtime.hub.receive(inbound).await?;
                debug!(outcome = outcome_name(&received), "WeChat message handled");
            }
            Parsed::Ignored { msg_type, event } => {
                info!(%msg_type, event = event.as_deref().unwrap_or(""), "WeChat message type not forwarded");
            }
        }
        // `success` ends WeChat's retries; anything else in the body is shown to the user as
        // an error.
        Ok(text_response(StatusCode::OK, "success".to_owned()))
    }

    fn body<'a>(&self, request: &'a Request) -> Result<&'a [u8], Rejection> {
        let body: &[u8] = request.body().as_ref();
        let limit = self.runtime.config.body_limit_bytes;
        if body.len() > limit {
            return Err(Rejection::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("body exceeds the limit of {limit} bytes"),
            ));
        }
        Ok(body)
    }
}

fn push_query(request: &Request) -> PushQuery {
    let query = request.query_string_parameters();
    let get = |name: &str| query.first(name).map(str::to_owned);
    PushQuery {
        signature: get("signature"),
        timestamp: get("timestamp"),
        nonce: get("nonce"),
        echostr: get("echostr"),
        msg_signature: get("msg_signature"),
        encrypt_type: get("encrypt_type"),
    }
}

fn wechat_rejection(error: WechatError) -> Rejection {
    match error {
        WechatError::SignatureMismatch => {
            Rejection::new(StatusCode::UNAUTHORIZED, error.to_string())
        }
        other => Rejection::new(StatusCode::BAD_REQUEST, other.to_string()),
    }
}

fn outcome_name(received: &Received) -> &'static str {
    match received {
        Received::Delivered { .. } => "delivered",
        Received::Queued { .. } => "queued",
        Received::Duplicate => "duplicate",
        Received::Ignored => "ignored",
    }
}

fn json_response(status: StatusCode, body: String) -> Response<Body> {
    let mut response = Response::new(Body::Text(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    response
}

fn text_response(status: StatusCode, body: String) -> Response<Body> {
    let mut response = Response::new(Body::Text(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}
