//! The secrets behind a web UI session, derived and compared without leaking them: the session id
//! (32 random bytes from the operating system, base64url; the store keeps only its SHA-256, so
//! reading the database gives no usable session), the session's CSRF token
//! `HMAC(key, "csrf" ‖ session id)` (the synchronizer-token pattern, bound to the session; every
//! instance derives the same token because the key comes from the shared master key), and the
//! keyed reference by which a session names an API key of the configuration file.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

/// Random bytes in a session id (256 bits).
pub const ID_BYTES: usize = 32;

/// Derives CSRF tokens and configured-key references with the server's key.
#[derive(Clone)]
pub struct SessionKeys {
    key: [u8; 32],
}

impl std::fmt::Debug for SessionKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionKeys([redacted])")
    }
}

/// A valid session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub csrf: String,
    /// SHA-256 (hex) of the session id: the session's key in the store.
    pub id_hash: String,
}

impl SessionKeys {
    pub fn new(key: [u8; 32]) -> Self {
        Self { key }
    }

    fn mac(&self, parts: &[&[u8]]) -> Vec<u8> {
        // `new_from_slice` accepts any key length for HMAC; 32 bytes cannot fail.
        let Ok(mut mac) = HmacSha256::new_from_slice(&self.key) else {
            return Vec::new();
        };
        for part in parts {
            mac.update(part);
        }
        mac.finalize().into_bytes().to_vec()
    }

    /// The session of a cookie value (the session id), with its CSRF token.
    pub fn session(&self, id: &str) -> Session {
        Session {
            csrf: URL_SAFE_NO_PAD.encode(self.mac(&[b"csrf", id.as_bytes()])),
            id_hash: id_hash(id),
        }
    }

    /// How a session refers to an API key of the configuration file (given as its SHA-256 hex):
    /// an HMAC with the server's key, so the store learns nothing the key could be guessed from.
    pub fn configured_key_ref(&self, key_hash: &str) -> String {
        hex(&self.mac(&[b"configured api key", key_hash.as_bytes()]))
    }
}

/// SHA-256 (hex) of a session id.
pub fn id_hash(id: &str) -> String {
    hex(&Sha256::digest(id.as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether a cookie value has the shape of a session id (base64url of [`ID_BYTES`] bytes), so
/// that garbage is refused without a store lookup.
pub fn plausible_id(value: &str) -> bool {
    value.len() == (ID_BYTES * 4).div_ceil(3)
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Constant-time comparison of two tokens (their lengths are not secret).
pub fn tokens_match(a: &str, b: &str) -> bool {
    bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(byte: u8) -> SessionKeys {
        SessionKeys::new([byte; 32])
    }

    #[test]
    fn a_session_has_a_stable_csrf_token_of_its_own() {
        let id = "a".repeat(43);
        let session = keys(1).session(&id);
        assert_eq!(keys(1).session(&id), session);
        assert!(tokens_match(&session.csrf, &session.csrf));
        assert!(!tokens_match(&session.csrf, "forged"));
        assert!(!tokens_match(&session.csrf, ""));
        let other = keys(1).session(&"b".repeat(43));
        assert_ne!(other.csrf, session.csrf, "each session has its own token");
        assert_ne!(
            keys(2).session(&id).csrf,
            session.csrf,
            "the token needs the server's key"
        );
        assert_eq!(session.id_hash, id_hash(&id));
        assert!(!session.id_hash.contains(&id));
    }

    #[test]
    fn only_values_shaped_like_a_session_id_are_looked_up() {
        assert!(plausible_id(&"A-_9".repeat(11)[..43]));
        assert!(!plausible_id(""));
        assert!(!plausible_id(&"a".repeat(42)));
        assert!(!plausible_id(&"a".repeat(44)));
        assert!(!plausible_id(&format!("{}.", "a".repeat(42))));
        assert!(!plausible_id("eyJleHAiOjk5OTk5OTk5OTl9.AAAA"));
    }

    #[test]
    fn a_configured_key_reference_is_keyed_and_is_not_the_hash() {
        let hash = "0123456789abcdef".repeat(4);
        let reference = keys(1).configured_key_ref(&hash);
        assert_eq!(reference, keys(1).configured_key_ref(&hash));
        assert_ne!(reference, keys(2).configured_key_ref(&hash));
        assert_ne!(reference, hash);
        assert_eq!(reference.len(), 64);
    }
}
