//! Creating the table outside CloudFormation: for tests and `wxkf serve --store dynamodb`
//! against a DynamoDB-compatible server. `template.yaml` declares the same table for AWS.

use std::time::Duration;

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, TableStatus, TimeToLiveSpecification,
};
use aws_sdk_dynamodb::Client;

use super::items::{GSI1, GSI1_PK, GSI1_SK, PK, SK, TTL};
use super::TableConfig;

/// A failure to set up the table.
#[derive(Debug, thiserror::Error)]
pub enum TableSetupError {
    #[error("DynamoDB request to set up table {table} failed")]
    Request {
        table: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("table {table} did not become active within {secs} seconds")]
    NotActive { table: String, secs: u64 },
}

/// Seconds to wait for a new table to become active.
const ACTIVE_WAIT_SECS: u64 = 60;

/// Creates the table with its `by_time` index and TTL unless it exists, and waits until it is
/// active. Calling it again on an existing table changes nothing.
pub async fn create_table(client: &Client, config: &TableConfig) -> Result<(), TableSetupError> {
    let table = config.table_name.as_str();
    let request_error =
        |source: Box<dyn std::error::Error + Send + Sync>| TableSetupError::Request {
            table: table.to_owned(),
            source,
        };

    let exists = match client.describe_table().table_name(table).send().await {
        Ok(_) => true,
        Err(error)
            if error
                .as_service_error()
                .is_some_and(|e| e.is_resource_not_found_exception()) =>
        {
            false
        }
        Err(error) => return Err(request_error(Box::new(error))),
    };
    if !exists {
        create(client, table).await.map_err(request_error)?;
    }
    wait_until_active(client, table).await?;

    let enabled = client
        .update_time_to_live()
        .table_name(table)
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .enabled(true)
                .attribute_name(TTL)
                .build()
                .map_err(|error| request_error(Box::new(error)))?,
        )
        .send()
        .await;
    match enabled {
        Ok(_) => Ok(()),
        Err(error) => {
            // Enabling TTL twice is rejected; that is the state we want.
            let already = error
                .as_service_error()
                .and_then(aws_sdk_dynamodb::error::ProvideErrorMetadata::message)
                .is_some_and(|message| message.contains("already enabled"));
            if already {
                Ok(())
            } else {
                Err(request_error(Box::new(error)))
            }
        }
    }
}

async fn create(
    client: &Client,
    table: &str,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let string_attribute = |name: &str| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ScalarAttributeType::S)
            .build()
    };
    let key = |name: &str, key_type: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(key_type)
            .build()
    };
    let by_time = GlobalSecondaryIndex::builder()
        .index_name(GSI1)
        .key_schema(key(GSI1_PK, KeyType::Hash)?)
        .key_schema(key(GSI1_SK, KeyType::Range)?)
        .projection(
            Projection::builder()
                .projection_type(ProjectionType::KeysOnly)
                .build(),
        )
        .build()?;
    let result = client
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(string_attribute(PK)?)
        .attribute_definitions(string_attribute(SK)?)
        .attribute_definitions(string_attribute(GSI1_PK)?)
        .attribute_definitions(string_attribute(GSI1_SK)?)
        .key_schema(key(PK, KeyType::Hash)?)
        .key_schema(key(SK, KeyType::Range)?)
        .global_secondary_indexes(by_time)
        .send()
        .await;
    match result {
        Ok(_) => Ok(()),
        // Another process created it between our check and our request.
        Err(error)
            if error
                .as_service_error()
                .is_some_and(|e| e.is_resource_in_use_exception()) =>
        {
            Ok(())
        }
        Err(error) => Err(Box::new(error)),
    }
}

async fn wait_until_active(client: &Client, table: &str) -> Result<(), TableSetupError> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(ACTIVE_WAIT_SECS);
    loop {
        let description = client
            .describe_table()
            .table_name(table)
            .send()
            .await
            .map_err(|error| TableSetupError::Request {
                table: table.to_owned(),
                source: Box::new(error),
            })?;
        let status = description.table.and_then(|table| table.table_status);
        if status == Some(TableStatus::Active) {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(TableSetupError::NotActive {
                table: table.to_owned(),
                secs: ACTIVE_WAIT_SECS,
            });
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
