//! Ports: the traits the core uses to reach storage and sockets. Adapters implement them: the
//! in-memory ones in [`crate::memory`], SQLite in the `wxkf` crate, DynamoDB and API Gateway in
//! `wxkf-aws`. Every store adapter passes the same conformance suite ([`crate::conformance`],
//! behind the `test-support` feature).
//!
//! Store operations that must not interleave with a concurrent writer are single calls
//! (assignment, deduplicated append, connection removal): each adapter makes them atomic
//! (a SQLite transaction, a DynamoDB conditional or transactional write).

use async_trait::async_trait;

use crate::frame::Frame;
use crate::ids::{AgentId, CompanyId, ConnectionId, OpenId, Seq};
use crate::message::DedupKey;
use crate::time::Timestamp;

/// A store failure. Expected outcomes (a duplicate, a taken contact) are not errors: they are
/// variants of each method's result.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store is unavailable")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

impl StoreError {
    pub fn unavailable(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        StoreError::Unavailable(Box::new(error))
    }
}

/// An agent's open WebSocket connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    pub id: ConnectionId,
    pub agent: AgentId,
    pub company: CompanyId,
    pub connected_at: Timestamp,
    /// After this the connection is treated as gone even if no disconnect arrived (API Gateway
    /// closes sockets after 2 hours at most).
    pub expires_at: Timestamp,
    /// The `last_seq` the client passed on the socket URL, if any.
    pub resume_after: Option<Seq>,
    /// Whether the backlog and contact list went out on this connection (on its first frame).
    pub greeted: bool,
}

/// A user on an agent's contact list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contact {
    pub company: CompanyId,
    pub user: OpenId,
    pub agent: AgentId,
    /// Nickname and avatar URL, empty when never known.
    pub name: String,
    pub avatar: String,
    pub assigned_at: Timestamp,
    /// The user's last message or window-opening event.
    pub last_inbound_at: Timestamp,
    /// When the reply window closes; the assignment lapses then.
    pub window_closes_at: Timestamp,
}

/// An online agent with its current load, as assignment uses it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentLoad {
    pub agent: AgentId,
    /// Contacts whose window is still open.
    pub contacts: u32,
    /// When the agent last received a new contact; agents never assigned report the time they
    /// connected. Ties in load go to the earliest.
    pub idle_since: Timestamp,
}

/// A request to put a user on an agent's list.
#[derive(Debug, Clone)]
pub struct Assignment {
    pub company: CompanyId,
    pub user: OpenId,
    pub agent: AgentId,
    pub name: String,
    pub avatar: String,
    pub now: Timestamp,
    pub window_closes_at: Timestamp,
    /// The assignment fails with [`AssignOutcome::AgentFull`] if the agent already has this
    /// many contacts with an open window.
    pub max_contacts: u32,
    /// The `contact_assigned` system frame, appended to the agent's stream in the same
    /// atomic step.
    pub notice: Frame,
}

#[derive(Debug, Clone, PartialEq)]
pub enum AssignOutcome {
    /// The user is now the agent's contact. Frames that waited in the company queue for this
    /// user were moved to the agent's stream after the notice, in arrival order. `frames` contains
    /// the notice and those, with their new positions.
    Assigned { frames: Vec<(Seq, Frame)> },
    /// Another agent (or this one) already has the user as a contact with an open window.
    Taken(Contact),
    /// The agent has no room.
    AgentFull,
}

/// A user's message or event to append to an agent's stream.
#[derive(Debug, Clone)]
pub struct InboundRecord {
    pub dedup: DedupKey,
    pub dedup_expires_at: Timestamp,
    pub company: CompanyId,
    pub user: OpenId,
    pub agent: AgentId,
    pub frame: Frame,
    /// When the hub stores the frame; [`StreamStore::prune`] ages frames by this.
    pub stored_at: Timestamp,
    /// Set for messages and window-opening events: moves the contact's window forward. The
    /// append fails with [`AppendOutcome::NotAssigned`] unless the user is still this agent's
    /// contact.
    pub refresh: Option<ContactRefresh>,
}

/// New values for a contact on each inbound message.
#[derive(Debug, Clone)]
pub struct ContactRefresh {
    pub last_inbound_at: Timestamp,
    pub window_closes_at: Timestamp,
    /// Profile fields to overwrite; `None` keeps what is stored.
    pub name: Option<String>,
    pub avatar: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppendOutcome {
    Stored(Seq),
    /// The dedup key was seen before; nothing was written.
    Duplicate,
    /// The contact moved to another agent (or lapsed) between lookup and append; nothing was
    /// written, and the caller routes again.
    NotAssigned,
}

/// A user's message waiting in the company queue for an agent with room.
#[derive(Debug, Clone)]
pub struct QueuedRecord {
    pub dedup: DedupKey,
    pub dedup_expires_at: Timestamp,
    pub company: CompanyId,
    pub user: OpenId,
    pub name: String,
    pub avatar: String,
    /// Arrival time; also the `now` at which a held contact's window is judged open.
    pub at: Timestamp,
    pub frame: Frame,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueueOutcome {
    Queued,
    Duplicate,
    /// The user is already an agent's contact with a window open at `at` (an assignment won a
    /// race with this message); nothing was written and the caller appends to that agent.
    Held(Contact),
}

/// A user waiting in a company queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedUser {
    pub user: OpenId,
    pub name: String,
    pub avatar: String,
    /// When the user's first waiting message arrived; the queue is in this order.
    pub since: Timestamp,
}

/// How far an agent's stream has gone.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamCursor {
    /// The last position handed out, `Seq(0)` for an empty stream.
    pub last: Seq,
    /// The highest position an agent acknowledged.
    pub acked: Seq,
    /// The highest position that reached at least one open socket.
    pub delivered: Seq,
}

/// Connections of agents.
#[async_trait]
pub trait ConnectionStore: Send + Sync {
    /// Records a new connection. Connection ids are unique, so adding never replaces another
    /// connection of the same agent.
    async fn add_connection(&self, connection: &Connection) -> Result<(), StoreError>;

    /// Removes exactly this connection id and returns it; `None` when it was already gone. A
    /// late disconnect of an old connection therefore never touches a newer one.
    async fn remove_connection(&self, id: &ConnectionId) -> Result<Option<Connection>, StoreError>;

    /// Returns the connection unless it is unknown or expired at `now`.
    async fn connection(
        &self,
        id: &ConnectionId,
        now: Timestamp,
    ) -> Result<Option<Connection>, StoreError>;

    /// Returns the agent's connections that have not expired at `now`, oldest first.
    async fn agent_connections(
        &self,
        agent: &AgentId,
        now: Timestamp,
    ) -> Result<Vec<Connection>, StoreError>;

    /// Marks the connection greeted. Returns `true` only for the call that changed it, so two
    /// racing first frames send the backlog once.
    async fn mark_greeted(&self, id: &ConnectionId) -> Result<bool, StoreError>;

    /// Returns the agents of `company` with at least one unexpired connection, with their load
    /// at `now`.
    async fn online_agents(
        &self,
        company: &CompanyId,
        now: Timestamp,
    ) -> Result<Vec<AgentLoad>, StoreError>;
}

/// The user → agent map.
#[async_trait]
pub trait ContactStore: Send + Sync {
    /// Returns the user's contact record, even if its window has closed.
    async fn contact(
        &self,
        company: &CompanyId,
        user: &OpenId,
    ) -> Result<Option<Contact>, StoreError>;

    /// Assigns the user to the agent unless the user is already held with an open window or
    /// the agent is full; in one atomic step it also appends the notice and moves the user's
    /// queued frames to the agent's stream. Concurrent calls for one user end with one agent.
    async fn try_assign(&self, assignment: Assignment) -> Result<AssignOutcome, StoreError>;

    /// Returns the agent's contacts whose window is open at `now`, most recent inbound first.
    async fn agent_contacts(
        &self,
        agent: &AgentId,
        now: Timestamp,
    ) -> Result<Vec<Contact>, StoreError>;

    /// Removes the contact if it is still held by `agent`; returns whether it did.
    async fn release_contact(
        &self,
        company: &CompanyId,
        user: &OpenId,
        agent: &AgentId,
    ) -> Result<bool, StoreError>;

    /// Returns up to `limit` contacts whose window closed at or before `now`.
    async fn lapsed_contacts(
        &self,
        now: Timestamp,
        limit: usize,
    ) -> Result<Vec<Contact>, StoreError>;
}

/// Agents' frame streams, deduplication and the company queues.
#[async_trait]
pub trait StreamStore: Send + Sync {
    /// Appends a user's frame to the agent's stream unless its dedup key was seen; the dedup
    /// record, the frame and the contact refresh are written atomically.
    async fn append_inbound(&self, record: InboundRecord) -> Result<AppendOutcome, StoreError>;

    /// Appends a system frame to the agent's stream, stored at `at`.
    async fn append_system(
        &self,
        agent: &AgentId,
        frame: &Frame,
        at: Timestamp,
    ) -> Result<Seq, StoreError>;

    /// Returns up to `limit` frames after position `after`, in order, each carrying its `seq`.
    async fn frames_after(
        &self,
        agent: &AgentId,
        after: Seq,
        limit: usize,
    ) -> Result<Vec<(Seq, Frame)>, StoreError>;

    async fn cursor(&self, agent: &AgentId) -> Result<StreamCursor, StoreError>;

    /// Raises the acknowledged position to `seq` (never lowers it, never past `last`).
    async fn ack(&self, agent: &AgentId, seq: Seq) -> Result<(), StoreError>;

    /// Raises the delivered position to `seq` (never lowers it).
    async fn mark_delivered(&self, agent: &AgentId, seq: Seq) -> Result<(), StoreError>;

    /// Puts a frame in the company queue for the user unless its dedup key was seen or the user
    /// is held by an agent with an open window. The check and the write are one atomic step, so
    /// a frame never lands in the queue after [`ContactStore::try_assign`] emptied it.
    async fn enqueue(&self, record: QueuedRecord) -> Result<QueueOutcome, StoreError>;

    /// Returns up to `limit` waiting users of the company, longest waiting first.
    async fn queued_users(
        &self,
        company: &CompanyId,
        limit: usize,
    ) -> Result<Vec<QueuedUser>, StoreError>;

    /// Deletes dedup records that expired at or before `now` and stream frames stored before
    /// `frames_before` (by their storage time: the record's `stored_at`, the assignment's `now`
    /// for a notice and moved frames, `append_system`'s `at`); returns how many records went.
    async fn prune(&self, now: Timestamp, frames_before: Timestamp) -> Result<u64, StoreError>;
}

/// Everything the hub stores.
pub trait Store: ConnectionStore + ContactStore + StreamStore {}

impl<T: ConnectionStore + ContactStore + StreamStore> Store for T {}

/// Why a push did not reach the socket.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// The socket is closed (API Gateway returns 410 Gone), so the connection should be removed.
    #[error("connection is gone")]
    Gone,
    /// The payload exceeds the gateway's message limit; retrying cannot help.
    #[error("payload of {0} bytes exceeds the message limit")]
    TooLarge(usize),
    #[error("push failed")]
    Failed(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Sends text frames to open sockets (locally the gateway's socket table, on AWS the API
/// Gateway Management API).
#[async_trait]
pub trait Pusher: Send + Sync {
    async fn push(&self, connection: &ConnectionId, payload: &str) -> Result<(), PushError>;
}
