//! In-memory adapters: [`MemoryStore`], the reference implementation of the store ports, and
//! [`RecordingPusher`], a pusher that keeps what it was given. Tests of the hub use both, and
//! the conformance suite checks every other store adapter against what `MemoryStore` does.
//!
//! Every store method locks one mutex for its whole body, so each call is atomic with respect
//! to every other call, which is what the ports ask of assignment and deduplicated appends.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;

use crate::frame::Frame;
use crate::ids::{AgentId, CompanyId, ConnectionId, OpenId, Seq};
use crate::ports::{
    AgentLoad, AppendOutcome, AssignOutcome, Assignment, Connection, ConnectionStore, Contact,
    ContactStore, InboundRecord, PushError, Pusher, QueueOutcome, QueuedRecord, QueuedUser,
    StoreError, StreamCursor, StreamStore,
};
use crate::time::Timestamp;

/// A store that keeps everything in process memory and loses it on exit.
#[derive(Debug, Default)]
pub struct MemoryStore {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    connections: HashMap<ConnectionId, Connection>,
    contacts: HashMap<(CompanyId, OpenId), Contact>,
    streams: HashMap<AgentId, Stream>,
    /// Dedup keys with their expiry; a key blocks its message until `prune` removes it.
    dedup: HashMap<String, Timestamp>,
    /// Users waiting for an agent, keyed by company and user.
    queue: BTreeMap<(CompanyId, OpenId), Waiting>,
}

#[derive(Debug, Default)]
struct Stream {
    /// Frames by position, each already carrying its `seq`, with the time it was stored.
    frames: BTreeMap<Seq, (Frame, Timestamp)>,
    cursor: StreamCursor,
    /// When the agent last received a new contact.
    last_assigned_at: Option<Timestamp>,
}

#[derive(Debug)]
struct Waiting {
    name: String,
    avatar: String,
    since: Timestamp,
    /// Queued frames in arrival order.
    frames: Vec<Frame>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Store methods do not panic while holding the lock. If one did, its update may be half
        // done, so every later call fails loudly instead of reading that state.
        self.state
            .lock()
            .expect("memory store lock poisoned by an earlier panic")
    }
}

impl State {
    fn open_contacts(&self, agent: &AgentId, now: Timestamp) -> u32 {
        let open = self
            .contacts
            .values()
            .filter(|contact| &contact.agent == agent && contact.window_closes_at > now)
            .count();
        u32::try_from(open).unwrap_or(u32::MAX)
    }

    /// Gives the frame the agent's next position and stores it.
    fn append(&mut self, agent: &AgentId, frame: Frame, stored_at: Timestamp) -> (Seq, Frame) {
        let stream = self.streams.entry(agent.clone()).or_default();
        let seq = Seq(stream.cursor.last.0 + 1);
        let frame = frame.with_seq(seq);
        stream.cursor.last = seq;
        stream.frames.insert(seq, (frame.clone(), stored_at));
        (seq, frame)
    }
}

#[async_trait]
impl ConnectionStore for MemoryStore {
    async fn add_connection(&self, connection: &Connection) -> Result<(), StoreError> {
        self.state()
            .connections
            .insert(connection.id.clone(), connection.clone());
        Ok(())
    }

    async fn remove_connection(&self, id: &ConnectionId) -> Result<Option<Connection>, StoreError> {
        Ok(self.state().connections.remove(id))
    }

    async fn connection(
        &self,
        id: &ConnectionId,
        now: Timestamp,
    ) -> Result<Option<Connection>, StoreError> {
        let state = self.state();
        let connection = state.connections.get(id);
        Ok(connection.filter(|c| c.expires_at > now).cloned())
    }

    async fn agent_connections(
        &self,
        agent: &AgentId,
        now: Timestamp,
    ) -> Result<Vec<Connection>, StoreError> {
        let state = self.state();
        let mut connections: Vec<Connection> = state
            .connections
            .values()
            .filter(|c| &c.agent == agent && c.expires_at > now)
            .cloned()
            .collect();
        connections.sort_by(|a, b| (a.connected_at, &a.id).cmp(&(b.connected_at, &b.id)));
        Ok(connections)
    }

    async fn mark_greeted(&self, id: &ConnectionId) -> Result<bool, StoreError> {
        let mut state = self.state();
        match state.connections.get_mut(id) {
            Some(connection) if !connection.greeted => {
                connection.greeted = true;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn online_agents(
        &self,
        company: &CompanyId,
        now: Timestamp,
    ) -> Result<Vec<AgentLoad>, StoreError> {
        let state = self.state();

        let mut first_connected: BTreeMap<&AgentId, Timestamp> = BTreeMap::new();
        for connection in state.connections.values() {
            if &connection.company != company || connection.expires_at <= now {
                continue;
            }
            let earliest = first_connected
                .entry(&connection.agent)
                .or_insert(connection.connected_at);
            *earliest = (*earliest).min(connection.connected_at);
        }

        let loads = first_connected
            .into_iter()
            .map(|(agent, connected_at)| {
                let last_assigned_at = state
                    .streams
                    .get(agent)
                    .and_then(|stream| stream.last_assigned_at);
                AgentLoad {
                    agent: agent.clone(),
                    contacts: state.open_contacts(agent, now),
                    idle_since: last_assigned_at.unwrap_or(connected_at),
                }
            })
            .collect();
        Ok(loads)
    }
}

#[async_trait]
impl ContactStore for MemoryStore {
    async fn contact(
        &self,
        company: &CompanyId,
        user: &OpenId,
    ) -> Result<Option<Contact>, StoreError> {
        let key = (company.clone(), user.clone());
        Ok(self.state().contacts.get(&key).cloned())
    }

    async fn try_assign(&self, assignment: Assignment) -> Result<AssignOutcome, StoreError> {
        let mut state = self.state();
        let key = (assignment.company.clone(), assignment.user.clone());

        if let Some(holder) = state.contacts.get(&key) {
            if holder.window_closes_at > assignment.now {
                return Ok(AssignOutcome::Taken(holder.clone()));
            }
        }
        if state.open_contacts(&assignment.agent, assignment.now) >= assignment.max_contacts {
            return Ok(AssignOutcome::AgentFull);
        }

        let contact = Contact {
            company: assignment.company,
            user: assignment.user,
            agent: assignment.agent.clone(),
            name: assignment.name,
            avatar: assignment.avatar,
            assigned_at: assignment.now,
            last_inbound_at: assignment.now,
            window_closes_at: assignment.window_closes_at,
        };
        state.contacts.insert(key.clone(), contact);
        state
            .streams
            .entry(assignment.agent.clone())
            .or_default()
            .last_assigned_at = Some(assignment.now);

        let mut frames = vec![state.append(&assignment.agent, assignment.notice, assignment.now)];
        if let Some(waiting) = state.queue.remove(&key) {
            for frame in waiting.frames {
                frames.push(state.append(&assignment.agent, frame, assignment.now));
            }
        }
        Ok(AssignOutcome::Assigned { frames })
    }

    async fn agent_contacts(
        &self,
        agent: &AgentId,
        now: Timestamp,
    ) -> Result<Vec<Contact>, StoreError> {
        let state = self.state();
        let mut contacts: Vec<Contact> = state
            .contacts
            .values()
            .filter(|c| &c.agent == agent && c.window_closes_at > now)
            .cloned()
            .collect();
        contacts.sort_by(|a, b| {
            b.last_inbound_at
                .cmp(&a.last_inbound_at)
                .then_with(|| a.user.cmp(&b.user))
        });
        Ok(contacts)
    }

    async fn release_contact(
        &self,
        company: &CompanyId,
        user: &OpenId,
        agent: &AgentId,
    ) -> Result<bool, StoreError> {
        let mut state = self.state();
        let key = (company.clone(), user.clone());
        match state.contacts.get(&key) {
            Some(contact) if &contact.agent == agent => {
                state.contacts.remove(&key);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn lapsed_contacts(
        &self,
        now: Timestamp,
        limit: usize,
    ) -> Result<Vec<Contact>, StoreError> {
        let state = self.state();
        let mut lapsed: Vec<Contact> = state
            .contacts
            .values()
            .filter(|c| c.window_closes_at <= now)
            .cloned()
            .collect();
        lapsed.sort_by(|a, b| {
            (a.window_closes_at, &a.company, &a.user).cmp(&(
                b.window_closes_at,
                &b.company,
                &b.user,
            ))
        });
        lapsed.truncate(limit);
        Ok(lapsed)
    }
}

#[async_trait]
impl StreamStore for MemoryStore {
    async fn append_inbound(&self, record: InboundRecord) -> Result<AppendOutcome, StoreError> {
        let mut state = self.state();

        if state.dedup.contains_key(record.dedup.as_str()) {
            return Ok(AppendOutcome::Duplicate);
        }

        if let Some(refresh) = record.refresh {
            let key = (record.company, record.user);
            // The window counts as open while it closes after the message that refreshes it.
            let contact = match state.contacts.get_mut(&key) {
                Some(contact)
                    if contact.agent == record.agent
                        && contact.window_closes_at > refresh.last_inbound_at =>
                {
                    contact
                }
                _ => return Ok(AppendOutcome::NotAssigned),
            };
            contact.last_inbound_at = refresh.last_inbound_at;
            contact.window_closes_at = refresh.window_closes_at;
            if let Some(name) = refresh.name {
                contact.name = name;
            }
            if let Some(avatar) = refresh.avatar {
                contact.avatar = avatar;
            }
        }

        state
            .dedup
            .insert(record.dedup.as_str().to_owned(), record.dedup_expires_at);
        let (seq, _) = state.append(&record.agent, record.frame, record.stored_at);
        Ok(AppendOutcome::Stored(seq))
    }

    async fn append_system(
        &self,
        agent: &AgentId,
        frame: &Frame,
        at: Timestamp,
    ) -> Result<Seq, StoreError> {
        let (seq, _) = self.state().append(agent, frame.clone(), at);
        Ok(seq)
    }

    async fn frames_after(
        &self,
        agent: &AgentId,
        after: Seq,
        limit: usize,
    ) -> Result<Vec<(Seq, Frame)>, StoreError> {
        let state = self.state();
        let Some(stream) = state.streams.get(agent) else {
            return Ok(Vec::new());
        };
        let frames = stream
            .frames
            .range(Seq(after.0.saturating_add(1))..)
            .take(limit)
            .map(|(seq, (frame, _))| (*seq, frame.clone()))
            .collect();
        Ok(frames)
    }

    async fn cursor(&self, agent: &AgentId) -> Result<StreamCursor, StoreError> {
        let state = self.state();
        Ok(state
            .streams
            .get(agent)
            .map(|stream| stream.cursor)
            .unwrap_or_default())
    }

    async fn ack(&self, agent: &AgentId, seq: Seq) -> Result<(), StoreError> {
        let mut state = self.state();
        if let Some(stream) = state.streams.get_mut(agent) {
            let cursor = &mut stream.cursor;
            cursor.acked = cursor.acked.max(seq.min(cursor.last));
        }
        Ok(())
    }

    async fn mark_delivered(&self, agent: &AgentId, seq: Seq) -> Result<(), StoreError> {
        let mut state = self.state();
        let cursor = &mut state.streams.entry(agent.clone()).or_default().cursor;
        cursor.delivered = cursor.delivered.max(seq);
        Ok(())
    }

    async fn enqueue(&self, record: QueuedRecord) -> Result<QueueOutcome, StoreError> {
        let mut state = self.state();

        if state.dedup.contains_key(record.dedup.as_str()) {
            return Ok(QueueOutcome::Duplicate);
        }
        state
            .dedup
            .insert(record.dedup.as_str().to_owned(), record.dedup_expires_at);

        let waiting = state
            .queue
            .entry((record.company, record.user))
            .or_insert_with(|| Waiting {
                name: String::new(),
                avatar: String::new(),
                since: record.at,
                frames: Vec::new(),
            });
        // A later message may know the profile that an earlier one lacked, but an empty value
        // never wipes a known one.
        if !record.name.is_empty() {
            waiting.name = record.name;
        }
        if !record.avatar.is_empty() {
            waiting.avatar = record.avatar;
        }
        waiting.since = waiting.since.min(record.at);
        waiting.frames.push(record.frame);
        Ok(QueueOutcome::Queued)
    }

    async fn queued_users(
        &self,
        company: &CompanyId,
        limit: usize,
    ) -> Result<Vec<QueuedUser>, StoreError> {
        let state = self.state();
        let mut users: Vec<QueuedUser> = state
            .queue
            .iter()
            .filter(|((waiting_company, _), _)| waiting_company == company)
            .map(|((_, user), waiting)| QueuedUser {
                user: user.clone(),
                name: waiting.name.clone(),
                avatar: waiting.avatar.clone(),
                since: waiting.since,
            })
            .collect();
        users.sort_by(|a, b| (a.since, &a.user).cmp(&(b.since, &b.user)));
        users.truncate(limit);
        Ok(users)
    }

    async fn prune(&self, now: Timestamp, frames_before: Timestamp) -> Result<u64, StoreError> {
        let mut state = self.state();

        let dedup_before = state.dedup.len();
        state.dedup.retain(|_, expires_at| *expires_at > now);
        let mut removed = dedup_before - state.dedup.len();

        for stream in state.streams.values_mut() {
            let frames_before_prune = stream.frames.len();
            stream
                .frames
                .retain(|_, (_, stored_at)| *stored_at >= frames_before);
            removed += frames_before_prune - stream.frames.len();
        }
        Ok(removed as u64)
    }
}

/// A pusher for tests. It records every payload per connection, in order, and returns
/// [`PushError::Gone`] for connections a test closed. Every other connection accepts pushes.
#[derive(Debug, Default)]
pub struct RecordingPusher {
    state: Mutex<PusherState>,
}

#[derive(Debug, Default)]
struct PusherState {
    sent: HashMap<ConnectionId, Vec<String>>,
    closed: HashSet<ConnectionId>,
}

impl RecordingPusher {
    pub fn new() -> Self {
        Self::default()
    }

    /// Returns the payloads pushed to the connection so far, oldest first.
    pub fn sent(&self, id: &ConnectionId) -> Vec<String> {
        self.state().sent.get(id).cloned().unwrap_or_default()
    }

    /// Returns the payloads pushed to the connection and clears them, so that a test can check
    /// only what a later step sends.
    pub fn take(&self, id: &ConnectionId) -> Vec<String> {
        self.state().sent.remove(id).unwrap_or_default()
    }

    /// Marks the connection's socket closed: later pushes to it fail with [`PushError::Gone`].
    pub fn close(&self, id: &ConnectionId) {
        self.state().closed.insert(id.clone());
    }

    fn state(&self) -> MutexGuard<'_, PusherState> {
        self.state
            .lock()
            .expect("recording pusher lock poisoned by an earlier panic")
    }
}

#[async_trait]
impl Pusher for RecordingPusher {
    async fn push(&self, connection: &ConnectionId, payload: &str) -> Result<(), PushError> {
        let mut state = self.state();
        if state.closed.contains(connection) {
            return Err(PushError::Gone);
        }
        state
            .sent
            .entry(connection.clone())
            .or_default()
            .push(payload.to_owned());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connection_id(text: &str) -> ConnectionId {
        ConnectionId::parse(text).expect("test connection id is valid")
    }

    #[tokio::test]
    async fn pusher_records_payloads_in_order() {
        let pusher = RecordingPusher::new();
        let first = connection_id("AAAAAAAAAAA=");
        let second = connection_id("BBBBBBBBBBB=");

        pusher
            .push(&first, "one")
            .await
            .expect("open socket accepts");
        pusher
            .push(&second, "other")
            .await
            .expect("open socket accepts");
        pusher
            .push(&first, "two")
            .await
            .expect("open socket accepts");

        assert_eq!(
            pusher.sent(&first),
            vec!["one", "two"],
            "pushes to the first socket"
        );
        assert_eq!(
            pusher.sent(&second),
            vec!["other"],
            "pushes to the second socket"
        );
    }

    #[tokio::test]
    async fn pusher_take_clears_payloads() {
        let pusher = RecordingPusher::new();
        let id = connection_id("AAAAAAAAAAA=");
        pusher.push(&id, "one").await.expect("open socket accepts");

        assert_eq!(
            pusher.take(&id),
            vec!["one"],
            "take returns what was pushed"
        );
        assert!(
            pusher.take(&id).is_empty(),
            "a second take finds nothing new"
        );
        assert!(pusher.sent(&id).is_empty(), "sent is empty after take");
    }

    #[tokio::test]
    async fn pusher_rejects_closed_connection() {
        let pusher = RecordingPusher::new();
        let id = connection_id("AAAAAAAAAAA=");
        pusher.close(&id);

        let outcome = pusher.push(&id, "lost").await;

        assert!(
            matches!(outcome, Err(PushError::Gone)),
            "expected Gone for a closed connection, got {outcome:?}"
        );
        assert!(
            pusher.sent(&id).is_empty(),
            "nothing is recorded for a closed connection"
        );
    }
}
