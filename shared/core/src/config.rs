//! Typed configuration, read once at start from `WXKF_…` variables. A missing or malformed
//! variable is named in the error. Nothing reads the environment after start.

use std::collections::HashMap;

use secrecy::SecretString;

use crate::ids::{AccountId, CompanyId};

/// A variable that could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("{name} is not set")]
    Missing { name: &'static str },
    #[error("{name} is invalid: {reason}")]
    Invalid { name: &'static str, reason: String },
}

/// Routing and delivery rules.
#[derive(Debug, Clone)]
pub struct HubSettings {
    /// How long after a user's last message an agent may reply, and the assignment holds.
    pub window_secs: i64,
    /// Replies an agent may send per user message inside the window.
    pub max_replies_per_message: u32,
    /// Contacts with an open window one agent may hold before new users go to others.
    pub max_contacts_per_agent: u32,
    /// How long a retry of an accepted message is recognised.
    pub dedup_ttl_secs: i64,
    /// How long stored frames stay replayable with `last_seq`.
    pub frame_retention_secs: i64,
    /// How long a connection counts as open without a disconnect (API Gateway's limit is 2 h).
    pub connection_ttl_secs: i64,
}

impl Default for HubSettings {
    fn default() -> Self {
        Self {
            window_secs: 48 * 3600,
            max_replies_per_message: 5,
            max_contacts_per_agent: 100,
            dedup_ttl_secs: 24 * 3600,
            frame_retention_secs: 7 * 24 * 3600,
            connection_ttl_secs: 2 * 3600,
        }
    }
}

/// Which company each official account belongs to.
#[derive(Debug, Clone)]
pub struct AccountDirectory {
    /// The company for the single-account setup, for unmapped accounts and for the simplified
    /// XML form that names no account.
    pub default_company: CompanyId,
    pub accounts: HashMap<AccountId, CompanyId>,
}

impl AccountDirectory {
    pub fn single(default_company: CompanyId) -> Self {
        Self {
            default_company,
            accounts: HashMap::new(),
        }
    }

    pub fn company_of(&self, account: Option<&AccountId>) -> &CompanyId {
        account
            .and_then(|account| self.accounts.get(account))
            .unwrap_or(&self.default_company)
    }
}

/// The official account's message-push settings from WeChat's admin console.
#[derive(Debug, Clone, Default)]
pub struct WechatSettings {
    /// The push token; when set, `signature` is checked on every `send_xml` request.
    pub token: Option<SecretString>,
    /// The 43-character EncodingAESKey for the safe and compatible modes.
    pub encoding_aes_key: Option<SecretString>,
    /// The AppID, checked at the end of every decrypted message.
    pub app_id: Option<String>,
}

/// Everything read from the environment.
#[derive(Debug, Clone)]
pub struct Config {
    pub hub: HubSettings,
    pub directory: AccountDirectory,
    pub wechat: WechatSettings,
    /// Key for signing agent tokens; `None` lets `wxkf serve` use the one in its data folder.
    pub token_secret: Option<SecretString>,
    /// Keys accepted on the JSON `send` route; empty lets `wxkf serve` use its generated key.
    pub api_keys: Vec<SecretString>,
    /// Largest request body accepted on the HTTP routes, in bytes.
    pub body_limit_bytes: usize,
}

impl Config {
    /// Reads the configuration through `lookup`, normally `std::env::var`.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let defaults = HubSettings::default();
        let hub = HubSettings {
            window_secs: hours(&lookup, "WXKF_WINDOW_HOURS", defaults.window_secs)?,
            max_replies_per_message: number(
                &lookup,
                "WXKF_MAX_REPLIES_PER_MESSAGE",
                defaults.max_replies_per_message,
            )?,
            max_contacts_per_agent: number(
                &lookup,
                "WXKF_MAX_CONTACTS_PER_AGENT",
                defaults.max_contacts_per_agent,
            )?,
            dedup_ttl_secs: hours(&lookup, "WXKF_DEDUP_TTL_HOURS", defaults.dedup_ttl_secs)?,
            frame_retention_secs: hours(
                &lookup,
                "WXKF_FRAME_RETENTION_HOURS",
                defaults.frame_retention_secs,
            )?,
            connection_ttl_secs: defaults.connection_ttl_secs,
        };

        let default_company = match lookup("WXKF_DEFAULT_COMPANY") {
            Some(value) => CompanyId::parse(value).map_err(|error| ConfigError::Invalid {
                name: "WXKF_DEFAULT_COMPANY",
                reason: error.to_string(),
            })?,
            None => CompanyId::parse("default").expect("\"default\" is a valid company id"),
        };
        let accounts = match lookup("WXKF_ACCOUNTS") {
            Some(value) => parse_accounts(&value)?,
            None => HashMap::new(),
        };

        let wechat = WechatSettings {
            token: non_empty(&lookup, "WXKF_WECHAT_TOKEN").map(SecretString::from),
            encoding_aes_key: match non_empty(&lookup, "WXKF_WECHAT_AES_KEY") {
                Some(key) if key.len() != 43 => {
                    return Err(ConfigError::Invalid {
                        name: "WXKF_WECHAT_AES_KEY",
                        reason: format!("must be 43 characters, got {}", key.len()),
                    })
                }
                key => key.map(SecretString::from),
            },
            app_id: non_empty(&lookup, "WXKF_WECHAT_APPID"),
        };
        if wechat.encoding_aes_key.is_some() && wechat.app_id.is_none() {
            return Err(ConfigError::Missing {
                name: "WXKF_WECHAT_APPID",
            });
        }

        let api_keys = non_empty(&lookup, "WXKF_API_KEYS")
            .map(|keys| {
                keys.split(',')
                    .map(str::trim)
                    .filter(|key| !key.is_empty())
                    .map(|key| SecretString::from(key.to_owned()))
                    .collect()
            })
            .unwrap_or_default();

        Ok(Config {
            hub,
            directory: AccountDirectory {
                default_company,
                accounts,
            },
            wechat,
            token_secret: non_empty(&lookup, "WXKF_TOKEN_SECRET").map(SecretString::from),
            api_keys,
            body_limit_bytes: number(&lookup, "WXKF_BODY_LIMIT_BYTES", 64 * 1024)?,
        })
    }
}

fn non_empty(lookup: &impl Fn(&str) -> Option<String>, name: &str) -> Option<String> {
    lookup(name).filter(|value| !value.trim().is_empty())
}

fn number<T: std::str::FromStr>(
    lookup: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: T,
) -> Result<T, ConfigError>
where
    T::Err: std::fmt::Display,
{
    match non_empty(lookup, name) {
        Some(value) => value
            .trim()
            .parse()
            .map_err(|error: T::Err| ConfigError::Invalid {
                name,
                reason: format!("{value:?} is not a valid number: {error}"),
            }),
        None => Ok(default),
    }
}

fn hours(
    lookup: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default_secs: i64,
) -> Result<i64, ConfigError> {
    let hours: f64 = number(lookup, name, default_secs as f64 / 3600.0)?;
    if !(hours > 0.0 && hours.is_finite()) {
        return Err(ConfigError::Invalid {
            name,
            reason: format!("must be a positive number of hours, got {hours}"),
        });
    }
    Ok((hours * 3600.0).round() as i64)
}

/// Parses `gh_abc=acme,gh_def=beta`.
fn parse_accounts(value: &str) -> Result<HashMap<AccountId, CompanyId>, ConfigError> {
    let invalid = |reason: String| ConfigError::Invalid {
        name: "WXKF_ACCOUNTS",
        reason,
    };
    let mut accounts = HashMap::new();
    for pair in value
        .split(',')
        .map(str::trim)
        .filter(|pair| !pair.is_empty())
    {
        let (account, company) = pair
            .split_once('=')
            .ok_or_else(|| invalid(format!("{pair:?} is not ACCOUNT=COMPANY")))?;
        let account = AccountId::parse(account.trim()).map_err(|e| invalid(e.to_string()))?;
        let company = CompanyId::parse(company.trim()).map_err(|e| invalid(e.to_string()))?;
        accounts.insert(account, company);
    }
    Ok(accounts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn defaults_apply_when_nothing_is_set() {
        let config = Config::from_lookup(lookup(&[])).unwrap();
        assert_eq!(config.hub.window_secs, 48 * 3600);
        assert_eq!(config.directory.default_company.as_str(), "default");
        assert_eq!(config.body_limit_bytes, 65536);
        assert!(config.api_keys.is_empty());
    }

    #[test]
    fn accounts_map_to_companies() {
        let config =
            Config::from_lookup(lookup(&[("WXKF_ACCOUNTS", "gh_a=acme, gh_b=beta")])).unwrap();
        let gh_b = AccountId::parse("gh_b").unwrap();
        let gh_x = AccountId::parse("gh_x").unwrap();
        assert_eq!(config.directory.company_of(Some(&gh_b)).as_str(), "beta");
        assert_eq!(config.directory.company_of(Some(&gh_x)).as_str(), "default");
    }

    #[test]
    fn malformed_variables_are_named() {
        let error = Config::from_lookup(lookup(&[("WXKF_WINDOW_HOURS", "soon")])).unwrap_err();
        assert!(matches!(
            error,
            ConfigError::Invalid {
                name: "WXKF_WINDOW_HOURS",
                ..
            }
        ));
        let error = Config::from_lookup(lookup(&[("WXKF_ACCOUNTS", "gh_a")])).unwrap_err();
        assert!(matches!(
            error,
            ConfigError::Invalid {
                name: "WXKF_ACCOUNTS",
                ..
            }
        ));
        let error = Config::from_lookup(lookup(&[("WXKF_WECHAT_AES_KEY", "short")])).unwrap_err();
        assert!(matches!(
            error,
            ConfigError::Invalid {
                name: "WXKF_WECHAT_AES_KEY",
                ..
            }
        ));
    }
}
