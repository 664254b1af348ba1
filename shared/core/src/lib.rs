//! wxkf-core: everything the wxkf hub does, independent of where it runs.
//!
//! # Layout
//!
//! - [`ids`], [`time`]: identifiers parsed at the edge, and the injected clock.
//! - [`message`]: a user's message or event after parsing, the same for both routes.
//! - [`wechat`]: WeChat's message XML, signatures and message encryption.
//! - [`upstream`]: the JSON `send` route's body.
//! - [`frame`]: the agent WebSocket protocol, frames out and requests in.
//! - [`token`]: signed agent tokens and API keys.
//! - [`ports`]: the store and pusher traits adapters implement.
//! - [`hub`]: the use cases: receive, connect, agent frames, disconnect, sweep.
//! - [`routes`]: the `send` and `send_xml` HTTP routes, shared by every entry point.
//! - [`memory`]: in-memory adapters, used in tests and as the reference store.
//! - [`config`]: typed configuration from `WXKF_…` variables.
//! - `conformance` (feature `test-support`): the suite every store adapter passes.

pub mod config;
pub mod frame;
pub mod hub;
pub mod ids;
pub mod memory;
pub mod message;
pub mod ports;
pub mod routes;
pub mod time;
pub mod token;
pub mod upstream;
pub mod wechat;

#[cfg(feature = "test-support")]
pub mod conformance;

/// Formats an error with its sources (`outer: inner: root`), for one log line at a boundary.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
