//! Wiring for `wxkf serve`: configuration, data folder, store, hub, the router on a listener,
//! and the background sweep. Tests start the same server in-process with [`start`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tracing::{error, info};
use wxkf_aws::settings::AwsSettings;
use wxkf_aws::{clients, create_table, ApiGatewayPusher, DynamoStore, TableConfig};
use wxkf_core::config::Config;
use wxkf_core::error_chain;
use wxkf_core::hub::Hub;
use wxkf_core::ports::{Pusher, Store};
use wxkf_core::routes::Routes;
use wxkf_core::time::{Clock, SystemClock};
use wxkf_core::token::{ApiKeys, TokenSigner};

use crate::data_dir::DataDir;
use crate::server::gateway::{Gateway, GatewayPusher};
use crate::server::{router, AppState};
use crate::store::SqliteStore;

/// How often lapsed contacts are released and old records pruned.
const SWEEP_INTERVAL: Duration = Duration::from_secs(60);

/// The storage backend of `wxkf serve`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StoreKind {
    /// SQLite in the data folder (default).
    Sqlite,
    /// Process memory; everything is lost on exit. For trials and benchmarks.
    Memory,
    /// DynamoDB, as on AWS, with pushes going through the API Gateway Management API client to
    /// this server's own `@connections` endpoint. The endpoint, region and credentials come from
    /// the SDK's standard variables (`AWS_ENDPOINT_URL_DYNAMODB`, `AWS_REGION`, …) and the
    /// table from `WXKF_TABLE`; the table is created when missing.
    Dynamodb,
}

#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub addr: SocketAddr,
    pub data_dir: PathBuf,
    pub store: StoreKind,
}

/// A server running in this process.
pub struct RunningServer {
    pub addr: SocketAddr,
    pub state: AppState,
    server: JoinHandle<()>,
    sweeper: JoinHandle<()>,
}

impl RunningServer {
    /// Waits until the server stops (it stops on Ctrl-C or SIGTERM).
    pub async fn wait(self) {
        let _ = self.server.await;
        self.sweeper.abort();
    }

    /// Stops the server at once; for tests.
    pub fn abort(&self) {
        self.server.abort();
        self.sweeper.abort();
    }
}

/// Opens the data folder and store, binds the listener and starts serving.
pub async fn start(options: ServeOptions, config: Config) -> anyhow::Result<RunningServer> {
    let data = DataDir::open(&options.data_dir)
        .with_context(|| format!("cannot open data folder {}", options.data_dir.display()))?;
    let (store, push_via): (Arc<dyn Store>, PushVia) = match options.store {
        StoreKind::Sqlite => {
            let path = data.database_path();
            let store = SqliteStore::open(&path)
                .with_context(|| format!("cannot open database {}", path.display()))?;
            (Arc::new(store), PushVia::Gateway)
        }
        StoreKind::Memory => (
            Arc::new(wxkf_core::memory::MemoryStore::default()),
            PushVia::Gateway,
        ),
        StoreKind::Dynamodb => {
            let settings = AwsSettings::from_lookup(|name| std::env::var(name).ok())
                .context("invalid AWS configuration")?;
            let sdk = clients::load_sdk_config().await;
            let client = clients::dynamodb_client(&sdk);
            let table = TableConfig::new(settings.table_name.clone());
            create_table(&client, &table)
                .await
                .with_context(|| format!("cannot create or open table {}", settings.table_name))?;
            (
                Arc::new(DynamoStore::new(client, table)),
                PushVia::ManagementApi(Box::new(sdk)),
            )
        }
    };
    start_with_store(options.addr, &data, config, store, push_via).await
}

/// How the hub reaches the sockets.
pub enum PushVia {
    /// Straight into this process's socket table.
    Gateway,
    /// Through the API Gateway Management API client, aimed at this server's `@connections`
    /// endpoint, exactly as the Lambda functions push on AWS.
    ManagementApi(Box<aws_config::SdkConfig>),
}

/// Starts serving on an already opened store.
pub async fn start_with_store(
    addr: SocketAddr,
    data: &DataDir,
    config: Config,
    store: Arc<dyn Store>,
    push_via: PushVia,
) -> anyhow::Result<RunningServer> {
    let secret = match config.token_secret.clone() {
        Some(secret) => secret,
        None => data.token_secret()?,
    };
    let api_keys = if config.api_keys.is_empty() {
        vec![data.api_key()?]
    } else {
        config.api_keys.clone()
    };

    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    let addr = listener.local_addr()?;

    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let gateway = Arc::new(Gateway::default());
    let pusher: Arc<dyn Pusher> = match push_via {
        PushVia::Gateway => Arc::new(GatewayPusher(gateway.clone())),
        PushVia::ManagementApi(sdk) => Arc::new(ApiGatewayPusher::new(clients::management_client(
            &sdk,
            &format!("http://{addr}"),
        ))),
    };
    let hub = Hub::new(store, pusher, clock.clone(), config.hub.clone());
    let state = AppState {
        hub: hub.clone(),
        gateway,
        signer: TokenSigner::new(secret),
        routes: Routes::new(hub.clone(), clock.clone(), &config, ApiKeys::new(&api_keys)),
        clock,
        body_limit_bytes: config.body_limit_bytes,
    };

    let app = router(state.clone()).into_make_service_with_connect_info::<SocketAddr>();
    let server = tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown_signal())
            .await
        {
            error!(%error, "server stopped with an error");
        }
        info!("server stopped");
    });
    let sweeper = tokio::spawn(sweep_forever(hub));
    info!(%addr, "wxkf listening");

    Ok(RunningServer {
        addr,
        state,
        server,
        sweeper,
    })
}

async fn sweep_forever(hub: Hub) {
    let mut ticker = tokio::time::interval(SWEEP_INTERVAL);
    loop {
        ticker.tick().await;
        if let Err(error) = hub.sweep().await {
            error!(error = %error_chain(&error), "sweep failed");
        }
    }
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .expect("installing a SIGTERM handler succeeds on Unix");
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
    info!("shutting down");
}
