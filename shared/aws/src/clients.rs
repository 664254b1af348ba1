//! SDK clients, built once per process (once per Lambda cold start) and shared by every
//! request. They use one hyper client on rustls with ring: the SDK's default client uses
//! aws-lc, which needs cmake and makes cross-compiling for arm64 slow.

use aws_config::{BehaviorVersion, SdkConfig};
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
use aws_smithy_http_client::Builder;

/// Loads the shared SDK configuration from the standard sources: region, credentials and
/// per-service endpoints such as `AWS_ENDPOINT_URL_DYNAMODB`.
pub async fn load_sdk_config() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .http_client(https_client())
        .load()
        .await
}

pub fn dynamodb_client(config: &SdkConfig) -> aws_sdk_dynamodb::Client {
    aws_sdk_dynamodb::Client::new(config)
}

/// A management API client for one WebSocket API stage. `endpoint` is the stage's URL
/// (`https://{api-id}.execute-api.{region}.amazonaws.com/{stage}`, a custom domain's URL, or
/// the local gateway's `http://127.0.0.1:PORT`); the SDK appends `/@connections/{id}`.
pub fn management_client(
    config: &SdkConfig,
    endpoint: &str,
) -> aws_sdk_apigatewaymanagement::Client {
    // The pusher retries throttling itself, with its own bound; SDK retries would multiply it.
    let config = aws_sdk_apigatewaymanagement::config::Builder::from(config)
        .endpoint_url(endpoint)
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .build();
    aws_sdk_apigatewaymanagement::Client::from_conf(config)
}

fn https_client() -> aws_sdk_dynamodb::config::SharedHttpClient {
    Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
        .build_https()
}

/// An SDK configuration for a DynamoDB-compatible server on this machine (moto, DynamoDB
/// Local): every service at `endpoint`, region `us-east-1` and fixed dummy credentials, so
/// nothing reads the instance metadata service or a profile's secrets.
pub async fn local_sdk_config(endpoint: &str) -> SdkConfig {
    let credentials =
        aws_credential_types::Credentials::new("test", "test", None, None, "wxkf-local");
    aws_config::defaults(BehaviorVersion::latest())
        .http_client(https_client())
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(credentials)
        .endpoint_url(endpoint)
        .load()
        .await
}
