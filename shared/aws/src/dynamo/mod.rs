//! The DynamoDB store: one table, keyed so that every request path is a GetItem, a Query on one
//! partition or a conditional write, never a Scan. `items` holds the keys and item shapes;
//! `connections`, `contacts` and `streams` implement the core's store ports.
//!
//! Writes that must not interleave with another writer (assignment, deduplicated append,
//! connection removal) are single `TransactWriteItems` calls with conditions. An agent's
//! stream position is a counter in its `META` item: a writer reads it, then writes the frame
//! and the counter in one transaction conditioned on the value it read, so positions have no
//! gaps and a racing writer retries (at most [`TRANSACTION_ATTEMPTS`] times).

mod connections;
mod contacts;
pub mod items;
mod streams;
mod table;

use std::time::Duration;

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, TransactWriteItem};
use aws_sdk_dynamodb::Client;
use tracing::debug;
use wxkf_core::ports::StoreError;

pub use table::{create_table, TableSetupError};

use items::{Item, PK, SK};

/// Attempts at a transaction whose conditions kept failing because another writer changed the
/// same agent's stream or queue in between. Each retry follows a commit by someone else.
pub const TRANSACTION_ATTEMPTS: u32 = 16;

/// The table the store keeps its items in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableConfig {
    pub table_name: String,
}

impl TableConfig {
    pub fn new(table_name: impl Into<String>) -> Self {
        Self {
            table_name: table_name.into(),
        }
    }
}

/// The hub's store on one DynamoDB table.
#[derive(Debug, Clone)]
pub struct DynamoStore {
    client: Client,
    table: String,
}

impl DynamoStore {
    pub fn new(client: Client, config: TableConfig) -> Self {
        Self {
            client,
            table: config.table_name,
        }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn table_name(&self) -> &str {
        &self.table
    }

    /// Reads one item with a strongly consistent read.
    async fn get(&self, key: Item) -> Result<Option<Item>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key))
            .consistent_read(true)
            .send()
            .await
            .map_err(StoreError::unavailable)?;
        Ok(output.item)
    }

    /// Reads every item of a partition whose sort key starts with `prefix`, in sort-key order,
    /// following pages.
    async fn query_prefix(&self, pk: String, prefix: &str) -> Result<Vec<Item>, StoreError> {
        self.query_range(pk, prefix.to_owned(), format!("{prefix}\u{10FFFF}"), None)
            .await
    }

    /// Reads the items of a partition with `low <= sk <= high`, in order, at most `limit`
    /// (all when `None`), with strongly consistent reads.
    async fn query_range(
        &self,
        pk: String,
        low: String,
        high: String,
        limit: Option<usize>,
    ) -> Result<Vec<Item>, StoreError> {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let remaining = limit.map(|limit| limit - items.len());
            let output = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("#pk = :pk AND #sk BETWEEN :low AND :high")
                .expression_attribute_names("#pk", PK)
                .expression_attribute_names("#sk", SK)
                .expression_attribute_values(":pk", AttributeValue::S(pk.clone()))
                .expression_attribute_values(":low", AttributeValue::S(low.clone()))
                .expression_attribute_values(":high", AttributeValue::S(high.clone()))
                .consistent_read(true)
                .set_limit(remaining.map(|n| n.min(i32::MAX as usize) as i32))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(StoreError::unavailable)?;
            items.extend(output.items.unwrap_or_default());
            start = output.last_evaluated_key;
            let full = limit.is_some_and(|limit| items.len() >= limit);
            if start.is_none() || full {
                return Ok(items);
            }
        }
    }

    /// Runs one transaction and sorts its failure into a condition that failed (with the index
    /// of each item whose condition failed), a conflict with a concurrent transaction, or an
    /// outage.
    async fn transact(&self, writes: Vec<TransactWriteItem>) -> Result<(), TransactionFailure> {
        let result = self
            .client
            .transact_write_items()
            .set_transact_items(Some(writes))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(error) => Err(classify(error)),
        }
    }
}

/// Builds a transaction with `build` and runs it, building and running it again while it
/// conflicts with another transaction. Returns the indexes of the items whose conditions
/// failed as `Err`; conditions are the caller's to judge.
async fn transact_until_settled(
    store: &DynamoStore,
    what: &str,
    build: impl Fn() -> Result<Vec<TransactWriteItem>, StoreError>,
) -> Result<Result<(), Vec<usize>>, StoreError> {
    for attempt in 1..=TRANSACTION_ATTEMPTS {
        match store.transact(build()?).await {
            Ok(()) => return Ok(Ok(())),
            Err(TransactionFailure::Conditions(failed)) => return Ok(Err(failed)),
            Err(TransactionFailure::Conflict) => back_off(attempt).await,
            Err(TransactionFailure::Store(error)) => return Err(error),
        }
    }
    Err(contended(what))
}

fn build_error(error: aws_sdk_dynamodb::error::BuildError) -> StoreError {
    StoreError::unavailable(error)
}

/// The reason a transaction did not commit.
#[derive(Debug)]
enum TransactionFailure {
    /// The conditions of these items (indexes into the request) failed.
    Conditions(Vec<usize>),
    /// Another transaction touched the same items; nothing was written and a retry may pass.
    Conflict,
    Store(StoreError),
}

fn classify(error: SdkError<TransactWriteItemsError>) -> TransactionFailure {
    let service = match error {
        SdkError::ServiceError(service) => service.into_err(),
        other => return TransactionFailure::Store(StoreError::unavailable(other)),
    };
    let TransactWriteItemsError::TransactionCanceledException(canceled) = service else {
        if let TransactWriteItemsError::TransactionInProgressException(_) = service {
            return TransactionFailure::Conflict;
        }
        return TransactionFailure::Store(StoreError::unavailable(service));
    };
    let reasons = canceled.cancellation_reasons();
    let failed: Vec<usize> = reasons
        .iter()
        .enumerate()
        .filter(|(_, reason)| reason.code() == Some("ConditionalCheckFailed"))
        .map(|(index, _)| index)
        .collect();
    if !failed.is_empty() {
        return TransactionFailure::Conditions(failed);
    }
    let conflict = reasons
        .iter()
        .any(|reason| reason.code() == Some("TransactionConflict"));
    if conflict {
        return TransactionFailure::Conflict;
    }
    TransactionFailure::Store(StoreError::unavailable(
        TransactWriteItemsError::TransactionCanceledException(canceled),
    ))
}

/// Waits before retry `attempt` (counting from 1): a short, growing, jittered pause so that
/// writers racing on one agent's counter fall out of step.
async fn back_off(attempt: u32) {
    let base_ms = 5u64 << attempt.min(6);
    let jitter_ms = u64::from(rand_u8()) % base_ms.max(1);
    debug!(attempt, "transaction conflict; retrying");
    tokio::time::sleep(Duration::from_millis(base_ms / 2 + jitter_ms)).await;
}

/// A random byte from the standard library's randomly seeded hasher, enough for retry jitter.
fn rand_u8() -> u8 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|elapsed| elapsed.subsec_nanos() as u64)
            .unwrap_or_default(),
    );
    hasher.finish() as u8
}

/// The error after [`TRANSACTION_ATTEMPTS`] conflicts in a row.
fn contended(what: &str) -> StoreError {
    StoreError::unavailable(std::io::Error::other(format!(
        "{what} kept conflicting with concurrent writers after {TRANSACTION_ATTEMPTS} attempts"
    )))
}
