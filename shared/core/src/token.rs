//! Agent tokens and API keys.
//!
//! An agent token is `v1.EXPIRY.COMPANY.AGENT.MAC`: the expiry in Unix seconds, the company and
//! agent ids in unpadded base64url, and an HMAC-SHA256 over all three under the server secret.
//! The hub checks the MAC in constant time and that the agent matches the socket's `userid`.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::ids::{AgentId, CompanyId};
use crate::time::Timestamp;

type HmacSha256 = Hmac<Sha256>;

/// Why a token was rejected. The socket is refused with 401 for all of them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("token is missing")]
    Missing,
    #[error("token is malformed")]
    Malformed,
    #[error("token signature is invalid")]
    BadSignature,
    #[error("token expired")]
    Expired,
    #[error("token was issued for another agent")]
    WrongAgent,
}

/// What a valid token proves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentClaims {
    pub agent: AgentId,
    pub company: CompanyId,
    pub expires_at: Timestamp,
}

/// Mints and verifies agent tokens with one server secret.
#[derive(Clone)]
pub struct TokenSigner {
    secret: SecretString,
}

impl std::fmt::Debug for TokenSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenSigner { secret: [redacted] }")
    }
}

impl TokenSigner {
    pub fn new(secret: SecretString) -> Self {
        Self { secret }
    }

    fn mac(&self, expiry_secs: i64, company: &str, agent: &str) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(self.secret.expose_secret().as_bytes())
            .expect("HMAC accepts keys of any length");
        mac.update(format!("v1\n{expiry_secs}\n").as_bytes());
        mac.update(company.as_bytes());
        mac.update(b"\n");
        mac.update(agent.as_bytes());
        mac
    }

    pub fn mint(&self, agent: &AgentId, company: &CompanyId, expires_at: Timestamp) -> String {
        let expiry = expires_at.as_secs();
        let tag = self
            .mac(expiry, company.as_str(), agent.as_str())
            .finalize()
            .into_bytes();
        format!(
            "v1.{expiry}.{}.{}.{}",
            URL_SAFE_NO_PAD.encode(company.as_str()),
            URL_SAFE_NO_PAD.encode(agent.as_str()),
            URL_SAFE_NO_PAD.encode(tag)
        )
    }

    /// Verifies `token` for the agent named in the socket URL.
    pub fn verify(
        &self,
        token: &str,
        userid: &AgentId,
        now: Timestamp,
    ) -> Result<AgentClaims, TokenError> {
        if token.is_empty() {
            return Err(TokenError::Missing);
        }
        let mut parts = token.split('.');
        let (Some("v1"), Some(expiry), Some(company), Some(agent), Some(tag), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(TokenError::Malformed);
        };
        let expiry: i64 = expiry.parse().map_err(|_| TokenError::Malformed)?;
        let company = decode_text(company)?;
        let agent = decode_text(agent)?;
        let tag = URL_SAFE_NO_PAD
            .decode(tag)
            .map_err(|_| TokenError::Malformed)?;

        self.mac(expiry, &company, &agent)
            .verify_slice(&tag)
            .map_err(|_| TokenError::BadSignature)?;
        if Timestamp::from_secs(expiry) <= now {
            return Err(TokenError::Expired);
        }
        let agent = AgentId::parse(agent).map_err(|_| TokenError::Malformed)?;
        if &agent != userid {
            return Err(TokenError::WrongAgent);
        }
        Ok(AgentClaims {
            agent,
            company: CompanyId::parse(company).map_err(|_| TokenError::Malformed)?,
            expires_at: Timestamp::from_secs(expiry),
        })
    }
}

fn decode_text(part: &str) -> Result<String, TokenError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| TokenError::Malformed)?;
    String::from_utf8(bytes).map_err(|_| TokenError::Malformed)
}

/// The API keys accepted on the JSON `send` route.
#[derive(Clone, Default)]
pub struct ApiKeys {
    /// SHA-256 digests, so that comparison time does not depend on a key's length or content.
    digests: Vec<[u8; 32]>,
}

impl std::fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ApiKeys({} keys)", self.digests.len())
    }
}

impl ApiKeys {
    pub fn new(keys: &[SecretString]) -> Self {
        Self {
            digests: keys
                .iter()
                .map(|key| Sha256::digest(key.expose_secret().as_bytes()).into())
                .collect(),
        }
    }

    /// Checks an `Authorization` header value of the form `Bearer KEY`.
    pub fn accepts_header(&self, header: Option<&str>) -> bool {
        let Some(key) = header.and_then(|value| value.strip_prefix("Bearer ")) else {
            return false;
        };
        let digest: [u8; 32] = Sha256::digest(key.trim().as_bytes()).into();
        let mut matched = subtle::Choice::from(0);
        for known in &self.digests {
            matched |= known.ct_eq(&digest);
        }
        matched.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer() -> TokenSigner {
        TokenSigner::new(SecretString::from("test-secret"))
    }

    fn agent(id: &str) -> AgentId {
        AgentId::parse(id).unwrap()
    }

    #[test]
    fn minted_token_verifies_for_its_agent() {
        let company = CompanyId::parse("acme").unwrap();
        let token = signer().mint(&agent("kf01"), &company, Timestamp::from_secs(2_000));
        let claims = signer()
            .verify(&token, &agent("kf01"), Timestamp::from_secs(1_000))
            .unwrap();
        assert_eq!(claims.company, company);
        assert_eq!(claims.agent, agent("kf01"));
    }

    #[test]
    fn token_rejections_are_distinguished() {
        let company = CompanyId::parse("acme").unwrap();
        let token = signer().mint(&agent("kf01"), &company, Timestamp::from_secs(2_000));
        let now = Timestamp::from_secs(1_000);

        assert_eq!(
            signer().verify(&token, &agent("kf02"), now),
            Err(TokenError::WrongAgent)
        );
        assert_eq!(
            signer().verify(&token, &agent("kf01"), Timestamp::from_secs(2_000)),
            Err(TokenError::Expired)
        );
        let other = TokenSigner::new(SecretString::from("other-secret"));
        assert_eq!(
            other.verify(&token, &agent("kf01"), now),
            Err(TokenError::BadSignature)
        );
        let forged = token.replacen("v1.2000.", "v1.9999.", 1);
        assert_eq!(
            signer().verify(&forged, &agent("kf01"), now),
            Err(TokenError::BadSignature)
        );
        assert_eq!(
            signer().verify("garbage", &agent("kf01"), now),
            Err(TokenError::Malformed)
        );
        assert_eq!(
            signer().verify("", &agent("kf01"), now),
            Err(TokenError::Missing)
        );
    }

    #[test]
    fn api_key_needs_bearer_and_a_known_key() {
        let keys = ApiKeys::new(&[SecretString::from("k1"), SecretString::from("k2")]);
        assert!(keys.accepts_header(Some("Bearer k2")));
        assert!(!keys.accepts_header(Some("Bearer k3")));
        assert!(!keys.accepts_header(Some("k1")));
        assert!(!keys.accepts_header(None));
        assert!(!ApiKeys::default().accepts_header(Some("Bearer ")));
    }
}
