//! wxkf: the local hub, `wxkf serve`.
//!
//! # Layout
//!
//! - [`store`]: the SQLite store adapter.

pub mod store;
