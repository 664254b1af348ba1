//! The API Gateway pusher against a stand-in `@connections` endpoint on 127.0.0.1 that returns
//! the statuses API Gateway uses: 410 for a closed socket, 403 for an unknown id, 413 for an
//! oversize message, 429 for throttling.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::post;
use axum::Router;
use wxkf_aws::{clients, ApiGatewayPusher};
use wxkf_core::ids::ConnectionId;
use wxkf_core::ports::{PushError, Pusher};

/// What the stand-in endpoint received, and the statuses it returns per connection id.
#[derive(Default)]
struct Endpoint {
    statuses: HashMap<String, Vec<u16>>,
    received: Vec<(String, String)>,
}

type Shared = Arc<Mutex<Endpoint>>;

async fn post_to_connection(
    State(endpoint): State<Shared>,
    Path(id): Path<String>,
    body: String,
) -> StatusCode {
    let mut endpoint = endpoint.lock().unwrap();
    endpoint.received.push((id.clone(), body));
    let status = match endpoint.statuses.get_mut(&id) {
        Some(statuses) if !statuses.is_empty() => statuses.remove(0),
        _ => 200,
    };
    StatusCode::from_u16(status).unwrap()
}

/// Starts the endpoint and returns a pusher aimed at it.
async fn start(statuses: &[(&str, &[u16])]) -> (ApiGatewayPusher, Shared) {
    let endpoint = Shared::default();
    endpoint.lock().unwrap().statuses = statuses
        .iter()
        .map(|(id, list)| (id.to_string(), list.to_vec()))
        .collect();
    let app = Router::new()
        .route("/@connections/{id}", post(post_to_connection))
        .with_state(endpoint.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let config = clients::local_sdk_config(&format!("http://{address}")).await;
    let client = clients::management_client(&config, &format!("http://{address}"));
    let pusher = ApiGatewayPusher::new(client).with_first_retry_pause(Duration::from_millis(1));
    (pusher, endpoint)
}

fn id(text: &str) -> ConnectionId {
    ConnectionId::parse(text).unwrap()
}

#[tokio::test]
async fn push_sends_payload_to_raw_id() {
    let (pusher, endpoint) = start(&[]).await;

    pusher
        .push(&id("TWegAcC4EowCHnA="), "{\"a\":1}")
        .await
        .unwrap();

    let received = endpoint.lock().unwrap().received.clone();
    assert_eq!(
        received,
        vec![("TWegAcC4EowCHnA=".to_owned(), "{\"a\":1}".to_owned())],
        "the id arrives with its padding and the body unchanged"
    );
}

#[tokio::test]
async fn gone_and_forbidden_mean_gone() {
    let (pusher, endpoint) = start(&[("closed=", &[410]), ("unknown=", &[403])]).await;

    let closed = pusher.push(&id("closed="), "x").await;
    let unknown = pusher.push(&id("unknown="), "x").await;

    assert!(
        matches!(closed, Err(PushError::Gone)),
        "410 is Gone, got {closed:?}"
    );
    assert!(
        matches!(unknown, Err(PushError::Gone)),
        "403 is Gone, got {unknown:?}"
    );
    assert_eq!(
        endpoint.lock().unwrap().received.len(),
        2,
        "neither is retried"
    );
}

#[tokio::test]
async fn oversize_payload_is_not_retried() {
    let (pusher, endpoint) = start(&[("big=", &[413])]).await;

    let local = pusher.push(&id("big="), &"x".repeat(128 * 1024 + 1)).await;
    let remote = pusher.push(&id("big="), "small").await;

    assert!(
        matches!(local, Err(PushError::TooLarge(131_073))),
        "a payload over 128 KB is rejected before any request, got {local:?}"
    );
    assert!(
        matches!(remote, Err(PushError::TooLarge(5))),
        "413 is TooLarge, got {remote:?}"
    );
    assert_eq!(
        endpoint.lock().unwrap().received.len(),
        1,
        "only the small payload was sent, once"
    );
}

#[tokio::test]
async fn throttling_is_retried_then_succeeds() {
    let (pusher, endpoint) = start(&[("busy=", &[429, 429])]).await;

    let result = pusher.push(&id("busy="), "x").await;

    assert!(result.is_ok(), "the third attempt succeeds, got {result:?}");
    assert_eq!(
        endpoint.lock().unwrap().received.len(),
        3,
        "two throttled attempts and one success"
    );
}

#[tokio::test]
async fn throttling_gives_up_after_bound() {
    let (pusher, endpoint) = start(&[("busy=", &[429; 10])]).await;

    let result = pusher.push(&id("busy="), "x").await;

    assert!(
        matches!(result, Err(PushError::Failed(_))),
        "got {result:?}"
    );
    assert_eq!(
        endpoint.lock().unwrap().received.len(),
        wxkf_aws::pusher::PUSH_ATTEMPTS as usize,
        "the pusher stops after its bound"
    );
}
