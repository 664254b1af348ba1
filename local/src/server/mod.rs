//! The local gateway: the HTTP routes, the agent WebSocket, and API Gateway's `@connections`
//! management endpoint, over one router.
//!
//! - [`routes`]: `send` (JSON), `send_xml` (WeChat XML, GET verification), `healthz`.
//! - [`socket`]: the agent WebSocket: token check before the upgrade, frames to the hub.
//! - [`gateway`]: the table of open sockets, the pusher the hub uses, and `@connections`.
//! - [`error`]: one error type, turned into a JSON response in one place.

pub mod error;
pub mod gateway;
pub mod routes;
pub mod socket;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::timeout::TimeoutLayer;
use wxkf_core::hub::Hub;
use wxkf_core::routes::Routes;
use wxkf_core::time::Clock;
use wxkf_core::token::TokenSigner;

use gateway::Gateway;

/// The path prefix all routes share.
pub const BASE_PATH: &str = "/im_component/wx_official_account";

/// How long an HTTP request may take, body included, before it is answered 408.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Everything a request handler needs.
#[derive(Clone)]
pub struct AppState {
    pub hub: Hub,
    pub gateway: Arc<Gateway>,
    pub signer: TokenSigner,
    pub routes: Routes,
    pub clock: Arc<dyn Clock>,
    pub body_limit_bytes: usize,
}

/// Builds the router with every route of the local hub.
pub fn router(state: AppState) -> Router {
    let http = Router::new()
        .route(&format!("{BASE_PATH}/send"), post(routes::send))
        .route(
            &format!("{BASE_PATH}/send_xml"),
            post(routes::send_xml).get(routes::verify_url),
        )
        .route("/healthz", get(routes::healthz))
        .route(
            "/@connections/{connection_id}",
            post(gateway::post_to_connection)
                .get(gateway::get_connection)
                .delete(gateway::delete_connection),
        )
        .layer(TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ))
        .layer(DefaultBodyLimit::max(state.body_limit_bytes));

    Router::new()
        .route(&format!("{BASE_PATH}/msg"), get(socket::upgrade))
        .merge(http)
        .layer(CatchPanicLayer::custom(error::panic_response))
        .with_state(state)
}
