//! Lambda entry points: each function's `main` builds a [`Runtime`] once per cold start and
//! hands every event to one handler here. The handler translates the event into one hub call
//! and the outcome into the function's response (API Gateway's, for the routes). Keeping the
//! translation here lets tests feed captured events to the same code the functions run.
//!
//! - [`websocket`]: `$connect`, `$disconnect` and `$default` (heartbeat, ack, contacts).
//! - [`http`]: the JSON `send` route and WeChat's `send_xml` route.
//! - [`sweep`]: the scheduled sweep of lapsed contacts and old records.

pub mod http;
pub mod sweep;
pub mod websocket;

use std::sync::Arc;

use secrecy::SecretString;
use wxkf_core::config::{Config, ConfigError};
use wxkf_core::hub::Hub;
use wxkf_core::ports::{Pusher, Store};
use wxkf_core::time::{Clock, SystemClock};

use crate::clients;
use crate::settings::AwsSettings;
use crate::{ApiGatewayPusher, DynamoStore, TableConfig};

/// The clients and hub a function builds once per cold start and shares with every event.
#[derive(Clone)]
pub struct Runtime {
    pub hub: Hub,
    pub config: Config,
    pub clock: Arc<dyn Clock>,
}

/// The reason a function could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
}

impl Runtime {
    /// Assembles the hub over a store and a pusher; tests pass in-memory or moto-backed ones.
    pub fn new(
        config: Config,
        store: Arc<dyn Store>,
        pusher: Arc<dyn Pusher>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let hub = Hub::new(store, pusher, clock.clone(), config.hub.clone());
        Self { hub, config, clock }
    }

    /// Reads the configuration from the environment and builds the DynamoDB store and the API
    /// Gateway pusher on one shared HTTPS client.
    pub async fn from_env() -> Result<Self, StartError> {
        let lookup = |name: &str| std::env::var(name).ok();
        let config = Config::from_lookup(lookup)?;
        let aws = AwsSettings::from_lookup(lookup)?;
        let endpoint = aws.require_management_endpoint()?.to_owned();

        let sdk = clients::load_sdk_config().await;
        let store = DynamoStore::new(
            clients::dynamodb_client(&sdk),
            TableConfig::new(aws.table_name),
        );
        let pusher = ApiGatewayPusher::new(clients::management_client(&sdk, &endpoint));
        Ok(Self::new(
            config,
            Arc::new(store),
            Arc::new(pusher),
            Arc::new(SystemClock),
        ))
    }

    /// The token secret, which only `$connect` needs.
    pub fn token_secret(&self) -> Result<SecretString, ConfigError> {
        self.config
            .token_secret
            .clone()
            .ok_or(ConfigError::Missing {
                name: "WXKF_TOKEN_SECRET",
            })
    }
}

/// Installs the log subscriber: JSON-free text without ANSI colours or timestamps, since
/// CloudWatch adds its own, filtered by `RUST_LOG` (default `info`).
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .without_time()
        .with_target(false)
        .init();
}
