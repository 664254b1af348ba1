//! The user → agent map: a primary item per (company, user) that decides who holds the user,
//! and a copy in the holder's partition so that an agent's contacts are counted and listed with
//! one strongly consistent query. Both are written in the same transaction.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{ConditionCheck, Delete, TransactWriteItem, Update};
use futures_util::future::try_join_all;
use wxkf_core::frame::Frame;
use wxkf_core::ids::{AgentId, CompanyId, OpenId, Seq};
use wxkf_core::ports::{AssignOutcome, Assignment, Contact, ContactStore, StoreError};
use wxkf_core::time::Timestamp;

use super::items::{
    agent_contact_item, agent_contact_sk, agent_pk, company_pk, contact_from_item, contact_item,
    contact_pk, frame_item, key, n, parse_frame, presence_sk, queue_frames_prefix, queue_head_sk,
    queue_pk, s, time_sort_key, Fields, Item, TimeKind, CONTACT_SK, GSI1, GSI1_PK, GSI1_SK,
    TIME_SHARDS,
};
use super::{
    back_off, build_error, contended, transact_until_settled, DynamoStore, TransactionFailure,
    TRANSACTION_ATTEMPTS,
};

/// Waiting frames moved in the assignment's own transaction. DynamoDB allows 100 items per
/// transaction; the assignment uses up to 7 for itself and 2 per moved frame.
const FRAMES_MOVED_WITH_ASSIGNMENT: usize = 46;

/// Waiting frames moved per follow-up transaction (1 item for the stream counter, 2 per frame).
const FRAMES_MOVED_PER_FOLLOW_UP: usize = 49;

/// A frame waiting in the company queue, as read back.
struct Waiting {
    key: Item,
    frame: Frame,
}

fn waiting_from_item(item: &Item) -> Result<Waiting, StoreError> {
    let fields = Fields(item);
    Ok(Waiting {
        key: key(fields.string("pk")?, fields.string("sk")?),
        frame: parse_frame(&fields.string("frame")?)?,
    })
}

impl DynamoStore {
    async fn contact_item(
        &self,
        company: &CompanyId,
        user: &OpenId,
    ) -> Result<Option<Contact>, StoreError> {
        let item = self.get(key(contact_pk(company, user), CONTACT_SK)).await?;
        item.as_ref().map(contact_from_item).transpose()
    }

    /// A delete in a transaction; with `held_by`, only if the item names that agent.
    fn delete(
        &self,
        key: Item,
        held_by: Option<&AgentId>,
    ) -> Result<TransactWriteItem, StoreError> {
        let mut delete = Delete::builder().table_name(&self.table).set_key(Some(key));
        if let Some(agent) = held_by {
            delete = delete
                .condition_expression("#agent = :agent")
                .expression_attribute_names("#agent", "agent")
                .expression_attribute_values(":agent", s(agent.as_str()));
        }
        Ok(TransactWriteItem::builder()
            .delete(delete.build().map_err(build_error)?)
            .build())
    }

    /// Moves waiting frames to the agent's stream after the assignment committed, in
    /// transactions of [`FRAMES_MOVED_PER_FOLLOW_UP`]. Only users with more waiting frames than
    /// one transaction holds get here.
    async fn move_remaining(
        &self,
        agent: &AgentId,
        remaining: &[Waiting],
        stored_at: Timestamp,
        moved: &mut Vec<(Seq, Frame)>,
    ) -> Result<(), StoreError> {
        for chunk in remaining.chunks(FRAMES_MOVED_PER_FOLLOW_UP) {
            let mut attempt = 0;
            loop {
                attempt += 1;
                if attempt > TRANSACTION_ATTEMPTS {
                    return Err(contended("moving waiting frames"));
                }
                let previous = self.read_cursor(agent).await?.last;
                let mut writes = Vec::with_capacity(1 + 2 * chunk.len());
                let mut frames = Vec::with_capacity(chunk.len());
                for (offset, waiting) in chunk.iter().enumerate() {
                    let seq = Seq(previous.0 + 1 + offset as u64);
                    writes.push(self.put(frame_item(agent, seq, &waiting.frame, stored_at), None)?);
                    writes.push(self.delete(waiting.key.clone(), None)?);
                    frames.push((seq, waiting.frame.clone().with_seq(seq)));
                }
                let last = Seq(previous.0 + chunk.len() as u64);
                writes.push(self.advance_stream(agent, previous, last)?);
                match self.transact(writes).await {
                    Ok(()) => {
                        moved.extend(frames);
                        break;
                    }
                    Err(TransactionFailure::Conditions(_)) | Err(TransactionFailure::Conflict) => {
                        back_off(attempt).await
                    }
                    Err(TransactionFailure::Store(error)) => return Err(error),
                }
            }
        }
        Ok(())
    }
}

#[async_trait]
impl ContactStore for DynamoStore {
    async fn contact(
        &self,
        company: &CompanyId,
        user: &OpenId,
    ) -> Result<Option<Contact>, StoreError> {
        self.contact_item(company, user).await
    }

    async fn try_assign(&self, assignment: Assignment) -> Result<AssignOutcome, StoreError> {
        let Assignment {
            company,
            user,
            agent,
            name,
            avatar,
            now,
            window_closes_at,
            max_contacts,
            notice,
        } = assignment;
        let contact = Contact {
            company: company.clone(),
            user: user.clone(),
            agent: agent.clone(),
            name,
            avatar,
            assigned_at: now,
            last_inbound_at: now,
            window_closes_at,
        };
        let queue = queue_pk(&company);
        let head_key = key(queue.clone(), queue_head_sk(&user));

        for attempt in 1..=TRANSACTION_ATTEMPTS {
            // Read everything the decision depends on; the transaction's conditions fail if any
            // of it changed before the commit. The stream counter is read before the contact
            // count, so an assignment committed in between moves the counter and fails ours.
            let existing = self.contact_item(&company, &user).await?;
            if let Some(held) = existing.as_ref().filter(|held| held.window_closes_at > now) {
                return Ok(AssignOutcome::Taken(held.clone()));
            }
            let previous = self.read_cursor(&agent).await?.last;
            let open_contacts = self
                .agent_contacts(&agent, now)
                .await?
                .iter()
                .filter(|held| held.user != user || held.company != company)
                .count();
            if open_contacts >= max_contacts as usize {
                return Ok(AssignOutcome::AgentFull);
            }
            let head = self.get(head_key.clone()).await?;
            let head_version = head
                .as_ref()
                .map(|item| Fields(item).number("version"))
                .transpose()?;
            let waiting = self
                .query_prefix(queue.clone(), &queue_frames_prefix(&user))
                .await?
                .iter()
                .map(waiting_from_item)
                .collect::<Result<Vec<_>, _>>()?;
            let (now_moved, later) =
                waiting.split_at(waiting.len().min(FRAMES_MOVED_WITH_ASSIGNMENT));

            let mut writes = Vec::new();
            let contact_write = match &existing {
                // The lapsed hold is replaced only as it was read.
                Some(old) => {
                    let put = aws_sdk_dynamodb::types::Put::builder()
                        .table_name(&self.table)
                        .set_item(Some(contact_item(&contact)))
                        .condition_expression(
                            "#agent = :old_agent AND window_closes_at = :old_closes",
                        )
                        .expression_attribute_names("#agent", "agent")
                        .expression_attribute_values(":old_agent", s(old.agent.as_str()))
                        .expression_attribute_values(":old_closes", n(old.window_closes_at.0))
                        .build()
                        .map_err(build_error)?;
                    TransactWriteItem::builder().put(put).build()
                }
                None => self.put(contact_item(&contact), Some("attribute_not_exists(pk)"))?,
            };
            writes.push(contact_write);
            writes.push(self.put(agent_contact_item(&contact), None)?);
            if let Some(old) = existing.as_ref().filter(|old| old.agent != agent) {
                writes.push(self.delete(
                    key(agent_pk(&old.agent), agent_contact_sk(&company, &user)),
                    None,
                )?);
            }

            let notice_seq = Seq(previous.0 + 1);
            let mut frames = vec![(notice_seq, notice.clone().with_seq(notice_seq))];
            writes.push(self.put(frame_item(&agent, notice_seq, &notice, now), None)?);
            for (offset, moved) in now_moved.iter().enumerate() {
                let seq = Seq(notice_seq.0 + 1 + offset as u64);
                writes.push(self.put(frame_item(&agent, seq, &moved.frame, now), None)?);
                writes.push(self.delete(moved.key.clone(), None)?);
                frames.push((seq, moved.frame.clone().with_seq(seq)));
            }
            let last = Seq(notice_seq.0 + now_moved.len() as u64);
            writes.push(self.advance_stream(&agent, previous, last)?);

            let presence = Update::builder()
                .table_name(&self.table)
                .set_key(Some(key(company_pk(&company), presence_sk(&agent))))
                .update_expression("SET last_assigned_at = :now, #agent = :agent")
                .expression_attribute_names("#agent", "agent")
                .expression_attribute_values(":now", n(now.0))
                .expression_attribute_values(":agent", s(agent.as_str()))
                .build()
                .map_err(build_error)?;
            writes.push(TransactWriteItem::builder().update(presence).build());

            let head_write = match head_version {
                Some(version) => {
                    let delete = Delete::builder()
                        .table_name(&self.table)
                        .set_key(Some(head_key.clone()))
                        .condition_expression("#version = :version")
                        .expression_attribute_names("#version", "version")
                        .expression_attribute_values(":version", n(version))
                        .build()
                        .map_err(build_error)?;
                    TransactWriteItem::builder().delete(delete).build()
                }
                None => {
                    let check = ConditionCheck::builder()
                        .table_name(&self.table)
                        .set_key(Some(head_key.clone()))
                        .condition_expression("attribute_not_exists(pk)")
                        .build()
                        .map_err(build_error)?;
                    TransactWriteItem::builder().condition_check(check).build()
                }
            };
            writes.push(head_write);

            // Any failed condition means the state read above changed: read it again. The
            // contact check at the top then reports a winner as `Taken`.
            match self.transact(writes).await {
                Ok(()) => {
                    // NOTE: frames beyond the first transaction are moved right after it, so a
                    // message that arrives in between may land before them in the stream.
                    self.move_remaining(&agent, later, now, &mut frames).await?;
                    return Ok(AssignOutcome::Assigned { frames });
                }
                Err(TransactionFailure::Conditions(_)) | Err(TransactionFailure::Conflict) => {
                    back_off(attempt).await
                }
                Err(TransactionFailure::Store(error)) => return Err(error),
            }
        }
        Err(contended("assigning a contact"))
    }

    async fn agent_contacts(
        &self,
        agent: &AgentId,
        now: Timestamp,
    ) -> Result<Vec<Contact>, StoreError> {
        let items = self.query_prefix(agent_pk(agent), "CT#").await?;
        let mut contacts = Vec::with_capacity(items.len());
        for item in &items {
            let contact = contact_from_item(item)?;
            if contact.window_closes_at > now {
                contacts.push(contact);
            }
        }
        contacts.sort_by(|a, b| {
            (b.last_inbound_at, &a.company, &a.user).cmp(&(a.last_inbound_at, &b.company, &b.user))
        });
        Ok(contacts)
    }

    async fn release_contact(
        &self,
        company: &CompanyId,
        user: &OpenId,
        agent: &AgentId,
    ) -> Result<bool, StoreError> {
        let build = || {
            Ok(vec![
                self.delete(key(contact_pk(company, user), CONTACT_SK), Some(agent))?,
                self.delete(key(agent_pk(agent), agent_contact_sk(company, user)), None)?,
            ])
        };
        Ok(transact_until_settled(self, "releasing a contact", build)
            .await?
            .is_ok())
    }

    async fn lapsed_contacts(
        &self,
        now: Timestamp,
        limit: usize,
    ) -> Result<Vec<Contact>, StoreError> {
        let mut keys = Vec::new();
        for shard in 0..TIME_SHARDS {
            let output = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(GSI1)
                .key_condition_expression("#gpk = :gpk AND #gsk <= :now")
                .expression_attribute_names("#gpk", GSI1_PK)
                .expression_attribute_names("#gsk", GSI1_SK)
                .expression_attribute_values(":gpk", s(TimeKind::Lapse.shard_key(shard)))
                .expression_attribute_values(":now", s(time_sort_key(now)))
                .limit(limit.min(i32::MAX as usize) as i32)
                .send()
                .await
                .map_err(StoreError::unavailable)?;
            for item in output.items.unwrap_or_default() {
                let fields = Fields(&item);
                keys.push(key(fields.string("pk")?, fields.string("sk")?));
            }
        }
        // The index is eventually consistent: each contact is read again and kept only if its
        // window is still closed.
        let items = try_join_all(keys.into_iter().map(|item_key| self.get(item_key))).await?;
        let mut lapsed = Vec::new();
        for item in items.iter().flatten() {
            let contact = contact_from_item(item)?;
            if contact.window_closes_at <= now {
                lapsed.push(contact);
            }
        }
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
