//! The AWS-specific configuration, read once at start next to the core's
//! [`wxkf_core::config::Config`]. Region and credentials come from the SDK's standard sources
//! (`AWS_REGION`, the Lambda execution role, `AWS_ENDPOINT_URL_DYNAMODB`).

use wxkf_core::config::ConfigError;

/// The table name when `WXKF_TABLE` is not set.
pub const DEFAULT_TABLE: &str = "wxkf";

/// The table and endpoint the AWS adapters use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsSettings {
    /// The DynamoDB table (`WXKF_TABLE`).
    pub table_name: String,
    /// The API Gateway Management endpoint that reaches the agents' sockets
    /// (`WXKF_APIGW_ENDPOINT`); `None` when it is to be built from the WebSocket event's
    /// domain and stage.
    pub management_endpoint: Option<String>,
}

impl AwsSettings {
    /// Reads the settings through `lookup`, normally `std::env::var`.
    ///
    /// Without `WXKF_APIGW_ENDPOINT`, the endpoint is
    /// `https://{WXKF_APIGW_API_ID}.execute-api.{AWS_REGION}.amazonaws.com/{WXKF_APIGW_STAGE}`
    /// when all three are set. A custom domain changes that address, so the full URL wins.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let non_empty = |name: &str| lookup(name).filter(|value| !value.trim().is_empty());

        let table_name = non_empty("WXKF_TABLE").unwrap_or_else(|| DEFAULT_TABLE.to_owned());

        let management_endpoint = match non_empty("WXKF_APIGW_ENDPOINT") {
            Some(url) => {
                if !(url.starts_with("https://") || url.starts_with("http://")) {
                    return Err(ConfigError::Invalid {
                        name: "WXKF_APIGW_ENDPOINT",
                        reason: format!("{url:?} is not an http or https URL"),
                    });
                }
                Some(url.trim_end_matches('/').to_owned())
            }
            None => match (
                non_empty("WXKF_APIGW_API_ID"),
                non_empty("AWS_REGION"),
                non_empty("WXKF_APIGW_STAGE"),
            ) {
                (Some(api), Some(region), Some(stage)) => {
                    Some(default_endpoint(&api, &region, &stage))
                }
                _ => None,
            },
        };

        Ok(Self {
            table_name,
            management_endpoint,
        })
    }

    /// Returns the management endpoint, or an error naming the variable to set.
    pub fn require_management_endpoint(&self) -> Result<&str, ConfigError> {
        self.management_endpoint
            .as_deref()
            .ok_or(ConfigError::Missing {
                name: "WXKF_APIGW_ENDPOINT",
            })
    }
}

/// Builds the management endpoint of a WebSocket API stage without a custom domain.
pub fn default_endpoint(api_id: &str, region: &str, stage: &str) -> String {
    format!("https://{api_id}.execute-api.{region}.amazonaws.com/{stage}")
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn endpoint_defaults_to_api_region_and_stage() {
        let settings = AwsSettings::from_lookup(lookup(&[
            ("WXKF_APIGW_API_ID", "abc123"),
            ("AWS_REGION", "ap-east-1"),
            ("WXKF_APIGW_STAGE", "prod"),
        ]))
        .unwrap();
        assert_eq!(
            settings.management_endpoint.as_deref(),
            Some("https://abc123.execute-api.ap-east-1.amazonaws.com/prod")
        );
        assert_eq!(settings.table_name, "wxkf");
    }

    #[test]
    fn explicit_endpoint_wins_and_loses_trailing_slash() {
        let settings = AwsSettings::from_lookup(lookup(&[
            ("WXKF_APIGW_ENDPOINT", "https://ws.example.com/kf/"),
            ("WXKF_APIGW_API_ID", "abc123"),
            ("AWS_REGION", "ap-east-1"),
            ("WXKF_APIGW_STAGE", "prod"),
            ("WXKF_TABLE", "kf-prod"),
        ]))
        .unwrap();
        assert_eq!(
            settings.management_endpoint.as_deref(),
            Some("https://ws.example.com/kf")
        );
        assert_eq!(settings.table_name, "kf-prod");
    }

    #[test]
    fn endpoint_without_scheme_is_invalid() {
        let error = AwsSettings::from_lookup(lookup(&[("WXKF_APIGW_ENDPOINT", "ws.example.com")]))
            .unwrap_err();
        assert!(matches!(
            error,
            ConfigError::Invalid {
                name: "WXKF_APIGW_ENDPOINT",
                ..
            }
        ));
        let missing = AwsSettings::from_lookup(lookup(&[])).unwrap();
        assert_eq!(
            missing.require_management_endpoint().unwrap_err(),
            ConfigError::Missing {
                name: "WXKF_APIGW_ENDPOINT"
            }
        );
    }
}
