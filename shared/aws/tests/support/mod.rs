//! Shared by the integration tests: a moto server on loopback and a fresh table per test.

#![allow(dead_code)]

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

use wxkf_aws::{clients, create_table, DynamoStore, TableConfig};

/// The moto endpoint: `WXKF_MOTO_ENDPOINT` when set (by `scripts/moto.sh` in CI), else the
/// one `scripts/moto.sh` starts. A test that cannot reach moto fails; it never passes silently.
pub fn moto_endpoint() -> String {
    static ENDPOINT: OnceLock<String> = OnceLock::new();
    ENDPOINT
        .get_or_init(|| {
            if let Ok(endpoint) = std::env::var("WXKF_MOTO_ENDPOINT") {
                assert!(
                    endpoint.starts_with("http://127.0.0.1:"),
                    "WXKF_MOTO_ENDPOINT must be a loopback URL, got {endpoint:?}"
                );
                return endpoint;
            }
            let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/moto.sh");
            let output = Command::new("bash")
                .arg(script)
                .output()
                .unwrap_or_else(|error| panic!("could not run {script}: {error}"));
            assert!(
                output.status.success(),
                "moto is required for the DynamoDB tests and {script} failed: {}",
                String::from_utf8_lossy(&output.stderr)
            );
            String::from_utf8(output.stdout).unwrap().trim().to_owned()
        })
        .clone()
}

/// A unique table name, so that every test starts with an empty table on the shared server.
pub fn fresh_table_name() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "wxkf-test-{}-{nanos}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    )
}

pub async fn dynamo_client() -> aws_sdk_dynamodb::Client {
    std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");
    let config = clients::local_sdk_config(&moto_endpoint()).await;
    clients::dynamodb_client(&config)
}

/// A store on a new, empty table.
pub async fn fresh_store() -> Box<DynamoStore> {
    let client = dynamo_client().await;
    let config = TableConfig::new(fresh_table_name());
    create_table(&client, &config)
        .await
        .expect("creating the test table on moto");
    Box::new(DynamoStore::new(client, config))
}
