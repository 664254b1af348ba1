//! WeChat's request signatures: the SHA-1 of the inputs sorted as strings and joined.
//!
//! The inputs are sorted byte by byte, never as numbers, so timestamp `"9"` sorts after nonce
//! `"10"`. `signature` covers the token, timestamp and nonce and comes with every request;
//! `msg_signature` also covers the `Encrypt` text and comes only in the encrypted modes.

use sha1::{Digest, Sha1};
use subtle::ConstantTimeEq;

/// Computes the `signature` query parameter WeChat sends with every request.
pub fn signature(token: &str, timestamp: &str, nonce: &str) -> String {
    sha1_of_sorted(&mut [token, timestamp, nonce])
}

/// Computes the `msg_signature` query parameter of an encrypted message.
pub fn msg_signature(token: &str, timestamp: &str, nonce: &str, encrypt: &str) -> String {
    sha1_of_sorted(&mut [token, timestamp, nonce, encrypt])
}

/// Compares a received signature with the expected one in constant time, so that response
/// timing does not reveal how many leading characters were right.
pub(crate) fn signatures_match(expected: &str, received: &str) -> bool {
    expected.as_bytes().ct_eq(received.as_bytes()).into()
}

fn sha1_of_sorted(parts: &mut [&str]) -> String {
    parts.sort_unstable();
    let mut hasher = Sha1::new();
    for part in parts.iter() {
        hasher.update(part.as_bytes());
    }
    hex::encode(hasher.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_known_answer() {
        // printf 1410685589testtest | sha1sum
        assert_eq!(
            signature("test", "1410685589", "test"),
            "f21891de399b4e33a1a93c9a7b8a8fffb5a443ff"
        );
    }

    #[test]
    fn signature_sorts_as_strings_not_numbers() {
        // Byte order puts "10" before "9", while numeric order would give "910tok".
        // printf 109tok | sha1sum
        assert_eq!(
            signature("tok", "9", "10"),
            "59ecfd8262ae7e11477209ad564f63ef30926f7a"
        );
        assert_eq!(signature("tok", "9", "10"), signature("tok", "10", "9"));
    }

    #[test]
    fn msg_signature_covers_encrypt() {
        // printf 13726231491409659813QDG6eKc2VjcmV0 | sha1sum
        assert_eq!(
            msg_signature("QDG6eK", "1409659813", "1372623149", "c2VjcmV0"),
            "e4f1419dcd3b4a5c654f4c09cfd7857fa3aaa9fb"
        );
    }

    #[test]
    fn signatures_match_only_when_equal() {
        let expected = signature("test", "1410685589", "test");
        assert!(signatures_match(
            &expected,
            "f21891de399b4e33a1a93c9a7b8a8fffb5a443ff"
        ));
        assert!(!signatures_match(
            &expected,
            "f21891de399b4e33a1a93c9a7b8a8fffb5a443fe"
        ));
        assert!(!signatures_match(&expected, "f21891de"));
        assert!(!signatures_match(&expected, ""));
    }
}
