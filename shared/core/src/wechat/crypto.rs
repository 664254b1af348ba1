//! WeChat's message encryption for the safe and compatible modes.
//!
//! AES-256-CBC with the key decoded from the 43-character EncodingAESKey and the first 16 key
//! bytes as the IV. The plaintext is 16 random bytes, the message length as 4 bytes big-endian,
//! the message, then the AppID, with PKCS#7 padding to 32-byte blocks (WeChat pads to 32, not
//! to AES's 16). The result travels as standard base64 in `<Encrypt>`.

use aes::cipher::block_padding::NoPadding;
use aes::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use secrecy::{ExposeSecret, SecretBox};

/// WeChat's padding block size.
const PAD_BLOCK: usize = 32;
/// The random prefix and the length field before the message.
const HEADER_LEN: usize = 16 + 4;

/// Standard base64 that accepts non-zero trailing bits and optional padding. EncodingAESKeys
/// often end in a character that carries such bits (WeChat's own sample key does), and strict
/// decoders reject those keys.
const LENIENT_BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// The configured EncodingAESKey cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("EncodingAESKey must be 43 base64 characters that decode to 32 bytes")]
pub struct InvalidAesKey;

/// A failure to open an `Encrypt` value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecryptError {
    #[error("Encrypt is not valid base64")]
    InvalidBase64,
    #[error("encrypted message is {0} bytes, expected a positive multiple of 16")]
    InvalidLength(usize),
    #[error("decrypted message has invalid PKCS#7 padding")]
    InvalidPadding,
    #[error("decrypted message is {0} bytes, shorter than its 20-byte header")]
    TooShort(usize),
    #[error("decrypted message declares {declared} bytes but only {available} follow the header")]
    LengthOutOfRange { declared: u32, available: usize },
    #[error("decrypted message is for AppID {found:?}, expected {expected:?}")]
    AppIdMismatch { expected: String, found: String },
}

/// The 32-byte AES key behind an EncodingAESKey, zeroed when dropped.
#[derive(Debug)]
pub struct AesKey(SecretBox<[u8; 32]>);

impl AesKey {
    /// Decodes the 43-character EncodingAESKey from WeChat's console.
    pub fn from_encoding_aes_key(encoding_aes_key: &str) -> Result<AesKey, InvalidAesKey> {
        if encoding_aes_key.len() != 43 {
            return Err(InvalidAesKey);
        }
        let decoded = LENIENT_BASE64
            .decode(encoding_aes_key)
            .map_err(|_| InvalidAesKey)?;
        let key: [u8; 32] = decoded.as_slice().try_into().map_err(|_| InvalidAesKey)?;
        Ok(AesKey(SecretBox::new(Box::new(key))))
    }

    fn key_and_iv(&self) -> (&[u8; 32], [u8; 16]) {
        let key = self.0.expose_secret();
        let mut iv = [0; 16];
        iv.copy_from_slice(&key[..16]);
        (key, iv)
    }
}

/// Encrypts a message as WeChat does and returns the base64 text for `<Encrypt>`.
///
/// `random` is the 16-byte prefix. Pass fresh random bytes except in tests.
///
/// # Panics
///
/// If `plaintext` is 4 GiB or longer, which the 4-byte length field cannot express.
pub fn encrypt(plaintext: &[u8], key: &AesKey, app_id: &str, random: [u8; 16]) -> String {
    let length = u32::try_from(plaintext.len()).expect("a WeChat message is shorter than 4 GiB");

    let content_len = HEADER_LEN + plaintext.len() + app_id.len();
    let pad = PAD_BLOCK - content_len % PAD_BLOCK;
    let mut buffer = Vec::with_capacity(content_len + pad);
    buffer.extend_from_slice(&random);
    buffer.extend_from_slice(&length.to_be_bytes());
    buffer.extend_from_slice(plaintext);
    buffer.extend_from_slice(app_id.as_bytes());
    // `pad` is 1..=32, so it fits in the byte PKCS#7 repeats.
    buffer.resize(content_len + pad, pad as u8);

    let (key, iv) = key.key_and_iv();
    let buffer_len = buffer.len();
    let ciphertext = cbc::Encryptor::<aes::Aes256>::new(key.into(), &iv.into())
        .encrypt_padded_mut::<NoPadding>(&mut buffer, buffer_len)
        .expect("the buffer is padded to a multiple of the AES block size");
    LENIENT_BASE64.encode(ciphertext)
}

/// Decrypts the base64 text of `<Encrypt>` and returns the message, after checking that it
/// ends with `app_id`.
pub fn decrypt(encrypted: &str, key: &AesKey, app_id: &str) -> Result<Vec<u8>, DecryptError> {
    let mut buffer = LENIENT_BASE64
        .decode(encrypted.trim())
        .map_err(|_| DecryptError::InvalidBase64)?;
    if buffer.is_empty() || buffer.len() % 16 != 0 {
        return Err(DecryptError::InvalidLength(buffer.len()));
    }

    let (aes_key, iv) = key.key_and_iv();
    let ciphertext_len = buffer.len();
    cbc::Decryptor::<aes::Aes256>::new(aes_key.into(), &iv.into())
        .decrypt_padded_mut::<NoPadding>(&mut buffer)
        .map_err(|_| DecryptError::InvalidLength(ciphertext_len))?;

    let content_len = unpadded_len(&buffer)?;
    let content = &buffer[..content_len];
    if content.len() < HEADER_LEN {
        return Err(DecryptError::TooShort(content.len()));
    }
    let declared = u32::from_be_bytes([content[16], content[17], content[18], content[19]]);
    let available = content.len() - HEADER_LEN;
    let message_end = usize::try_from(declared)
        .ok()
        .filter(|&declared| declared <= available)
        .map(|declared| HEADER_LEN + declared)
        .ok_or(DecryptError::LengthOutOfRange {
            declared,
            available,
        })?;

    let found_app_id = &content[message_end..];
    if found_app_id != app_id.as_bytes() {
        return Err(DecryptError::AppIdMismatch {
            expected: app_id.to_owned(),
            found: String::from_utf8_lossy(found_app_id).into_owned(),
        });
    }

    buffer.truncate(message_end);
    buffer.drain(..HEADER_LEN);
    Ok(buffer)
}

/// Returns the length without PKCS#7 padding, whose value WeChat keeps in 1..=32.
fn unpadded_len(decrypted: &[u8]) -> Result<usize, DecryptError> {
    let pad = usize::from(*decrypted.last().ok_or(DecryptError::InvalidPadding)?);
    if pad == 0 || pad > PAD_BLOCK || pad > decrypted.len() {
        return Err(DecryptError::InvalidPadding);
    }
    let content_len = decrypted.len() - pad;
    if decrypted[content_len..]
        .iter()
        .any(|&byte| usize::from(byte) != pad)
    {
        return Err(DecryptError::InvalidPadding);
    }
    Ok(content_len)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The EncodingAESKey of WeChat's sample code. Its last character, `G`, carries non-zero
    /// trailing bits.
    const SAMPLE_KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";
    const SAMPLE_APP_ID: &str = "wxb11529c136998cb6";

    fn sample_key() -> AesKey {
        AesKey::from_encoding_aes_key(SAMPLE_KEY).expect("the sample key should decode")
    }

    /// Encrypts raw bytes that are already padded, to build malformed plaintexts.
    fn encrypt_raw(key: &AesKey, mut padded: Vec<u8>) -> String {
        let (key, iv) = key.key_and_iv();
        let len = padded.len();
        let ciphertext = cbc::Encryptor::<aes::Aes256>::new(key.into(), &iv.into())
            .encrypt_padded_mut::<NoPadding>(&mut padded, len)
            .unwrap()
            .to_vec();
        LENIENT_BASE64.encode(ciphertext)
    }

    #[test]
    fn key_with_trailing_bits_decodes() {
        let key = sample_key();
        // python3 -c 'import base64; print(base64.b64decode(KEY + "=").hex())'
        assert_eq!(
            hex::encode(key.0.expose_secret()),
            "69b71d79f8218a39259a7a29aabb2dbafc31cb3d35db7e39ebbf3d0010831051"
        );
    }

    #[test]
    fn key_of_wrong_length_or_alphabet_is_rejected() {
        assert_eq!(
            AesKey::from_encoding_aes_key("short").unwrap_err(),
            InvalidAesKey
        );
        assert_eq!(
            AesKey::from_encoding_aes_key("abcdefghijklmnopqrstuvwxyz0123456789ABCDEF!")
                .unwrap_err(),
            InvalidAesKey
        );
    }

    #[test]
    fn encrypt_matches_wechat_sample() {
        // WeChat's Java sample encrypts this text with random prefix "aaaabbbbccccdddd".
        let encrypted = encrypt(
            "我是中文abcd123".as_bytes(),
            &sample_key(),
            SAMPLE_APP_ID,
            *b"aaaabbbbccccdddd",
        );
        assert_eq!(
            encrypted,
            "jn1L23DB+6ELqJ+6bruv21Y6MD7KeIfP82D6gU39rmkgczbWwt5+3bnyg5K55bgVtVzd832WzZGMhkP72vVOfg=="
        );
    }

    #[test]
    fn decrypt_reverses_encrypt() {
        let key = sample_key();
        for length in [0, 1, 11, 12, 13, 44, 45, 1000] {
            let message = vec![b'x'; length];
            let encrypted = encrypt(&message, &key, SAMPLE_APP_ID, [7; 16]);
            assert_eq!(
                decrypt(&encrypted, &key, SAMPLE_APP_ID),
                Ok(message),
                "round trip of a {length}-byte message"
            );
        }
    }

    #[test]
    fn ciphertext_is_padded_to_32_byte_blocks() {
        // 20 header bytes, 0 message bytes and 18 AppID bytes need 26 bytes of padding.
        let encrypted = encrypt(b"", &sample_key(), SAMPLE_APP_ID, [0; 16]);
        let ciphertext = LENIENT_BASE64.decode(encrypted).unwrap();
        assert_eq!(ciphertext.len(), 64);
    }

    #[test]
    fn wrong_app_id_is_rejected() {
        let key = sample_key();
        let encrypted = encrypt(b"<xml/>", &key, "wxother", [1; 16]);
        assert_eq!(
            decrypt(&encrypted, &key, SAMPLE_APP_ID),
            Err(DecryptError::AppIdMismatch {
                expected: SAMPLE_APP_ID.to_owned(),
                found: "wxother".to_owned(),
            })
        );
    }

    #[test]
    fn tampered_ciphertext_is_rejected() {
        let key = sample_key();
        let encrypted = encrypt(b"<xml>hello</xml>", &key, SAMPLE_APP_ID, [1; 16]);
        let mut ciphertext = LENIENT_BASE64.decode(&encrypted).unwrap();
        let last = ciphertext.len() - 1;
        ciphertext[last] ^= 0x55;
        let tampered = LENIENT_BASE64.encode(&ciphertext);
        assert!(
            decrypt(&tampered, &key, SAMPLE_APP_ID).is_err(),
            "a changed last block must not decrypt cleanly"
        );
    }

    #[test]
    fn malformed_ciphertext_is_named() {
        let key = sample_key();
        assert_eq!(
            decrypt("not base64!", &key, SAMPLE_APP_ID),
            Err(DecryptError::InvalidBase64)
        );
        assert_eq!(
            decrypt("", &key, SAMPLE_APP_ID),
            Err(DecryptError::InvalidLength(0))
        );
        assert_eq!(
            decrypt(&LENIENT_BASE64.encode([0u8; 20]), &key, SAMPLE_APP_ID),
            Err(DecryptError::InvalidLength(20))
        );
    }

    #[test]
    fn bad_padding_is_rejected() {
        let key = sample_key();
        let mut zero_pad = vec![b'a'; 32];
        zero_pad[31] = 0;
        let mut over_32 = vec![33u8; 64];
        over_32[0] = b'a';
        let mut uneven = vec![4u8; 32];
        uneven[29] = 3;
        for (name, padded) in [("zero", zero_pad), ("33", over_32), ("uneven", uneven)] {
            assert_eq!(
                decrypt(&encrypt_raw(&key, padded), &key, SAMPLE_APP_ID),
                Err(DecryptError::InvalidPadding),
                "padding case {name}"
            );
        }
    }

    #[test]
    fn length_field_beyond_the_data_is_rejected() {
        let key = sample_key();
        let mut plaintext = vec![0u8; 16];
        plaintext.extend_from_slice(&1000u32.to_be_bytes());
        plaintext.extend_from_slice(b"short");
        let pad = 32 - plaintext.len() % 32;
        plaintext.resize(plaintext.len() + pad, pad as u8);
        assert_eq!(
            decrypt(&encrypt_raw(&key, plaintext), &key, SAMPLE_APP_ID),
            Err(DecryptError::LengthOutOfRange {
                declared: 1000,
                available: 5
            })
        );
    }

    #[test]
    fn plaintext_shorter_than_header_is_rejected() {
        let key = sample_key();
        let mut plaintext = vec![0u8; 10];
        plaintext.resize(32, 22);
        assert_eq!(
            decrypt(&encrypt_raw(&key, plaintext), &key, SAMPLE_APP_ID),
            Err(DecryptError::TooShort(10))
        );
    }
}
