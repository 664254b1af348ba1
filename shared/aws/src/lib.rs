//! wxkf-aws: the AWS adapters of the wxkf hub and the translation of Lambda events into calls
//! of wxkf-core.
//!
//! # Layout
//!
//! - [`dynamo`]: [`DynamoStore`], the store ports on one DynamoDB table, and [`create_table`].
//! - [`pusher`]: [`ApiGatewayPusher`], the pusher port on the API Gateway Management API.
//! - [`clients`]: SDK clients built once per process, on a rustls (ring) HTTPS client.
//! - [`settings`]: the AWS-specific variables (table name, management endpoint).
//! - [`lambda`]: Lambda events translated into hub calls, shared by the function binaries.

pub mod clients;
pub mod dynamo;
pub mod lambda;
pub mod pusher;
pub mod settings;

pub use dynamo::{create_table, DynamoStore, TableConfig};
pub use pusher::ApiGatewayPusher;
