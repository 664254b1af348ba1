//! The WebSocket routes. API Gateway calls `$connect` before the socket opens (a non-2xx
//! status rejects the handshake), `$disconnect` after it closed (best effort: it may never
//! come), and `$default` for every frame, since the route selection expression
//! `$request.body.action` matches no other route.

use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use aws_lambda_events::encodings::Body;
use tracing::{error, warn};
use wxkf_core::hub::HubError;
use wxkf_core::ids::{AgentId, ConnectionId, Seq};
use wxkf_core::token::TokenSigner;

use super::{Runtime, StartError};
use wxkf_core::error_chain;

/// Handles the three WebSocket routes for one runtime.
#[derive(Clone)]
pub struct WebSocketHandler {
    runtime: Runtime,
    /// Set for `$connect`, the only route that checks tokens.
    signer: Option<TokenSigner>,
}

impl WebSocketHandler {
    /// Builds the `$connect` handler, which needs `WXKF_TOKEN_SECRET`.
    pub fn for_connect(runtime: Runtime) -> Result<Self, StartError> {
        let signer = TokenSigner::new(runtime.token_secret()?);
        Ok(Self {
            runtime,
            signer: Some(signer),
        })
    }

    /// The `$disconnect` and `$default` handler.
    pub fn new(runtime: Runtime) -> Self {
        Self {
            runtime,
            signer: None,
        }
    }

    /// `$connect`: checks `userid` and `token` from the query string and records the
    /// connection. A bad token gets 401 and the socket never opens.
    pub async fn connect(&self, event: ApiGatewayWebsocketProxyRequest) -> ApiGatewayProxyResponse {
        let Some(id) = connection_id(&event) else {
            return response(400, "missing requestContext.connectionId");
        };
        let Some(signer) = &self.signer else {
            error!("$connect handler built without a token signer");
            return response(500, "internal error");
        };
        let query = &event.query_string_parameters;
        let userid = match AgentId::parse(query.first("userid").unwrap_or_default()) {
            Ok(userid) => userid,
            Err(reason) => return rejected(400, format!("userid is invalid: {reason}")),
        };
        let resume_after = match query.first("last_seq").map(str::parse::<u64>) {
            None => None,
            Some(Ok(seq)) => Some(Seq(seq)),
            Some(Err(_)) => {
                return rejected(400, "last_seq must be a non-negative integer".to_owned())
            }
        };
        let token = query.first("token").unwrap_or_default();
        let claims = match signer.verify(token, &userid, self.runtime.clock.now()) {
            Ok(claims) => claims,
            Err(reason) => return rejected(401, reason.to_string()),
        };

        match self.runtime.hub.connect(&claims, id, resume_after).await {
            Ok(()) => response(200, ""),
            Err(failure) => hub_failure(failure),
        }
    }

    /// `$disconnect`: removes exactly this connection id.
    pub async fn disconnect(
        &self,
        event: ApiGatewayWebsocketProxyRequest,
    ) -> ApiGatewayProxyResponse {
        let Some(id) = connection_id(&event) else {
            return response(400, "missing requestContext.connectionId");
        };
        match self.runtime.hub.disconnect(&id).await {
            Ok(()) => response(200, ""),
            Err(failure) => hub_failure(failure),
        }
    }

    /// `$default`: one agent frame. Replies (the heartbeat reply, a code -1 frame for a bad
    /// frame) go back through the management API, not in this response.
    pub async fn default(&self, event: ApiGatewayWebsocketProxyRequest) -> ApiGatewayProxyResponse {
        let Some(id) = connection_id(&event) else {
            return response(400, "missing requestContext.connectionId");
        };
        let text = event.body.as_deref().unwrap_or_default();
        match self.runtime.hub.handle_frame(&id, text).await {
            Ok(()) => response(200, ""),
            Err(HubError::UnknownConnection(id)) => {
                // The connection expired or was removed after a failed push; the client
                // reconnects when API Gateway closes the socket.
                warn!(connection = %id, "frame from a connection the store does not know");
                response(410, "connection is not open")
            }
            Err(failure) => hub_failure(failure),
        }
    }
}

fn connection_id(event: &ApiGatewayWebsocketProxyRequest) -> Option<ConnectionId> {
    let id = event.request_context.connection_id.as_deref()?;
    ConnectionId::parse(id).ok()
}

fn response(status: i64, body: &str) -> ApiGatewayProxyResponse {
    let mut response = ApiGatewayProxyResponse::default();
    response.status_code = status;
    if !body.is_empty() {
        response.body = Some(Body::Text(body.to_owned()));
    }
    response
}

fn rejected(status: i64, reason: String) -> ApiGatewayProxyResponse {
    warn!(status, %reason, "connection rejected");
    response(status, &reason)
}

fn hub_failure(failure: HubError) -> ApiGatewayProxyResponse {
    error!(error = %error_chain(&failure), "WebSocket route failed inside the hub");
    response(500, "internal error")
}
