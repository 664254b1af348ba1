//! The store conformance suite, run on the DynamoDB store against moto on loopback.

mod support;

mod dynamodb {
    wxkf_core::store_conformance_tests!(super::support::fresh_store().await);
}
