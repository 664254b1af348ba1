//! Agents' frame streams, deduplication and the company queues.
//!
//! A frame's position comes from the agent's `META` item (`last`): a writer reads it and
//! writes the frame at `last + 1` in a transaction conditioned on `last` being unchanged, so
//! positions have no gaps even when a write is cancelled (a duplicate, a contact that moved).

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, ConditionCheck, Put, TransactWriteItem, Update};
use wxkf_core::frame::Frame;
use wxkf_core::ids::{AgentId, CompanyId, Seq};
use wxkf_core::ports::{
    AppendOutcome, InboundRecord, QueueOutcome, QueuedRecord, QueuedUser, StoreError, StreamCursor,
    StreamStore,
};
use wxkf_core::time::Timestamp;

use super::items::{
    agent_contact_sk, agent_pk, contact_pk, dedup_item, frame_from_item, frame_item, frame_sk, key,
    n, queue_frame_sk, queue_head_sk, queue_pk, queued_user_from_item, s, time_sort_key, Fields,
    Item, TimeKind, CONTACT_SK, FRAME_SK_MAX, GSI1, GSI1_PK, GSI1_SK, META_SK, TIME_SHARDS,
};
use super::{
    back_off, build_error, contended, DynamoStore, TransactionFailure, TRANSACTION_ATTEMPTS,
};

impl DynamoStore {
    /// Reads the agent's stream counters, all zero for an agent with no `META` item.
    pub(super) async fn read_cursor(&self, agent: &AgentId) -> Result<StreamCursor, StoreError> {
        let Some(item) = self.get(key(agent_pk(agent), META_SK)).await? else {
            return Ok(StreamCursor::default());
        };
        let fields = Fields(&item);
        let position = |name| -> Result<Seq, StoreError> {
            Ok(Seq(fields.optional_number(name)?.unwrap_or(0).max(0) as u64))
        };
        Ok(StreamCursor {
            last: position("last")?,
            acked: position("acked")?,
            delivered: position("delivered")?,
        })
    }

    /// Builds the write that moves the agent's `last` from `previous` to `next`. It fails if
    /// another writer moved `last` first.
    pub(super) fn advance_stream(
        &self,
        agent: &AgentId,
        previous: Seq,
        next: Seq,
    ) -> Result<TransactWriteItem, StoreError> {
        let condition = if previous == Seq(0) {
            "attribute_not_exists(#last) OR #last = :previous"
        } else {
            "#last = :previous"
        };
        let update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key(agent_pk(agent), META_SK)))
            .update_expression("SET #last = :next")
            .condition_expression(condition)
            .expression_attribute_names("#last", "last")
            .expression_attribute_values(":previous", n(previous.0))
            .expression_attribute_values(":next", n(next.0))
            .build()
            .map_err(build_error)?;
        Ok(TransactWriteItem::builder().update(update).build())
    }

    pub(super) fn put(
        &self,
        item: Item,
        condition: Option<&str>,
    ) -> Result<TransactWriteItem, StoreError> {
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .set_condition_expression(condition.map(str::to_owned))
            .build()
            .map_err(build_error)?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    /// Raises a stream counter to `seq` unless it is already there or higher.
    async fn raise_counter(&self, agent: &AgentId, name: &str, seq: Seq) -> Result<(), StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(agent_pk(agent), META_SK)))
            .update_expression("SET #counter = :seq")
            .condition_expression("attribute_not_exists(#counter) OR #counter < :seq")
            .expression_attribute_names("#counter", name)
            .expression_attribute_values(":seq", n(seq.0))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Ok(())
            }
            Err(error) => Err(StoreError::unavailable(error)),
        }
    }

    /// Deletes the items of one kind whose `by_time` key is at or before `until`, shard by
    /// shard, and returns how many went. The index is eventually consistent, so an item written
    /// a moment ago may wait for the next sweep.
    async fn prune_kind(&self, kind: TimeKind, until: Timestamp) -> Result<u64, StoreError> {
        let mut deleted = 0;
        for shard in 0..TIME_SHARDS {
            let mut start = None;
            loop {
                let output = self
                    .client
                    .query()
                    .table_name(&self.table)
                    .index_name(GSI1)
                    .key_condition_expression("#gpk = :gpk AND #gsk <= :until")
                    .expression_attribute_names("#gpk", GSI1_PK)
                    .expression_attribute_names("#gsk", GSI1_SK)
                    .expression_attribute_values(":gpk", s(kind.shard_key(shard)))
                    .expression_attribute_values(":until", s(time_sort_key(until)))
                    .set_exclusive_start_key(start)
                    .send()
                    .await
                    .map_err(StoreError::unavailable)?;
                for item in output.items.unwrap_or_default() {
                    let fields = Fields(&item);
                    let item_key = key(fields.string("pk")?, fields.string("sk")?);
                    // The condition re-checks the time on the item itself: the index may be
                    // behind a rewrite of the same key.
                    let result = self
                        .client
                        .delete_item()
                        .table_name(&self.table)
                        .set_key(Some(item_key))
                        .condition_expression("#gsk <= :until")
                        .expression_attribute_names("#gsk", GSI1_SK)
                        .expression_attribute_values(":until", s(time_sort_key(until)))
                        .send()
                        .await;
                    match result {
                        Ok(_) => deleted += 1,
                        Err(error)
                            if error
                                .as_service_error()
                                .is_some_and(|e| e.is_conditional_check_failed_exception()) => {}
                        Err(error) => return Err(StoreError::unavailable(error)),
                    }
                }
                start = output.last_evaluated_key;
                if start.is_none() {
                    break;
                }
            }
        }
        Ok(deleted)
    }
}

#[async_trait]
impl StreamStore for DynamoStore {
    async fn append_inbound(&self, record: InboundRecord) -> Result<AppendOutcome, StoreError> {
        let contact_key = key(contact_pk(&record.company, &record.user), CONTACT_SK);
        let copy_key = key(
            agent_pk(&record.agent),
            agent_contact_sk(&record.company, &record.user),
        );

        for attempt in 1..=TRANSACTION_ATTEMPTS {
            let previous = self.read_cursor(&record.agent).await?.last;
            let seq = Seq(previous.0 + 1);

            // A dedup record blocks its key until the sweep prunes it, even past its expiry:
            // appends carry no current time to compare with.
            let dedup_put = Put::builder()
                .table_name(&self.table)
                .set_item(Some(dedup_item(
                    record.dedup.as_str(),
                    record.dedup_expires_at,
                )))
                .condition_expression("attribute_not_exists(pk)");
            let mut writes = vec![TransactWriteItem::builder()
                .put(dedup_put.build().map_err(build_error)?)
                .build()];

            // Without a refresh (a passive event, an unfollow) the caller decided the recipient
            // from the contact it read, and nothing about the contact changes.
            if let Some(refresh) = &record.refresh {
                let (expression, names, values) = refresh_update(refresh);
                let mut primary = Update::builder()
                    .table_name(&self.table)
                    .set_key(Some(contact_key.clone()))
                    .update_expression(format!("{expression}, #gsk = :gsk"))
                    .condition_expression("#agent = :agent AND window_closes_at > :now")
                    .expression_attribute_names("#agent", "agent")
                    .expression_attribute_names("#gsk", GSI1_SK)
                    .expression_attribute_values(":gsk", s(time_sort_key(refresh.window_closes_at)))
                    .expression_attribute_values(":agent", s(record.agent.as_str()))
                    .expression_attribute_values(":now", n(refresh.last_inbound_at.0));
                let mut copy = Update::builder()
                    .table_name(&self.table)
                    .set_key(Some(copy_key.clone()))
                    .update_expression(expression)
                    .condition_expression("attribute_exists(pk)");
                for (name, value) in &names {
                    primary = primary.expression_attribute_names(*name, *value);
                    copy = copy.expression_attribute_names(*name, *value);
                }
                for (name, value) in values {
                    primary = primary.expression_attribute_values(name, value.clone());
                    copy = copy.expression_attribute_values(name, value);
                }
                writes.push(
                    TransactWriteItem::builder()
                        .update(primary.build().map_err(build_error)?)
                        .build(),
                );
                writes.push(
                    TransactWriteItem::builder()
                        .update(copy.build().map_err(build_error)?)
                        .build(),
                );
            }
            let contact_writes = 1..writes.len();

            writes.push(self.put(
                frame_item(&record.agent, seq, &record.frame, record.stored_at),
                None,
            )?);
            writes.push(self.advance_stream(&record.agent, previous, seq)?);

            match self.transact(writes).await {
                Ok(()) => return Ok(AppendOutcome::Stored(seq)),
                Err(TransactionFailure::Conditions(failed)) => {
                    if failed.contains(&0) {
                        return Ok(AppendOutcome::Duplicate);
                    }
                    if failed.iter().any(|index| contact_writes.contains(index)) {
                        return Ok(AppendOutcome::NotAssigned);
                    }
                    back_off(attempt).await;
                }
                Err(TransactionFailure::Conflict) => back_off(attempt).await,
                Err(TransactionFailure::Store(error)) => return Err(error),
            }
        }
        Err(contended("appending a user's frame"))
    }

    async fn append_system(
        &self,
        agent: &AgentId,
        frame: &Frame,
        at: Timestamp,
    ) -> Result<Seq, StoreError> {
        for attempt in 1..=TRANSACTION_ATTEMPTS {
            let previous = self.read_cursor(agent).await?.last;
            let seq = Seq(previous.0 + 1);
            let writes = vec![
                self.put(frame_item(agent, seq, frame, at), None)?,
                self.advance_stream(agent, previous, seq)?,
            ];
            match self.transact(writes).await {
                Ok(()) => return Ok(seq),
                Err(TransactionFailure::Conditions(_)) | Err(TransactionFailure::Conflict) => {
                    back_off(attempt).await
                }
                Err(TransactionFailure::Store(error)) => return Err(error),
            }
        }
        Err(contended("appending a system frame"))
    }

    async fn frames_after(
        &self,
        agent: &AgentId,
        after: Seq,
        limit: usize,
    ) -> Result<Vec<(Seq, Frame)>, StoreError> {
        if limit == 0 || after.0 == u64::MAX {
            return Ok(Vec::new());
        }
        let items = self
            .query_range(
                agent_pk(agent),
                frame_sk(Seq(after.0 + 1)),
                FRAME_SK_MAX.to_owned(),
                Some(limit),
            )
            .await?;
        items
            .iter()
            .map(|item| frame_from_item(item).map(|(seq, frame)| (seq, frame.with_seq(seq))))
            .collect()
    }

    async fn cursor(&self, agent: &AgentId) -> Result<StreamCursor, StoreError> {
        self.read_cursor(agent).await
    }

    async fn ack(&self, agent: &AgentId, seq: Seq) -> Result<(), StoreError> {
        let last = self.read_cursor(agent).await?.last;
        let seq = seq.min(last);
        if seq == Seq(0) {
            return Ok(());
        }
        self.raise_counter(agent, "acked", seq).await
    }

    async fn mark_delivered(&self, agent: &AgentId, seq: Seq) -> Result<(), StoreError> {
        self.raise_counter(agent, "delivered", seq).await
    }

    async fn enqueue(&self, record: QueuedRecord) -> Result<QueueOutcome, StoreError> {
        let contact_key = key(contact_pk(&record.company, &record.user), CONTACT_SK);
        for attempt in 1..=TRANSACTION_ATTEMPTS {
            let dedup_put = Put::builder()
                .table_name(&self.table)
                .set_item(Some(dedup_item(
                    record.dedup.as_str(),
                    record.dedup_expires_at,
                )))
                .condition_expression("attribute_not_exists(pk)");

            let held_check = ConditionCheck::builder()
                .table_name(&self.table)
                .set_key(Some(contact_key.clone()))
                .condition_expression("attribute_not_exists(pk) OR window_closes_at <= :at")
                .expression_attribute_values(":at", n(record.at.0))
                .build()
                .map_err(build_error)?;

            let mut waiting = key(
                queue_pk(&record.company),
                queue_frame_sk(&record.user, record.at, record.dedup.as_str()),
            );
            waiting.insert("frame".to_owned(), s(record.frame.to_json()));
            waiting.insert("at".to_owned(), n(record.at.0));

            // `version` changes on every enqueue, so an assignment that read the queue before
            // this write fails its condition instead of leaving this frame behind.
            let head = Update::builder()
                .table_name(&self.table)
                .set_key(Some(key(queue_pk(&record.company), queue_head_sk(&record.user))))
                .update_expression(format!(
                    "SET #user = :user, #since = if_not_exists(#since, :at), {}, {} ADD #version :one",
                    keep_unless_empty("#name", ":name", &record.name),
                    keep_unless_empty("#avatar", ":avatar", &record.avatar),
                ))
                .expression_attribute_names("#user", "user")
                .expression_attribute_names("#name", "name")
                .expression_attribute_names("#since", "since")
                .expression_attribute_names("#avatar", "avatar")
                .expression_attribute_names("#version", "version")
                .expression_attribute_values(":user", s(record.user.as_str()))
                .expression_attribute_values(":at", n(record.at.0))
                .expression_attribute_values(":name", s(record.name.as_str()))
                .expression_attribute_values(":avatar", s(record.avatar.as_str()))
                .expression_attribute_values(":one", n(1))
                .build()
                .map_err(build_error)?;

            let writes = vec![
                TransactWriteItem::builder()
                    .put(dedup_put.build().map_err(build_error)?)
                    .build(),
                TransactWriteItem::builder()
                    .condition_check(held_check)
                    .build(),
                self.put(waiting, None)?,
                TransactWriteItem::builder().update(head).build(),
            ];
            match self.transact(writes).await {
                Ok(()) => return Ok(QueueOutcome::Queued),
                Err(TransactionFailure::Conditions(failed)) => {
                    if failed.contains(&0) {
                        return Ok(QueueOutcome::Duplicate);
                    }
                    // The user is held; return the holder unless the hold ended meanwhile.
                    if let Some(item) = self.get(contact_key.clone()).await? {
                        let contact = super::items::contact_from_item(&item)?;
                        if contact.window_closes_at > record.at {
                            return Ok(QueueOutcome::Held(contact));
                        }
                    }
                    back_off(attempt).await;
                }
                Err(TransactionFailure::Conflict) => back_off(attempt).await,
                Err(TransactionFailure::Store(error)) => return Err(error),
            }
        }
        Err(contended("queueing a user's frame"))
    }

    async fn queued_users(
        &self,
        company: &CompanyId,
        limit: usize,
    ) -> Result<Vec<QueuedUser>, StoreError> {
        // NOTE: this reads every waiting user of the company and sorts by arrival; queues only
        // grow while every agent is full, so they stay short in practice.
        let items = self.query_prefix(queue_pk(company), "U#").await?;
        let mut users = items
            .iter()
            .map(queued_user_from_item)
            .collect::<Result<Vec<_>, _>>()?;
        users.sort_by(|a, b| (a.since, &a.user).cmp(&(b.since, &b.user)));
        users.truncate(limit);
        Ok(users)
    }

    async fn prune(&self, now: Timestamp, frames_before: Timestamp) -> Result<u64, StoreError> {
        let dedup = self.prune_kind(TimeKind::Dedup, now).await?;
        let frames = self
            .prune_kind(TimeKind::Frame, Timestamp(frames_before.0 - 1))
            .await?;
        Ok(dedup + frames)
    }
}

/// The update clause for a profile field that takes the latest non-empty value.
fn keep_unless_empty(name: &str, placeholder: &str, value: &str) -> String {
    if value.is_empty() {
        format!("{name} = if_not_exists({name}, {placeholder})")
    } else {
        format!("{name} = {placeholder}")
    }
}

type RefreshUpdate = (
    String,
    Vec<(&'static str, &'static str)>,
    Vec<(&'static str, AttributeValue)>,
);

/// The update expression that moves a contact's window forward and overwrites the profile
/// fields the message brought, shared by the primary item and the agent's copy.
fn refresh_update(refresh: &wxkf_core::ports::ContactRefresh) -> RefreshUpdate {
    let mut expression = "SET last_inbound_at = :last, window_closes_at = :closes".to_owned();
    let mut names = Vec::new();
    let mut values = vec![
        (":last", n(refresh.last_inbound_at.0)),
        (":closes", n(refresh.window_closes_at.0)),
    ];
    if let Some(name) = &refresh.name {
        expression.push_str(", #name = :name");
        names.push(("#name", "name"));
        values.push((":name", s(name.as_str())));
    }
    if let Some(avatar) = &refresh.avatar {
        expression.push_str(", #avatar = :avatar");
        names.push(("#avatar", "avatar"));
        values.push((":avatar", s(avatar.as_str())));
    }
    (expression, names, values)
}
