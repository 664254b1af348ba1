//! The hub's use cases. Every entry point (the local server, each Lambda function) translates its
//! input, calls one method here, and translates the result back.
//!
//! - [`receive`]: a user's message or event → dedup, route, store, push.
//! - [`session`]: an agent's socket: connect, frames (heartbeat, ack, contacts), disconnect.
//! - [`routing`]: assignment to the least-loaded agent and the company queue.
//! - [`notices`]: the system frames agents see, with their Chinese texts.
//! - [`sweep`]: periodic work: lapsed windows and pruning.

mod delivery;
pub mod notices;
pub mod receive;
mod routing;
pub mod session;
pub mod sweep;

use std::sync::Arc;

use crate::config::HubSettings;
use crate::ids::ConnectionId;
use crate::ports::{Pusher, Store, StoreError};
use crate::time::Clock;

pub use receive::{frame_id, inbound_frame, Received};
pub use sweep::SweepReport;

/// A failure of a use case. Client mistakes are not errors here: they are answered in-band
/// (a code -1 frame) or rejected by the parsers before the hub is called.
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("connection {0} is not open")]
    UnknownConnection(ConnectionId),
    /// The user's assignment changed under every routing attempt; the caller answers with a
    /// retryable error so WeChat sends the message again.
    #[error("routing kept racing with assignment changes")]
    RoutingContended,
}

/// The hub: routing, delivery and agent sessions over a store and a pusher.
#[derive(Clone)]
pub struct Hub {
    store: Arc<dyn Store>,
    pusher: Arc<dyn Pusher>,
    clock: Arc<dyn Clock>,
    settings: HubSettings,
}

impl Hub {
    pub fn new(
        store: Arc<dyn Store>,
        pusher: Arc<dyn Pusher>,
        clock: Arc<dyn Clock>,
        settings: HubSettings,
    ) -> Self {
        Self {
            store,
            pusher,
            clock,
            settings,
        }
    }

    pub fn settings(&self) -> &HubSettings {
        &self.settings
    }
}

#[cfg(test)]
mod tests;
