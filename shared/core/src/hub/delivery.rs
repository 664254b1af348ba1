//! Pushing stored frames to an agent's open sockets.

use futures_util::future::join_all;
use tracing::{debug, error, warn};

use crate::error_chain;
use crate::frame::Frame;
use crate::ids::{AgentId, ConnectionId, Seq};
use crate::ports::{Connection, PushError};

use super::{Hub, HubError};

impl Hub {
    /// Pushes frames, already stored, to every greeted socket of the agent. A socket that is
    /// gone is removed at once; the frames stay stored for the next connection. Returns how
    /// many sockets took every frame.
    pub(crate) async fn push_to_agent(
        &self,
        agent: &AgentId,
        frames: &[(Seq, Frame)],
    ) -> Result<usize, HubError> {
        let Some(last_seq) = frames.last().map(|(seq, _)| *seq) else {
            return Ok(0);
        };
        let now = self.clock.now();
        // An ungreeted socket gets these frames in its backlog on its first frame, because the
        // backlog is read after the socket is marked greeted.
        let sockets: Vec<Connection> = self
            .store
            .agent_connections(agent, now)
            .await?
            .into_iter()
            .filter(|connection| connection.greeted)
            .collect();
        if sockets.is_empty() {
            return Ok(0);
        }

        let payloads: Vec<String> = frames
            .iter()
            .map(|(seq, frame)| frame.to_json_with_seq(*seq))
            .collect();
        let outcomes = join_all(
            sockets
                .iter()
                .map(|socket| self.push_all(&socket.id, &payloads)),
        )
        .await;

        let mut reached = 0;
        for (socket, outcome) in sockets.iter().zip(outcomes) {
            match outcome {
                Ok(()) => reached += 1,
                Err(PushError::Gone) => {
                    debug!(connection = %socket.id, %agent, "socket gone; removing connection");
                    self.store.remove_connection(&socket.id).await?;
                }
                Err(error) => {
                    warn!(connection = %socket.id, %agent, error = %error_chain(&error), "push failed");
                }
            }
        }
        if reached > 0 {
            self.store.mark_delivered(agent, last_seq).await?;
        }
        Ok(reached)
    }

    async fn push_all(
        &self,
        connection: &ConnectionId,
        payloads: &[String],
    ) -> Result<(), PushError> {
        for payload in payloads {
            match self.pusher.push(connection, payload).await {
                Ok(()) => {}
                Err(PushError::TooLarge(size)) => {
                    // Retrying cannot shrink the frame; the agent still has it in the store.
                    error!(%connection, size, "frame exceeds the socket message limit; skipped");
                }
                Err(error) => return Err(error),
            }
        }
        Ok(())
    }

    /// Sends one unstored frame (a reply to the agent's own request) to one socket. A gone
    /// socket is removed; other failures are logged, as the agent can simply ask again.
    pub(crate) async fn reply(
        &self,
        connection: &ConnectionId,
        payload: &str,
    ) -> Result<(), HubError> {
        match self.pusher.push(connection, payload).await {
            Ok(()) => Ok(()),
            Err(PushError::Gone) => {
                self.store.remove_connection(connection).await?;
                Ok(())
            }
            Err(error) => {
                warn!(%connection, error = %error_chain(&error), "reply push failed");
                Ok(())
            }
        }
    }
}
