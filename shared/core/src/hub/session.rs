//! An agent's socket: connect, frames, disconnect.
//!
//! Nothing can be pushed while API Gateway runs `$connect` (the socket opens only after it
//! returns), so a new connection is only recorded; its contact list and backlog go out on the
//! agent's first frame. Clients send a heartbeat right after connecting.

use tracing::{debug, info, warn};

use crate::frame::{error_frame, heartbeat_frame, AgentRequest};
use crate::ids::{ConnectionId, Seq};
use crate::ports::Connection;
use crate::token::AgentClaims;

use super::notices;
use super::{Hub, HubError};

/// Frames read from the store per page while sending a backlog.
const BACKLOG_PAGE: usize = 500;

impl Hub {
    /// Records a new socket of an authenticated agent. `resume_after` is the `last_seq` the
    /// client passed: its backlog then starts after that position.
    pub async fn connect(
        &self,
        claims: &AgentClaims,
        id: ConnectionId,
        resume_after: Option<Seq>,
    ) -> Result<(), HubError> {
        let now = self.clock.now();
        let connection = Connection {
            id,
            agent: claims.agent.clone(),
            company: claims.company.clone(),
            connected_at: now,
            expires_at: now.plus_secs(self.settings.connection_ttl_secs),
            resume_after,
            greeted: false,
        };
        self.store.add_connection(&connection).await?;
        info!(connection = %connection.id, agent = %connection.agent, "agent connected");
        Ok(())
    }

    /// Handles one text frame from an agent's socket. Answers go back through the pusher to
    /// the same socket; a malformed frame is answered with a code -1 frame and the socket
    /// stays open.
    pub async fn handle_frame(&self, id: &ConnectionId, text: &str) -> Result<(), HubError> {
        let now = self.clock.now();
        let connection = self
            .store
            .connection(id, now)
            .await?
            .ok_or_else(|| HubError::UnknownConnection(id.clone()))?;
        if !connection.greeted && self.store.mark_greeted(id).await? {
            self.greet(&connection).await?;
        }

        match AgentRequest::parse(text) {
            Ok(AgentRequest::Heartbeat) => self.reply(id, &heartbeat_frame()).await,
            Ok(AgentRequest::Ack { seq }) => {
                self.store.ack(&connection.agent, seq).await?;
                Ok(())
            }
            Ok(AgentRequest::Contacts) => self.send_contacts(&connection).await,
            Ok(AgentRequest::Send { .. }) => {
                self.reply(
                    id,
                    &error_frame("replies are not available yet in this version"),
                )
                .await
            }
            Err(error) => {
                warn!(connection = %id, agent = %connection.agent, %error, "agent frame rejected");
                self.reply(id, &error_frame(&error.to_string())).await
            }
        }
    }

    /// Forgets a socket. Only this connection id is removed, so a late disconnect of an old
    /// socket leaves the agent's newer ones alone. The agent's contacts stay assigned.
    pub async fn disconnect(&self, id: &ConnectionId) -> Result<(), HubError> {
        if let Some(connection) = self.store.remove_connection(id).await? {
            info!(connection = %id, agent = %connection.agent, "agent disconnected");
        }
        Ok(())
    }

    /// Sends the contact list, then every stored frame the socket has not seen, then lets the
    /// company queue use the agent's room.
    async fn greet(&self, connection: &Connection) -> Result<(), HubError> {
        self.send_contacts(connection).await?;

        let cursor = self.store.cursor(&connection.agent).await?;
        let mut after = connection
            .resume_after
            .unwrap_or(cursor.acked.max(cursor.delivered));
        let mut sent = 0usize;
        loop {
            let page = self
                .store
                .frames_after(&connection.agent, after, BACKLOG_PAGE)
                .await?;
            let Some((last, _)) = page.last() else {
                break;
            };
            after = *last;
            for (_, frame) in &page {
                self.reply(&connection.id, &frame.to_json()).await?;
            }
            sent += page.len();
            if page.len() < BACKLOG_PAGE {
                break;
            }
        }
        if sent > 0 {
            self.store.mark_delivered(&connection.agent, after).await?;
            debug!(connection = %connection.id, frames = sent, "backlog sent");
        }

        self.drain_queue(&connection.company).await?;
        Ok(())
    }

    async fn send_contacts(&self, connection: &Connection) -> Result<(), HubError> {
        let now = self.clock.now();
        let contacts = self.store.agent_contacts(&connection.agent, now).await?;
        let cursor = self.store.cursor(&connection.agent).await?;
        let frame = notices::contacts(&connection.company, now, &contacts, cursor.last);
        self.reply(&connection.id, &frame.to_json()).await
    }
}
