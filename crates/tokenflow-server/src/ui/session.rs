//! Web UI sessions and CSRF protection, without server-side session state (so any instance can
//! serve any request).
//!
//! The session cookie is `base64url(payload) "." base64url(HMAC-SHA256(key, payload))` where the
//! payload holds an expiry and a random nonce; the key is derived from the master key. Each
//! session's CSRF token is `HMAC(key, "csrf" ‖ nonce)`: forms carry it, and every state-changing
//! request must present it (the synchronizer-token pattern, bound to the session). The cookie is
//! `HttpOnly`, `SameSite=Lax` (so the identity provider's redirect back lands signed in), and
//! `Secure` behind https.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// The session cookie's name.
pub const COOKIE: &str = "tokenflow_session";
/// How long a sign-in lasts.
pub const LIFETIME_SECS: i64 = 12 * 3600;

#[derive(Debug, Serialize, Deserialize)]
struct Payload {
    /// Unix seconds.
    exp: i64,
    nonce: String,
    /// SHA-256 of the API key used to sign in: the session ends when that key is deleted.
    key: String,
}

/// Signs and checks sessions.
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
    /// SHA-256 (hex) of the API key the person signed in with.
    pub key_hash: String,
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

    /// A new session cookie value valid until `now + LIFETIME_SECS`.
    pub fn issue(&self, now: i64, nonce: &str, key_hash: &str) -> String {
        let payload = Payload {
            exp: now + LIFETIME_SECS,
            nonce: nonce.to_owned(),
            key: key_hash.to_owned(),
        };
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&payload).unwrap_or_default());
        let signature = URL_SAFE_NO_PAD.encode(self.mac(&[b"session", payload.as_bytes()]));
        format!("{payload}.{signature}")
    }

    /// The session of a cookie value, if it is authentic and not expired.
    pub fn check(&self, cookie: &str, now: i64) -> Option<Session> {
        let (payload, signature) = cookie.split_once('.')?;
        let signature = URL_SAFE_NO_PAD.decode(signature).ok()?;
        let Ok(mut mac) = HmacSha256::new_from_slice(&self.key) else {
            return None;
        };
        mac.update(b"session");
        mac.update(payload.as_bytes());
        mac.verify_slice(&signature).ok()?;
        let payload: Payload =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()?;
        if payload.exp <= now {
            return None;
        }
        let csrf = URL_SAFE_NO_PAD.encode(self.mac(&[b"csrf", payload.nonce.as_bytes()]));
        Some(Session {
            csrf,
            key_hash: payload.key,
        })
    }
}

/// Constant-time comparison of two tokens.
pub fn tokens_match(a: &str, b: &str) -> bool {
    subtle_eq::ct_eq(a.as_bytes(), b.as_bytes())
}

/// Constant-time comparison of a submitted CSRF token with the session's.
pub fn csrf_matches(session: &Session, submitted: &str) -> bool {
    use subtle_eq::ct_eq;
    ct_eq(session.csrf.as_bytes(), submitted.as_bytes())
}

mod subtle_eq {
    /// Length-revealing but otherwise constant-time equality (tokens have a fixed length).
    pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
        if a.len() != b.len() {
            return false;
        }
        a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(byte: u8) -> SessionKeys {
        SessionKeys::new([byte; 32])
    }

    #[test]
    fn an_issued_session_checks_and_has_a_stable_csrf_token() {
        let cookie = keys(1).issue(1000, "n1", "k");
        let session = keys(1).check(&cookie, 1001).unwrap();
        assert_eq!(keys(1).check(&cookie, 2000).unwrap(), session);
        assert!(csrf_matches(&session, &session.csrf));
        assert!(!csrf_matches(&session, "forged"));
        let other = keys(1)
            .check(&keys(1).issue(1000, "n2", "k"), 1001)
            .unwrap();
        assert_ne!(other.csrf, session.csrf, "each session has its own token");
    }

    #[test]
    fn forged_expired_or_foreign_cookies_fail() {
        let cookie = keys(1).issue(1000, "n1", "k");
        assert!(keys(2).check(&cookie, 1001).is_none(), "another key");
        assert!(
            keys(1).check(&cookie, 1000 + LIFETIME_SECS).is_none(),
            "expired"
        );
        let (payload, signature) = cookie.split_once('.').unwrap();
        let tampered = format!("{}x.{signature}", payload);
        assert!(keys(1).check(&tampered, 1001).is_none());
        assert!(keys(1).check("garbage", 1001).is_none());
    }
}
