//! The HTTP routes (API Gateway HTTP API, payload version 2.0). The behaviour is wxkf-core's
//! [`Routes`], the same as `wxkf serve`; this module only reads the request and writes the
//! answer.

use lambda_http::http::{header, Method, StatusCode};
use lambda_http::{Body, Request, RequestExt, Response};
use wxkf_core::routes::{Answer, Routes};
use wxkf_core::token::ApiKeys;
use wxkf_core::wechat::PushQuery;

use super::Runtime;

/// Handles `POST …/send` and `GET|POST …/send_xml` for one runtime.
#[derive(Clone)]
pub struct HttpHandler {
    routes: Routes,
}

impl HttpHandler {
    pub fn new(runtime: Runtime) -> Self {
        let api_keys = ApiKeys::new(&runtime.config.api_keys);
        let routes = Routes::new(runtime.hub, runtime.clock, &runtime.config, api_keys);
        Self { routes }
    }

    /// `POST …/send`: a message from an upstream system, as JSON, with a Bearer API key.
    pub async fn send(&self, request: Request) -> Response<Body> {
        let authorization = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok());
        let answer = self.routes.send(authorization, request.body()).await;
        response(answer)
    }

    /// `GET …/send_xml` verifies the URL for WeChat; `POST …/send_xml` takes a message.
    pub async fn send_xml(&self, request: Request) -> Response<Body> {
        let query = push_query(&request);
        let answer = if request.method() == Method::GET {
            self.routes.verify_url(&query)
        } else {
            self.routes.send_xml(&query, request.body()).await
        };
        response(answer)
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

fn response(answer: Answer) -> Response<Body> {
    let mut response = Response::new(Body::Text(answer.body));
    *response.status_mut() =
        StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(answer.content_type),
    );
    response
}
