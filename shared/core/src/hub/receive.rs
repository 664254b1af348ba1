//! Receiving a user's message or event: deduplicate, route, store, then push.
//!
//! The store write comes first and the push second, so every message the route answered `200`
//! for is either on a socket or waiting in the agent's stream (or the company queue).

use tracing::{debug, info};

use crate::frame::Frame;
use crate::ids::{AgentId, MessageId};
use crate::message::{DedupKey, Inbound, InboundKind, UserEvent};
use crate::ports::{
    AppendOutcome, Contact, ContactRefresh, InboundRecord, QueueOutcome, QueuedRecord,
};
use crate::time::Timestamp;

use super::notices::{self, ReleaseReason, UserRef};
use super::{Hub, HubError};

/// Attempts at routing one message when assignments keep changing under it. Each retry
/// follows a concurrent release or reassignment, so three is plenty.
const ROUTE_ATTEMPTS: usize = 3;

/// The outcome of an inbound message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received {
    /// Stored in the agent's stream; `sockets` open sockets took it.
    Delivered {
        agent: AgentId,
        id: MessageId,
        sockets: usize,
    },
    /// No agent had room; the message waits in the company queue.
    Queued { id: MessageId },
    /// A retry of a message already taken; nothing was stored again.
    Duplicate,
    /// An event that does not open a conversation, about a user no agent serves.
    Ignored,
}

impl Hub {
    /// Routes one message or event from a WeChat user to the agent that serves them.
    pub async fn receive(&self, inbound: Inbound) -> Result<Received, HubError> {
        match &inbound.kind {
            InboundKind::Event(UserEvent::Unsubscribe) => self.receive_unsubscribe(&inbound).await,
            InboundKind::Event(event) if !event.opens_window() => {
                self.receive_passive_event(&inbound).await
            }
            _ => self.receive_conversation(&inbound).await,
        }
    }

    /// Routes a message or window-opening event to the user's agent, assigning one if needed.
    async fn receive_conversation(&self, inbound: &Inbound) -> Result<Received, HubError> {
        let now = self.clock.now();
        let dedup = DedupKey::for_inbound(inbound);
        let id = frame_id(inbound);

        for _ in 0..ROUTE_ATTEMPTS {
            let holder = match self.open_contact(inbound, now).await? {
                Some(contact) => contact,
                None => {
                    let (name, avatar) = profile_or_empty(inbound);
                    // Waiting users go first, so a newcomer never overtakes the queue.
                    self.drain_queue(&inbound.company).await?;
                    match self
                        .assign(&inbound.company, &inbound.user, name, avatar)
                        .await?
                    {
                        Some(contact) => contact,
                        None => match self.enqueue(inbound, &dedup, &id, now).await? {
                            QueueOutcome::Queued => {
                                info!(company = %inbound.company, "no agent has room; message queued");
                                return Ok(Received::Queued { id });
                            }
                            QueueOutcome::Duplicate => return Ok(Received::Duplicate),
                            QueueOutcome::Held(contact) => contact,
                        },
                    }
                }
            };

            let refresh = ContactRefresh {
                last_inbound_at: now,
                window_closes_at: self.window_closes_at(now),
                name: inbound.profile.name.clone(),
                avatar: inbound.profile.avatar.clone(),
            };
            match self
                .append(inbound, &dedup, &id, &holder, Some(refresh), now)
                .await?
            {
                Appended::Stored(sockets) => {
                    return Ok(Received::Delivered {
                        agent: holder.agent,
                        id,
                        sockets,
                    })
                }
                Appended::Duplicate => return Ok(Received::Duplicate),
                Appended::NotAssigned => continue,
            }
        }
        Err(HubError::RoutingContended)
    }

    /// Forwards an event that does not open the window (a location report, a link menu) to the
    /// user's agent if there is one, and drops it otherwise.
    async fn receive_passive_event(&self, inbound: &Inbound) -> Result<Received, HubError> {
        let now = self.clock.now();
        let Some(contact) = self.open_contact(inbound, now).await? else {
            debug!(user = %inbound.user, "event for a user without an agent; not forwarded");
            return Ok(Received::Ignored);
        };
        let dedup = DedupKey::for_inbound(inbound);
        let id = frame_id(inbound);
        Ok(
            match self
                .append(inbound, &dedup, &id, &contact, None, now)
                .await?
            {
                Appended::Stored(sockets) => Received::Delivered {
                    agent: contact.agent,
                    id,
                    sockets,
                },
                Appended::Duplicate => Received::Duplicate,
                Appended::NotAssigned => Received::Ignored,
            },
        )
    }

    /// Handles an unfollow: the agent gets the event, the contact leaves the list and the room
    /// goes to the queue.
    async fn receive_unsubscribe(&self, inbound: &Inbound) -> Result<Received, HubError> {
        let now = self.clock.now();
        let Some(contact) = self.store.contact(&inbound.company, &inbound.user).await? else {
            return Ok(Received::Ignored);
        };
        let dedup = DedupKey::for_inbound(inbound);
        let id = frame_id(inbound);
        let sockets = match self
            .append(inbound, &dedup, &id, &contact, None, now)
            .await?
        {
            Appended::Stored(sockets) => sockets,
            Appended::Duplicate => return Ok(Received::Duplicate),
            Appended::NotAssigned => return Ok(Received::Ignored),
        };
        self.release(&contact, ReleaseReason::Unsubscribed).await?;
        Ok(Received::Delivered {
            agent: contact.agent,
            id,
            sockets,
        })
    }

    /// Removes a contact from its agent's list, notifies the agent, and hands the room to the
    /// queue. Returns whether this call released it.
    pub(crate) async fn release(
        &self,
        contact: &Contact,
        reason: ReleaseReason,
    ) -> Result<bool, HubError> {
        let released = self
            .store
            .release_contact(&contact.company, &contact.user, &contact.agent)
            .await?;
        if !released {
            return Ok(false);
        }
        let user = UserRef {
            user: &contact.user,
            name: &contact.name,
            avatar: &contact.avatar,
        };
        let now = self.clock.now();
        let notice = notices::contact_released(&contact.company, now, &user, reason);
        let seq = self
            .store
            .append_system(&contact.agent, &notice, now)
            .await?;
        self.push_to_agent(&contact.agent, &[(seq, notice)]).await?;
        self.drain_queue(&contact.company).await?;
        Ok(true)
    }

    /// Returns the user's contact record if its window is still open.
    async fn open_contact(
        &self,
        inbound: &Inbound,
        now: Timestamp,
    ) -> Result<Option<Contact>, HubError> {
        Ok(self
            .store
            .contact(&inbound.company, &inbound.user)
            .await?
            .filter(|contact| contact.window_closes_at > now))
    }

    async fn enqueue(
        &self,
        inbound: &Inbound,
        dedup: &DedupKey,
        id: &MessageId,
        now: Timestamp,
    ) -> Result<QueueOutcome, HubError> {
        let (name, avatar) = profile_or_empty(inbound);
        let record = QueuedRecord {
            dedup: dedup.clone(),
            dedup_expires_at: now.plus_secs(self.settings.dedup_ttl_secs),
            company: inbound.company.clone(),
            user: inbound.user.clone(),
            name: name.to_owned(),
            avatar: avatar.to_owned(),
            at: now,
            frame: inbound_frame(inbound, id, name, avatar),
        };
        Ok(self.store.enqueue(record).await?)
    }

    /// Stores the frame in the holder's stream and pushes it. The frame shows the profile the
    /// message brought, else the one stored with the contact.
    async fn append(
        &self,
        inbound: &Inbound,
        dedup: &DedupKey,
        id: &MessageId,
        holder: &Contact,
        refresh: Option<ContactRefresh>,
        now: Timestamp,
    ) -> Result<Appended, HubError> {
        let name = inbound.profile.name.as_deref().unwrap_or(&holder.name);
        let avatar = inbound.profile.avatar.as_deref().unwrap_or(&holder.avatar);
        let frame = inbound_frame(inbound, id, name, avatar);
        let record = InboundRecord {
            dedup: dedup.clone(),
            dedup_expires_at: now.plus_secs(self.settings.dedup_ttl_secs),
            company: inbound.company.clone(),
            user: inbound.user.clone(),
            agent: holder.agent.clone(),
            frame: frame.clone(),
            stored_at: now,
            refresh,
        };
        match self.store.append_inbound(record).await? {
            AppendOutcome::Stored(seq) => {
                let sockets = self.push_to_agent(&holder.agent, &[(seq, frame)]).await?;
                Ok(Appended::Stored(sockets))
            }
            AppendOutcome::Duplicate => Ok(Appended::Duplicate),
            AppendOutcome::NotAssigned => Ok(Appended::NotAssigned),
        }
    }
}

enum Appended {
    Stored(usize),
    Duplicate,
    NotAssigned,
}

/// Builds the frame an agent receives for a user's message or event, with the nickname and
/// avatar to show.
pub fn inbound_frame(inbound: &Inbound, id: &MessageId, name: &str, avatar: &str) -> Frame {
    match &inbound.kind {
        InboundKind::Message { body, .. } => Frame::message(
            id,
            &inbound.company,
            &inbound.user,
            name,
            avatar,
            inbound.sent_at,
            body,
        ),
        InboundKind::Event(event) => {
            let user = UserRef {
                user: &inbound.user,
                name,
                avatar,
            };
            notices::user_event(id, &inbound.company, inbound.sent_at, &user, event)
        }
    }
}

/// Returns the frame id: a message keeps its own id, and an event, which has none, gets one
/// derived from its dedup key so that a retry carries the same id.
pub fn frame_id(inbound: &Inbound) -> MessageId {
    match &inbound.kind {
        InboundKind::Message { id, .. } => id.clone(),
        InboundKind::Event(_) => {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            let dedup = DedupKey::for_inbound(inbound);
            let hash = fnv1a_128(dedup.as_str().as_bytes());
            let mut id = String::with_capacity(34);
            id.push_str("ev");
            for shift in (0..32).rev() {
                id.push(char::from(HEX[((hash >> (shift * 4)) & 0xf) as usize]));
            }
            MessageId::parse(id).expect("\"ev\" and hex digits form a valid id")
        }
    }
}

/// FNV-1a with 128 bits: a stable, cheap hash for event ids, which need uniqueness across a
/// deployment but no resistance to deliberate collisions (a collision would only merge two
/// frame ids, never two dedup keys).
fn fnv1a_128(bytes: &[u8]) -> u128 {
    const OFFSET: u128 = 0x6c62272e07bb014262b821756295c58d;
    const PRIME: u128 = 0x0000000001000000000000000000013b;
    bytes.iter().fold(OFFSET, |hash, byte| {
        (hash ^ u128::from(*byte)).wrapping_mul(PRIME)
    })
}

fn profile_or_empty(inbound: &Inbound) -> (&str, &str) {
    (
        inbound.profile.name.as_deref().unwrap_or(""),
        inbound.profile.avatar.as_deref().unwrap_or(""),
    )
}
