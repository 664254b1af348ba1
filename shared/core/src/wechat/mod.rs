//! WeChat's side of the `send_xml` route: request signatures, message encryption and the
//! message XML.
//!
//! A request goes through [`open_body`] (signatures checked, the body decrypted in the safe and
//! compatible modes) and then [`parse_xml`]. WeChat's server check, a GET request, goes
//! through [`verify_url`].
//!
//! - `signature`: the SHA-1 request signatures.
//! - `crypto`: AES-256-CBC message encryption.
//! - `xml`: the reader for WeChat's flat `<xml>` documents, with `flat`, its fast path for the
//!   shape WeChat usually sends.
//! - `inbound`: message XML to [`Inbound`](crate::message::Inbound).

mod crypto;
mod flat;
mod inbound;
mod signature;
mod xml;

use std::borrow::Cow;

use secrecy::ExposeSecret;
use serde::Deserialize;

use crate::config::WechatSettings;

pub use crypto::{decrypt, encrypt, AesKey, DecryptError, InvalidAesKey};
pub use inbound::{parse_xml, Parsed};
pub use signature::{msg_signature, signature};
pub use xml::XmlError;

use signature::signatures_match;
use xml::{Field, Fields};

/// The query parameters WeChat adds to every push.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct PushQuery {
    pub signature: Option<String>,
    pub timestamp: Option<String>,
    pub nonce: Option<String>,
    /// The text to echo back when WeChat verifies the URL.
    pub echostr: Option<String>,
    /// The signature over the `Encrypt` text, in the safe and compatible modes.
    pub msg_signature: Option<String>,
    /// The body's encryption: `aes` when encrypted, absent or `raw` when plaintext.
    pub encrypt_type: Option<String>,
}

/// An error that rejects a push from WeChat.
#[derive(Debug, Clone, thiserror::Error)]
pub enum WechatError {
    #[error("missing query parameter {0}")]
    MissingParameter(&'static str),
    #[error("signature does not match the configured token")]
    SignatureMismatch,
    #[error("msg_signature does not match the configured token and the Encrypt text")]
    MsgSignatureMismatch,
    /// A setting the request needs is missing. The value names its environment variable.
    #[error("{0} is not configured")]
    NotConfigured(&'static str),
    #[error("unsupported encrypt_type {0:?}; expected aes or raw")]
    UnsupportedEncryptType(String),
    #[error(transparent)]
    InvalidAesKey(#[from] InvalidAesKey),
    #[error(transparent)]
    Decrypt(#[from] DecryptError),
    #[error(transparent)]
    Xml(#[from] XmlError),
}

/// Checks WeChat's URL verification request and returns the `echostr` to send back.
///
/// WeChat sends this GET in every mode, with a plain `signature` and no `msg_signature`, so a
/// token must be configured.
pub fn verify_url(query: &PushQuery, settings: &WechatSettings) -> Result<String, WechatError> {
    let token = settings
        .token
        .as_ref()
        .ok_or(WechatError::NotConfigured("WXKF_WECHAT_TOKEN"))?;
    let echostr = parameter(&query.echostr, "echostr")?;

    check_signature(query, token.expose_secret())?;
    Ok(echostr.to_owned())
}

/// Checks a pushed message and returns its plaintext XML for [`parse_xml`].
///
/// With a token configured, `signature` is checked on every request. With `encrypt_type=aes`
/// (the safe and compatible modes), `msg_signature` is checked and `<Encrypt>` is decrypted,
/// and the compatible mode's plaintext copy of the fields is ignored. Otherwise the body is
/// returned unchanged. Without a token, plaintext pushes are accepted unchecked.
///
/// NOTE: `timestamp` is not checked for freshness, so a captured push can be replayed. The
/// hub's deduplication drops a replay only while it remembers the original message.
pub fn open_body<'a>(
    query: &PushQuery,
    body: &'a [u8],
    settings: &WechatSettings,
) -> Result<Cow<'a, [u8]>, WechatError> {
    let encrypted = match query.encrypt_type.as_deref() {
        None | Some("") | Some("raw") => false,
        Some("aes") => true,
        Some(other) => return Err(WechatError::UnsupportedEncryptType(other.to_owned())),
    };

    if let Some(token) = &settings.token {
        check_signature(query, token.expose_secret())?;
    }
    if !encrypted {
        return Ok(Cow::Borrowed(body));
    }

    let token = settings
        .token
        .as_ref()
        .ok_or(WechatError::NotConfigured("WXKF_WECHAT_TOKEN"))?;
    let encoding_aes_key = settings
        .encoding_aes_key
        .as_ref()
        .ok_or(WechatError::NotConfigured("WXKF_WECHAT_AES_KEY"))?;
    let app_id = settings
        .app_id
        .as_deref()
        .ok_or(WechatError::NotConfigured("WXKF_WECHAT_APPID"))?;

    let fields = Fields::read(body)?;
    let encrypt = fields
        .token(Field::Encrypt)
        .ok_or(XmlError::Missing("Encrypt"))?;
    let expected = msg_signature(
        token.expose_secret(),
        parameter(&query.timestamp, "timestamp")?,
        parameter(&query.nonce, "nonce")?,
        encrypt,
    );
    if !signatures_match(&expected, parameter(&query.msg_signature, "msg_signature")?) {
        return Err(WechatError::MsgSignatureMismatch);
    }

    let key = AesKey::from_encoding_aes_key(encoding_aes_key.expose_secret())?;
    Ok(Cow::Owned(decrypt(encrypt, &key, app_id)?))
}

fn check_signature(query: &PushQuery, token: &str) -> Result<(), WechatError> {
    let received = parameter(&query.signature, "signature")?;
    let expected = signature(
        token,
        parameter(&query.timestamp, "timestamp")?,
        parameter(&query.nonce, "nonce")?,
    );
    if signatures_match(&expected, received) {
        Ok(())
    } else {
        Err(WechatError::SignatureMismatch)
    }
}

fn parameter<'q>(value: &'q Option<String>, name: &'static str) -> Result<&'q str, WechatError> {
    value
        .as_deref()
        .filter(|value| !value.is_empty())
        .ok_or(WechatError::MissingParameter(name))
}

#[cfg(test)]
mod tests {
    use secrecy::SecretString;

    use super::*;

    /// WeChat's sample of the compatible mode: plaintext fields and `Encrypt` in one body.
    const COMPATIBLE: &str = include_str!("../../tests/fixtures/wechat/encrypted_compatible.xml");
    /// WeChat's sample of the safe mode, from the WXBizMsgCrypt sample code.
    const SAFE: &str = include_str!("../../tests/fixtures/wechat/encrypted_safe.xml");

    fn settings(token: &str, aes_key: Option<&str>, app_id: Option<&str>) -> WechatSettings {
        WechatSettings {
            token: Some(SecretString::from(token)),
            encoding_aes_key: aes_key.map(SecretString::from),
            app_id: app_id.map(str::to_owned),
        }
    }

    fn compatible_settings() -> WechatSettings {
        settings(
            "spamtest",
            Some("abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"),
            Some("wx2c2769f8efd9abc2"),
        )
    }

    fn compatible_query() -> PushQuery {
        PushQuery {
            signature: Some(signature("spamtest", "1409735669", "1320562132")),
            timestamp: Some("1409735669".into()),
            nonce: Some("1320562132".into()),
            msg_signature: Some("5d197aaffba7e9b25a30732f161a50dee96bd5fa".into()),
            encrypt_type: Some("aes".into()),
            echostr: None,
        }
    }

    fn plain_query(token: &str, timestamp: &str, nonce: &str) -> PushQuery {
        PushQuery {
            signature: Some(signature(token, timestamp, nonce)),
            timestamp: Some(timestamp.into()),
            nonce: Some(nonce.into()),
            ..PushQuery::default()
        }
    }

    #[test]
    fn verify_url_returns_echostr() {
        let query = PushQuery {
            echostr: Some("4075181314397890557".into()),
            ..plain_query("test", "1410685589", "test")
        };
        assert_eq!(
            query.signature.as_deref(),
            Some("f21891de399b4e33a1a93c9a7b8a8fffb5a443ff")
        );
        let echoed = verify_url(&query, &settings("test", None, None)).unwrap();
        assert_eq!(echoed, "4075181314397890557");
    }

    #[test]
    fn verify_url_rejects_a_wrong_signature() {
        let query = PushQuery {
            echostr: Some("hello".into()),
            signature: Some("f21891de399b4e33a1a93c9a7b8a8fffb5a443fe".into()),
            ..plain_query("test", "1410685589", "test")
        };
        let error = verify_url(&query, &settings("test", None, None)).unwrap_err();
        assert!(matches!(error, WechatError::SignatureMismatch), "{error:?}");
    }

    #[test]
    fn verify_url_needs_token_and_parameters() {
        let query = PushQuery {
            echostr: Some("hello".into()),
            ..plain_query("test", "1410685589", "test")
        };
        let error = verify_url(&query, &WechatSettings::default()).unwrap_err();
        assert!(
            matches!(error, WechatError::NotConfigured("WXKF_WECHAT_TOKEN")),
            "{error:?}"
        );

        let without_echostr = plain_query("test", "1410685589", "test");
        let error = verify_url(&without_echostr, &settings("test", None, None)).unwrap_err();
        assert!(
            matches!(error, WechatError::MissingParameter("echostr")),
            "{error:?}"
        );

        let without_nonce = PushQuery {
            nonce: None,
            ..query
        };
        let error = verify_url(&without_nonce, &settings("test", None, None)).unwrap_err();
        assert!(
            matches!(error, WechatError::MissingParameter("nonce")),
            "{error:?}"
        );
    }

    #[test]
    fn signature_sorts_timestamp_and_nonce_as_strings() {
        // As strings "1372623149" < "1409659813", and "10" < "9" although 10 > 9.
        for (timestamp, nonce) in [("1409659813", "1372623149"), ("9", "10")] {
            let query = PushQuery {
                signature: Some(sorted_sha1(&["tok", timestamp, nonce])),
                timestamp: Some(timestamp.into()),
                nonce: Some(nonce.into()),
                echostr: Some("ok".into()),
                ..PushQuery::default()
            };
            assert_eq!(
                verify_url(&query, &settings("tok", None, None)).unwrap(),
                "ok",
                "timestamp {timestamp}, nonce {nonce}"
            );
        }
    }

    /// Computes the SHA-1 of the byte-sorted parts with the `sha1` crate directly, as an
    /// independent check of `signature`.
    fn sorted_sha1(parts: &[&str]) -> String {
        use sha1::{Digest, Sha1};
        let mut parts = parts.to_vec();
        parts.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        hex::encode(Sha1::digest(parts.concat()))
    }

    #[test]
    fn plain_body_is_borrowed_unchanged() {
        let body = b"<xml><MsgType>text</MsgType></xml>";
        let query = plain_query("tok", "1", "2");
        let opened = open_body(&query, body, &settings("tok", None, None)).unwrap();
        assert!(matches!(opened, Cow::Borrowed(_)));
        assert_eq!(&*opened, body);
    }

    #[test]
    fn plain_body_without_token_is_not_checked() {
        let body = b"<xml/>";
        let opened = open_body(&PushQuery::default(), body, &WechatSettings::default()).unwrap();
        assert_eq!(&*opened, body);
    }

    #[test]
    fn plain_body_needs_a_right_signature() {
        let body = b"<xml/>";
        let wrong = PushQuery {
            signature: Some(signature("other", "1", "2")),
            ..plain_query("tok", "1", "2")
        };
        let error = open_body(&wrong, body, &settings("tok", None, None)).unwrap_err();
        assert!(matches!(error, WechatError::SignatureMismatch), "{error:?}");

        let unsigned = PushQuery::default();
        let error = open_body(&unsigned, body, &settings("tok", None, None)).unwrap_err();
        assert!(
            matches!(error, WechatError::MissingParameter("signature")),
            "{error:?}"
        );
    }

    #[test]
    fn compatible_mode_sample_decrypts() {
        let opened = open_body(
            &compatible_query(),
            COMPATIBLE.as_bytes(),
            &compatible_settings(),
        )
        .unwrap();
        assert_eq!(
            std::str::from_utf8(&opened).unwrap(),
            "<xml><ToUserName><![CDATA[gh_10f6c3c3ac5a]]></ToUserName>\n\
             <FromUserName><![CDATA[oyORnuP8q7ou2gfYjqLzSIWZf0rs]]></FromUserName>\n\
             <CreateTime>1409735668</CreateTime>\n\
             <MsgType><![CDATA[text]]></MsgType>\n\
             <Content><![CDATA[abcdteT]]></Content>\n\
             <MsgId>6054768590064713728</MsgId>\n\
             </xml>"
        );
    }

    #[test]
    fn safe_mode_sample_decrypts() {
        let query = PushQuery {
            signature: Some(signature("QDG6eK", "1409659813", "1372623149")),
            timestamp: Some("1409659813".into()),
            nonce: Some("1372623149".into()),
            msg_signature: Some("477715d11cdb4164915debcba66cb864d751f3e6".into()),
            encrypt_type: Some("aes".into()),
            echostr: None,
        };
        let settings = settings(
            "QDG6eK",
            Some("jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"),
            Some("wx5823bf96d3bd56c7"),
        );
        let opened = open_body(&query, SAFE.as_bytes(), &settings).unwrap();
        let text = std::str::from_utf8(&opened).unwrap();
        assert!(
            text.starts_with("<xml><ToUserName><![CDATA[wx5823bf96d3bd56c7]]></ToUserName>"),
            "{text}"
        );
        assert!(
            text.contains("<Content><![CDATA[hello]]></Content>"),
            "{text}"
        );
        assert!(
            text.contains("<MsgId>4561255354251345929</MsgId>"),
            "{text}"
        );
        assert!(text.ends_with("</xml>"), "{text}");
    }

    #[test]
    fn wrong_msg_signature_is_rejected() {
        let query = PushQuery {
            msg_signature: Some("5d197aaffba7e9b25a30732f161a50dee96bd5fb".into()),
            ..compatible_query()
        };
        let error = open_body(&query, COMPATIBLE.as_bytes(), &compatible_settings()).unwrap_err();
        assert!(
            matches!(error, WechatError::MsgSignatureMismatch),
            "{error:?}"
        );
    }

    #[test]
    fn plain_signature_does_not_pass_as_msg_signature() {
        let query = PushQuery {
            msg_signature: compatible_query().signature,
            ..compatible_query()
        };
        let error = open_body(&query, COMPATIBLE.as_bytes(), &compatible_settings()).unwrap_err();
        assert!(
            matches!(error, WechatError::MsgSignatureMismatch),
            "{error:?}"
        );
    }

    #[test]
    fn encrypted_body_needs_key_and_app_id() {
        let without_key = settings("spamtest", None, Some("wx2c2769f8efd9abc2"));
        let error =
            open_body(&compatible_query(), COMPATIBLE.as_bytes(), &without_key).unwrap_err();
        assert!(
            matches!(error, WechatError::NotConfigured("WXKF_WECHAT_AES_KEY")),
            "{error:?}"
        );

        let without_app_id = settings(
            "spamtest",
            Some("abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"),
            None,
        );
        let error =
            open_body(&compatible_query(), COMPATIBLE.as_bytes(), &without_app_id).unwrap_err();
        assert!(
            matches!(error, WechatError::NotConfigured("WXKF_WECHAT_APPID")),
            "{error:?}"
        );
    }

    #[test]
    fn encrypted_body_for_another_app_is_rejected() {
        let mut other_app = compatible_settings();
        other_app.app_id = Some("wx0000000000000000".into());
        let error = open_body(&compatible_query(), COMPATIBLE.as_bytes(), &other_app).unwrap_err();
        assert!(
            matches!(
                error,
                WechatError::Decrypt(DecryptError::AppIdMismatch { .. })
            ),
            "{error:?}"
        );
    }

    #[test]
    fn encrypted_body_without_encrypt_is_rejected() {
        let body = b"<xml><ToUserName>gh_1</ToUserName></xml>";
        let error = open_body(&compatible_query(), body, &compatible_settings()).unwrap_err();
        assert!(
            matches!(error, WechatError::Xml(XmlError::Missing("Encrypt"))),
            "{error:?}"
        );
        assert_eq!(error.to_string(), "missing Encrypt");
    }

    #[test]
    fn encrypt_round_trips_through_open_body() {
        let settings = compatible_settings();
        let key =
            AesKey::from_encoding_aes_key("abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG").unwrap();
        let message = "<xml><Content><![CDATA[你好 😀]]></Content></xml>";
        let encrypted = encrypt(message.as_bytes(), &key, "wx2c2769f8efd9abc2", [9; 16]);
        let body = format!("<xml><ToUserName><![CDATA[gh_1]]></ToUserName><Encrypt><![CDATA[{encrypted}]]></Encrypt></xml>");
        let query = PushQuery {
            msg_signature: Some(msg_signature(
                "spamtest",
                "1409735669",
                "1320562132",
                &encrypted,
            )),
            ..compatible_query()
        };
        let opened = open_body(&query, body.as_bytes(), &settings).unwrap();
        assert_eq!(&*opened, message.as_bytes());
    }

    #[test]
    fn unknown_encrypt_type_is_rejected() {
        let query = PushQuery {
            encrypt_type: Some("sm4".into()),
            ..compatible_query()
        };
        let error = open_body(&query, COMPATIBLE.as_bytes(), &compatible_settings()).unwrap_err();
        assert!(
            matches!(error, WechatError::UnsupportedEncryptType(ref kind) if kind == "sm4"),
            "{error:?}"
        );
    }

    #[test]
    fn push_query_reads_from_a_query_string_shape() {
        let query: PushQuery = serde_json::from_str(
            r#"{"signature":"s","timestamp":"1","nonce":"2","encrypt_type":"aes","msg_signature":"m","openid":"o"}"#,
        )
        .unwrap();
        assert_eq!(query.encrypt_type.as_deref(), Some("aes"));
        assert_eq!(query.msg_signature.as_deref(), Some("m"));
        assert_eq!(query.echostr, None);
    }
}
