//! Assignment: which agent serves a user.
//!
//! A user with no agent goes to an online agent of the same company with room (below
//! `max_contacts_per_agent`), the one with the fewest contacts, ties to the one idle longest.
//! With no such agent the user waits in the company queue, in arrival order, until an agent
//! connects or frees room.

use tracing::{debug, info};

use crate::ids::{CompanyId, OpenId};
use crate::ports::{AgentLoad, AssignOutcome, Assignment, Contact};
use crate::time::Timestamp;

use super::notices::{self, UserRef};
use super::{Hub, HubError};

/// The most users one queue drain assigns; the rest wait for the next trigger.
const DRAIN_BATCH: usize = 200;

impl Hub {
    /// Assigns the user to the best agent with room and pushes the notice (and any frames that
    /// waited in the queue). Returns the contact record of the agent now holding the user, or
    /// `None` when no agent has room.
    pub(crate) async fn assign(
        &self,
        company: &CompanyId,
        user: &OpenId,
        name: &str,
        avatar: &str,
    ) -> Result<Option<Contact>, HubError> {
        let now = self.clock.now();
        let max = self.settings.max_contacts_per_agent;
        let mut candidates: Vec<AgentLoad> = self
            .store
            .online_agents(company, now)
            .await?
            .into_iter()
            .filter(|load| load.contacts < max)
            .collect();
        candidates.sort_by(|a, b| {
            (a.contacts, a.idle_since, &a.agent).cmp(&(b.contacts, b.idle_since, &b.agent))
        });

        let window_closes_at = now.plus_secs(self.settings.window_secs);
        for candidate in candidates {
            let user_ref = UserRef { user, name, avatar };
            let assignment = Assignment {
                company: company.clone(),
                user: user.clone(),
                agent: candidate.agent.clone(),
                name: name.to_owned(),
                avatar: avatar.to_owned(),
                now,
                window_closes_at,
                max_contacts: max,
                notice: notices::contact_assigned(company, now, &user_ref),
            };
            match self.store.try_assign(assignment).await? {
                AssignOutcome::Assigned { frames } => {
                    info!(agent = %candidate.agent, %company, "contact assigned");
                    debug!(%user, agent = %candidate.agent, "contact assigned");
                    self.push_to_agent(&candidate.agent, &frames).await?;
                    return Ok(Some(Contact {
                        company: company.clone(),
                        user: user.clone(),
                        agent: candidate.agent,
                        name: name.to_owned(),
                        avatar: avatar.to_owned(),
                        assigned_at: now,
                        last_inbound_at: now,
                        window_closes_at,
                    }));
                }
                AssignOutcome::Taken(contact) => return Ok(Some(contact)),
                AssignOutcome::AgentFull => continue,
            }
        }
        Ok(None)
    }

    /// Assigns waiting users of the company, longest waiting first, while agents have room.
    pub(crate) async fn drain_queue(&self, company: &CompanyId) -> Result<usize, HubError> {
        let waiting = self.store.queued_users(company, DRAIN_BATCH).await?;
        let mut assigned = 0;
        for queued in waiting {
            match self
                .assign(company, &queued.user, &queued.name, &queued.avatar)
                .await?
            {
                Some(_) => assigned += 1,
                None => break,
            }
        }
        Ok(assigned)
    }

    pub(crate) fn window_closes_at(&self, last_inbound: Timestamp) -> Timestamp {
        last_inbound.plus_secs(self.settings.window_secs)
    }
}
