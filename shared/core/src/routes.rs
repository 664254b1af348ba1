//! The HTTP routes' behaviour, the same for `wxkf serve` and the Lambda functions. Each adapter
//! reads the request, calls one method here, and writes the returned [`Answer`] back.
//!
//! Bad input gets a 4xx whose body is the protocol's error frame
//! `{"data":{},"result":{"code":-1,"message":"…"}}` naming the problem. A failure inside the hub
//! gets 503, so that WeChat and upstream callers retry; its details stay in the log.

use std::sync::Arc;

use serde_json::json;
use tracing::{debug, error, info, warn};

use crate::config::{AccountDirectory, Config, WechatSettings};
use crate::error_chain;
use crate::hub::{Hub, HubError, Received};
use crate::message::InboundKind;
use crate::time::Clock;
use crate::token::ApiKeys;
use crate::upstream;
use crate::wechat::{self, Parsed, PushQuery, WechatError};

pub const CONTENT_TYPE_JSON: &str = "application/json";
pub const CONTENT_TYPE_TEXT: &str = "text/plain; charset=utf-8";

/// The response to a route: status code, content type and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
}

impl Answer {
    /// Builds the error frame for a rejected request, logging client mistakes at `warn`.
    pub fn error(status: u16, message: impl Into<String>) -> Answer {
        let message = message.into();
        if (400..500).contains(&status) {
            warn!(status, reason = %message, "request rejected");
        }
        let body = json!({ "data": {}, "result": { "code": -1, "message": message } });
        Answer {
            status,
            content_type: CONTENT_TYPE_JSON,
            body: body.to_string(),
        }
    }

    fn text(body: String) -> Answer {
        Answer {
            status: 200,
            content_type: CONTENT_TYPE_TEXT,
            body,
        }
    }

    fn hub_failure(failure: &HubError) -> Answer {
        error!(error = %error_chain(failure), "request failed inside the hub");
        Answer::error(503, "the hub could not store the message; retry later")
    }
}

/// The `send` and `send_xml` routes over one hub.
#[derive(Clone)]
pub struct Routes {
    hub: Hub,
    clock: Arc<dyn Clock>,
    api_keys: ApiKeys,
    directory: AccountDirectory,
    wechat: WechatSettings,
    body_limit_bytes: usize,
}

impl Routes {
    /// Builds the routes; `api_keys` are the keys the `send` route accepts.
    pub fn new(hub: Hub, clock: Arc<dyn Clock>, config: &Config, api_keys: ApiKeys) -> Routes {
        Routes {
            hub,
            clock,
            api_keys,
            directory: config.directory.clone(),
            wechat: config.wechat.clone(),
            body_limit_bytes: config.body_limit_bytes,
        }
    }

    /// `POST …/send`: a message from an upstream system, as JSON, with `Authorization: Bearer
    /// API_KEY`. Answers `{"data":{"id":…,"status":…},"result":{"code":0,"message":"ok"}}`.
    pub async fn send(&self, authorization: Option<&str>, body: &[u8]) -> Answer {
        if !self.api_keys.accepts_header(authorization) {
            return Answer::error(
                401,
                "missing or unknown API key; send Authorization: Bearer API_KEY",
            );
        }
        if let Some(too_large) = self.check_size(body) {
            return too_large;
        }
        let inbound = match upstream::parse_send(body, &self.directory, self.clock.now()) {
            Ok(inbound) => inbound,
            Err(reason) => return Answer::error(400, reason.to_string()),
        };
        let id = match &inbound.kind {
            InboundKind::Message { id, .. } => id.to_string(),
            InboundKind::Event(_) => String::new(),
        };

        match self.hub.receive(inbound).await {
            Ok(received) => {
                let body = json!({
                    "data": { "id": id, "status": outcome_name(&received) },
                    "result": { "code": 0, "message": "ok" },
                });
                Answer {
                    status: 200,
                    content_type: CONTENT_TYPE_JSON,
                    body: body.to_string(),
                }
            }
            Err(failure) => Answer::hub_failure(&failure),
        }
    }

    /// `POST …/send_xml`: WeChat's message XML, plain or encrypted. Answers the plain body
    /// `success` once the message is stored, which also ends WeChat's retries; any other body
    /// is shown to the WeChat user as an error.
    pub async fn send_xml(&self, query: &PushQuery, body: &[u8]) -> Answer {
        if let Some(too_large) = self.check_size(body) {
            return too_large;
        }
        let xml = match wechat::open_body(query, body, &self.wechat) {
            Ok(xml) => xml,
            Err(reason) => return wechat_rejection(reason),
        };
        let parsed = match wechat::parse_xml(&xml, &self.directory) {
            Ok(parsed) => parsed,
            Err(reason) => return Answer::error(400, format!("invalid message XML: {reason}")),
        };

        match parsed {
            Parsed::Inbound(inbound) => match self.hub.receive(inbound).await {
                Ok(received) => debug!(outcome = outcome_name(&received), "WeChat message handled"),
                Err(failure) => return Answer::hub_failure(&failure),
            },
            Parsed::Ignored { msg_type, event } => {
                info!(%msg_type, event = event.as_deref().unwrap_or(""), "WeChat message type not forwarded");
            }
        }
        Answer::text("success".to_owned())
    }

    /// `GET …/send_xml`: WeChat's server verification; answers `echostr` when the signature is
    /// right.
    pub fn verify_url(&self, query: &PushQuery) -> Answer {
        match wechat::verify_url(query, &self.wechat) {
            Ok(echostr) => Answer::text(echostr),
            Err(reason) => wechat_rejection(reason),
        }
    }

    pub fn body_limit_bytes(&self) -> usize {
        self.body_limit_bytes
    }

    fn check_size(&self, body: &[u8]) -> Option<Answer> {
        (body.len() > self.body_limit_bytes).then(|| {
            Answer::error(
                413,
                format!("body exceeds the limit of {} bytes", self.body_limit_bytes),
            )
        })
    }
}

fn wechat_rejection(error: WechatError) -> Answer {
    match error {
        WechatError::SignatureMismatch => Answer::error(401, error.to_string()),
        other => Answer::error(400, other.to_string()),
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
