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
use wxkf_core::config::Config;
use wxkf_core::error_chain;
use wxkf_core::hub::Hub;
use wxkf_core::ports::Store;
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
    let store: Arc<dyn Store> = match options.store {
        StoreKind::Sqlite => {
            let path = data.database_path();
            Arc::new(
                SqliteStore::open(&path)
                    .with_context(|| format!("cannot open database {}", path.display()))?,
            )
        }
        StoreKind::Memory => Arc::new(wxkf_core::memory::MemoryStore::default()),
    };
    start_with_store(options.addr, &data, config, store).await
}

/// Starts serving on an already opened store.
pub async fn start_with_store(
    addr: SocketAddr,
    data: &DataDir,
    config: Config,
    store: Arc<dyn Store>,
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

    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let gateway = Arc::new(Gateway::default());
    let hub = Hub::new(
        store,
        Arc::new(GatewayPusher(gateway.clone())),
        clock.clone(),
        config.hub.clone(),
    );
    let state = AppState {
        hub: hub.clone(),
        gateway,
        signer: TokenSigner::new(secret),
        api_keys: ApiKeys::new(&api_keys),
        directory: config.directory.clone(),
        wechat: config.wechat.clone(),
        clock,
        body_limit_bytes: config.body_limit_bytes,
    };

    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    let addr = listener.local_addr()?;
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
