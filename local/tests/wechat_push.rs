//! WeChat's push security over real HTTP: URL verification, `signature` on every request, and
//! safe-mode encryption.

mod support;

use support::{text_xml, TestServer, BASE};
use wxkf_core::wechat::{encrypt, msg_signature, signature, AesKey};

const TOKEN: &str = "wxkf-test-token";
/// The EncodingAESKey from WeChat's sample code; its base64 has non-zero trailing bits.
const AES_KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";
const APP_ID: &str = "wx2c2769f8efd9abc2";

async fn server() -> TestServer {
    TestServer::start_with(|name| match name {
        "WXKF_WECHAT_TOKEN" => Some(TOKEN.into()),
        "WXKF_WECHAT_AES_KEY" => Some(AES_KEY.into()),
        "WXKF_WECHAT_APPID" => Some(APP_ID.into()),
        _ => None,
    })
    .await
}

#[tokio::test]
async fn url_verification_echoes_only_signed_requests() {
    let server = server().await;
    let good = signature(TOKEN, "1409659813", "1372623149");
    let url = |sig: &str| {
        server.url(&format!(
            "{BASE}/send_xml?signature={sig}&timestamp=1409659813&nonce=1372623149&echostr=2807321543961397917"
        ))
    };

    let signed = server.http.get(url(&good)).send().await.unwrap();
    let forged = server.http.get(url("0000")).send().await.unwrap();

    assert_eq!(signed.status(), 200);
    assert_eq!(signed.text().await.unwrap(), "2807321543961397917");
    assert_eq!(forged.status(), 401);
}

#[tokio::test]
async fn unsigned_push_is_rejected_when_token_is_set() {
    let server = server().await;
    let mut agent = server.agent("kf01").await;

    let response = server.post_xml(text_xml("oUser1", "1", "hi")).await;

    assert_eq!(
        response.status(),
        400,
        "a push without signature is rejected"
    );
    assert!(
        agent
            .try_next(std::time::Duration::from_millis(300))
            .await
            .is_none(),
        "nothing may reach the agent"
    );
}

#[tokio::test]
async fn encrypted_push_is_decrypted_and_delivered() {
    let server = server().await;
    let mut agent = server.agent("kf01").await;
    let key = AesKey::from_encoding_aes_key(AES_KEY).unwrap();
    let plain = text_xml("oUser1", "24523365472734781234", "加密的消息 😀");
    let encrypted = encrypt(plain.as_bytes(), &key, APP_ID, *b"0123456789abcdef");
    let (timestamp, nonce) = ("1409735669", "1320562132");
    let body = format!(
        "<xml><ToUserName><![CDATA[gh_test]]></ToUserName><Encrypt><![CDATA[{encrypted}]]></Encrypt></xml>"
    );
    let query = format!(
        "signature={}&timestamp={timestamp}&nonce={nonce}&encrypt_type=aes&msg_signature={}",
        signature(TOKEN, timestamp, nonce),
        msg_signature(TOKEN, timestamp, nonce, &encrypted)
    );

    let response = server
        .http
        .post(server.url(&format!("{BASE}/send_xml?{query}")))
        .body(body)
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "success");
    agent.next().await;
    let frame = agent.next().await;
    assert_eq!(frame["data"]["id"], "24523365472734781234");
    assert_eq!(frame["data"]["data"]["content"], "加密的消息 😀");
}
