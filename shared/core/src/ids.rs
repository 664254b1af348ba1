//! Identifiers, parsed once at the edge so that deeper code never takes a bare `String` id.
//!
//! Each id keeps the exact text it arrived with: a WeChat MsgId stays its decimal digits (it
//! exceeds 2^53, so it never passes through a float) and an API Gateway connection id keeps its
//! `=` padding.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Why an id was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("{kind} is empty")]
    Empty { kind: &'static str },
    #[error("{kind} is longer than {max} bytes")]
    TooLong { kind: &'static str, max: usize },
    #[error("{kind} contains a control character or whitespace")]
    InvalidCharacter { kind: &'static str },
}

fn check(kind: &'static str, value: &str, max: usize) -> Result<(), IdError> {
    if value.is_empty() {
        return Err(IdError::Empty { kind });
    }
    if value.len() > max {
        return Err(IdError::TooLong { kind, max });
    }
    // Ids are nearly always printable ASCII, which one vectorisable byte check accepts. Anything
    // else takes the Unicode check, which also rejects non-ASCII spaces and controls.
    let printable_ascii = value.bytes().all(|b| b > b' ' && b < 0x7f);
    let invalid = !printable_ascii && value.chars().any(|c| c.is_control() || c.is_whitespace());
    if invalid {
        return Err(IdError::InvalidCharacter { kind });
    }
    Ok(())
}

macro_rules! text_id {
    ($(#[$doc:meta])* $name:ident, $kind:literal, $max:literal) => {
        text_id!($(#[$doc])* $name, $kind, $max, String);
    };
    ($(#[$doc:meta])* $name:ident, $kind:literal, $max:literal, $storage:ty) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name($storage);

        impl $name {
            /// Parses an id, rejecting empty, oversized or whitespace-carrying text.
            pub fn parse(value: impl Into<String>) -> Result<Self, IdError> {
                let value = value.into();
                check($kind, &value, $max)?;
                Ok(Self(value.into()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(value: String) -> Result<Self, IdError> {
                Self::parse(value)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.as_str().to_owned()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

text_id!(
    /// A WeChat user's OpenID: the contact, unique per official account.
    OpenId,
    "contact_id",
    128
);
text_id!(
    /// A customer-service agent's id, as passed in `userid` and signed into its token.
    AgentId,
    "userid",
    128
);
text_id!(
    /// The business that owns an official account. Shared rather than copied, because every
    /// inbound message clones its account's company from the configuration.
    CompanyId,
    "company_id",
    128,
    std::sync::Arc<str>
);
text_id!(
    /// One WebSocket connection; API Gateway's ids look like `TWegAcC4EowCHnA=`.
    ConnectionId,
    "connection id",
    128
);
text_id!(
    /// A message id: a WeChat MsgId kept as its decimal digits, an upstream caller's own id, or
    /// one the hub generated.
    MessageId,
    "id",
    128
);
text_id!(
    /// An official account's original id (`gh_…`), WeChat's `ToUserName`.
    AccountId,
    "ToUserName",
    128
);

/// A position in one agent's frame stream. Every stored frame gets the next one; clients resume
/// with `last_seq`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Seq(pub u64);

impl fmt::Display for Seq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The id of the pseudo contact that system frames come from.
pub const SYSTEM_CONTACT_ID: &str = "system01";

impl MessageId {
    /// Generates an id for a message or event that arrived without one: `wx` and 24 random hex
    /// digits, which never collides with WeChat's all-digit MsgIds.
    pub fn generate() -> MessageId {
        let bytes: [u8; 12] = rand::random();
        MessageId(format!("wx{}", hex::encode(bytes)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn msg_id_keeps_digits_beyond_f64_precision() {
        let id = MessageId::parse("24523365472734781234").unwrap();
        assert_eq!(id.as_str(), "24523365472734781234");
        assert_eq!(
            serde_json::to_string(&id).unwrap(),
            "\"24523365472734781234\""
        );
    }

    #[test]
    fn connection_id_keeps_padding() {
        let id = ConnectionId::parse("TWegAcC4EowCHnA=").unwrap();
        assert_eq!(id.to_string(), "TWegAcC4EowCHnA=");
    }

    #[test]
    fn empty_and_spaced_ids_are_rejected() {
        assert_eq!(
            OpenId::parse("").unwrap_err(),
            IdError::Empty { kind: "contact_id" }
        );
        assert_eq!(
            AgentId::parse("a b").unwrap_err(),
            IdError::InvalidCharacter { kind: "userid" }
        );
        assert_eq!(
            OpenId::parse("x".repeat(129)).unwrap_err(),
            IdError::TooLong {
                kind: "contact_id",
                max: 128
            }
        );
    }
}
