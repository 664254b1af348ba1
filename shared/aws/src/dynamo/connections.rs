//! Connections: a lookup item per connection id (`CONN#id`) for the WebSocket routes, a copy in
//! the agent's partition for pushing to all of an agent's sockets, and a presence item per
//! agent in the company partition for assignment. The lookup item and the copy are written and
//! removed together in one transaction.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, Delete, Put, TransactWriteItem, Update};
use futures_util::future::try_join_all;
use wxkf_core::ids::{AgentId, CompanyId, ConnectionId};
use wxkf_core::ports::{AgentLoad, Connection, ConnectionStore, StoreError};
use wxkf_core::time::Timestamp;

use super::items::{
    agent_connection_sk, agent_pk, company_pk, connection_attributes, connection_from_item,
    connection_pk, contact_from_item, key, n, presence_sk, s, ttl_secs, Fields, CONNECTION_SK,
};
use super::{build_error, transact_until_settled, DynamoStore, TransactionFailure};

impl DynamoStore {
    /// The lookup item of a connection, whatever its expiry.
    async fn connection_item(&self, id: &ConnectionId) -> Result<Option<Connection>, StoreError> {
        let item = self.get(key(connection_pk(id), CONNECTION_SK)).await?;
        item.as_ref().map(connection_from_item).transpose()
    }

    /// Loads one online agent's load, or `None` when none of its connections is open at `now`
    /// (its presence item outlives removed connections).
    async fn agent_load(
        &self,
        agent: AgentId,
        last_assigned_at: Option<Timestamp>,
        now: Timestamp,
    ) -> Result<Option<AgentLoad>, StoreError> {
        // "CONN#…" sorts just before "CT#…", so one range query returns the agent's
        // connections and its contact copies.
        let items = self
            .query_range(
                agent_pk(&agent),
                "CONN#".to_owned(),
                "CT#\u{10FFFF}".to_owned(),
                None,
            )
            .await?;
        let mut first_connected: Option<Timestamp> = None;
        let mut contacts = 0u32;
        for item in &items {
            let sk = Fields(item).string("sk")?;
            if sk.starts_with("CONN#") {
                let connection = connection_from_item(item)?;
                if connection.expires_at > now {
                    first_connected = Some(
                        first_connected
                            .map_or(connection.connected_at, |t| t.min(connection.connected_at)),
                    );
                }
            } else if contact_from_item(item)?.window_closes_at > now {
                contacts += 1;
            }
        }
        Ok(first_connected.map(|connected_at| AgentLoad {
            agent,
            contacts,
            idle_since: last_assigned_at.unwrap_or(connected_at),
        }))
    }
}

#[async_trait]
impl ConnectionStore for DynamoStore {
    async fn add_connection(&self, connection: &Connection) -> Result<(), StoreError> {
        let attributes = connection_attributes(connection);
        let mut lookup = key(connection_pk(&connection.id), CONNECTION_SK);
        lookup.extend(attributes.clone());
        let mut copy = key(
            agent_pk(&connection.agent),
            agent_connection_sk(&connection.id),
        );
        copy.extend(attributes);

        let writes = vec![
            TransactWriteItem::builder()
                .put(
                    Put::builder()
                        .table_name(&self.table)
                        .set_item(Some(lookup))
                        .build()
                        .map_err(build_error)?,
                )
                .build(),
            TransactWriteItem::builder()
                .put(
                    Put::builder()
                        .table_name(&self.table)
                        .set_item(Some(copy))
                        .build()
                        .map_err(build_error)?,
                )
                .build(),
            // Connections only get younger, so the newest one's expiry is the presence's.
            TransactWriteItem::builder()
                .update(
                    Update::builder()
                        .table_name(&self.table)
                        .set_key(Some(key(
                            company_pk(&connection.company),
                            presence_sk(&connection.agent),
                        )))
                        .update_expression(
                            "SET #agent = :agent, expires_at = :expires, #ttl = :ttl",
                        )
                        .expression_attribute_names("#agent", "agent")
                        .expression_attribute_names("#ttl", "ttl")
                        .expression_attribute_values(":agent", s(connection.agent.as_str()))
                        .expression_attribute_values(":expires", n(connection.expires_at.0))
                        .expression_attribute_values(":ttl", n(ttl_secs(connection.expires_at)))
                        .build()
                        .map_err(build_error)?,
                )
                .build(),
        ];
        self.transact(writes)
            .await
            .map_err(|failure| match failure {
                TransactionFailure::Store(error) => error,
                other => StoreError::unavailable(std::io::Error::other(format!(
                    "adding connection {} failed: {other:?}",
                    connection.id
                ))),
            })
    }

    async fn remove_connection(&self, id: &ConnectionId) -> Result<Option<Connection>, StoreError> {
        let Some(connection) = self.connection_item(id).await? else {
            return Ok(None);
        };
        let build = || {
            Ok(vec![
                TransactWriteItem::builder()
                    .delete(
                        Delete::builder()
                            .table_name(&self.table)
                            .set_key(Some(key(connection_pk(id), CONNECTION_SK)))
                            .condition_expression("attribute_exists(pk)")
                            .build()
                            .map_err(build_error)?,
                    )
                    .build(),
                TransactWriteItem::builder()
                    .delete(
                        Delete::builder()
                            .table_name(&self.table)
                            .set_key(Some(key(
                                agent_pk(&connection.agent),
                                agent_connection_sk(id),
                            )))
                            .build()
                            .map_err(build_error)?,
                    )
                    .build(),
            ])
        };
        // When the condition fails a concurrent removal won: only one caller gets the
        // connection back.
        Ok(transact_until_settled(self, "removing a connection", build)
            .await?
            .ok()
            .map(|()| connection))
    }

    async fn connection(
        &self,
        id: &ConnectionId,
        now: Timestamp,
    ) -> Result<Option<Connection>, StoreError> {
        Ok(self
            .connection_item(id)
            .await?
            .filter(|connection| connection.expires_at > now))
    }

    async fn agent_connections(
        &self,
        agent: &AgentId,
        now: Timestamp,
    ) -> Result<Vec<Connection>, StoreError> {
        let items = self.query_prefix(agent_pk(agent), "CONN#").await?;
        let mut connections = items
            .iter()
            .map(connection_from_item)
            .filter(|connection| connection.as_ref().map_or(true, |c| c.expires_at > now))
            .collect::<Result<Vec<_>, _>>()?;
        connections.sort_by(|a, b| (a.connected_at, &a.id).cmp(&(b.connected_at, &b.id)));
        Ok(connections)
    }

    async fn mark_greeted(&self, id: &ConnectionId) -> Result<bool, StoreError> {
        let Some(connection) = self.connection_item(id).await? else {
            return Ok(false);
        };
        let greet = |key| {
            Update::builder()
                .table_name(&self.table)
                .set_key(Some(key))
                .update_expression("SET greeted = :true")
                .condition_expression("attribute_exists(pk) AND greeted = :false")
                .expression_attribute_values(":true", AttributeValue::Bool(true))
                .expression_attribute_values(":false", AttributeValue::Bool(false))
                .build()
                .map_err(build_error)
        };
        let build = || {
            Ok(vec![
                TransactWriteItem::builder()
                    .update(greet(key(connection_pk(id), CONNECTION_SK))?)
                    .build(),
                TransactWriteItem::builder()
                    .update(greet(key(
                        agent_pk(&connection.agent),
                        agent_connection_sk(id),
                    ))?)
                    .build(),
            ])
        };
        Ok(
            transact_until_settled(self, "marking a connection greeted", build)
                .await?
                .is_ok(),
        )
    }

    async fn online_agents(
        &self,
        company: &CompanyId,
        now: Timestamp,
    ) -> Result<Vec<AgentLoad>, StoreError> {
        let presences = self.query_prefix(company_pk(company), "AG#").await?;
        let mut candidates = Vec::new();
        for item in &presences {
            let fields = Fields(item);
            // An assignment may create the item before the agent's first connection.
            let expires_at = fields.optional_number("expires_at")?.map(Timestamp);
            if expires_at.is_none_or(|expires_at| expires_at <= now) {
                continue;
            }
            let agent = fields.id("agent", AgentId::parse)?;
            let last_assigned_at = fields.optional_number("last_assigned_at")?.map(Timestamp);
            candidates.push((agent, last_assigned_at));
        }
        let loads = try_join_all(
            candidates
                .into_iter()
                .map(|(agent, last_assigned_at)| self.agent_load(agent, last_assigned_at, now)),
        )
        .await?;
        Ok(loads.into_iter().flatten().collect())
    }
}
