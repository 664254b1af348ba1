//! wxkf: the local hub. `wxkf serve` runs the whole hub in one process: it plays API Gateway's
//! part (WebSocket and HTTP routes, the `@connections` endpoint), keeps state in SQLite and
//! calls wxkf-core for every decision.
//!
//! # Layout
//!
//! - [`server`]: the HTTP routes, the agent WebSocket and the local gateway's socket table.
//! - [`store`]: the SQLite store adapter.
//! - [`data_dir`]: the data folder: database file, token secret and generated API key.
//! - [`app`]: wiring: configuration, store, hub and background sweep into a running server.

pub mod app;
pub mod data_dir;
pub mod server;
pub mod store;
