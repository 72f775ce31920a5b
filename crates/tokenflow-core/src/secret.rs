//! Secret values: client secrets, tokens, authorization codes, PKCE verifiers, secret variables.
//!
//! [`SecretString`] prints `[redacted]` through `Debug` and `Display`, zeroes its memory on drop and
//! implements neither `Serialize` nor `Deref<Target = str>`: reading the value takes an explicit
//! [`SecretString::expose`], which is easy to find in review. We write this small type ourselves
//! rather than use `secrecy` because the product needs the monitor's fingerprint form
//! (`sha256:1a2b3c4d… (1187 chars)`) and constant-time comparison on the same type.

use std::fmt;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroize;

/// A string that must never be shown. See the module docs.
#[derive(Clone, Default)]
pub struct SecretString(String);

impl SecretString {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The raw value, for the one place that has to send it (an HTTP form, an encryption call).
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The monitor's masked form: the first 8 hex digits of the SHA-256 and the length, so that two
    /// runs can be compared ("same token?") without revealing anything usable.
    pub fn fingerprint(&self) -> String {
        fingerprint(&self.0)
    }

    /// Constant-time equality, for comparing `state` values and the like.
    pub fn ct_eq(&self, other: &str) -> bool {
        self.0.as_bytes().ct_eq(other.as_bytes()).into()
    }
}

/// The masked form of any value: `sha256:<8 hex>… (<n> chars)`.
pub fn fingerprint(value: &str) -> String {
    let digest = Sha256::digest(value.as_bytes());
    let mut hex = String::with_capacity(8);
    for byte in digest.iter().take(4) {
        hex.push_str(&format!("{byte:02x}"));
    }
    format!("sha256:{hex}\u{2026} ({} chars)", value.chars().count())
}

impl From<String> for SecretString {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl From<&str> for SecretString {
    fn from(value: &str) -> Self {
        Self(value.to_owned())
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl PartialEq for SecretString {
    fn eq(&self, other: &Self) -> bool {
        self.ct_eq(&other.0)
    }
}

impl Eq for SecretString {}

impl Drop for SecretString {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl<'de> serde::Deserialize<'de> for SecretString {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_never_show_the_value() {
        let secret = SecretString::new("hunter2-very-secret");
        assert_eq!(format!("{secret:?}"), "[redacted]");
        assert_eq!(format!("{secret}"), "[redacted]");
        assert_eq!(format!("{:#?}", Some(&secret)), "Some(\n    [redacted],\n)");
        assert_eq!(secret.expose(), "hunter2-very-secret");
    }

    #[test]
    fn fingerprint_is_sha256_prefix_and_length() {
        // sha256("abc") = ba7816bf8f01cfea...
        assert_eq!(fingerprint("abc"), "sha256:ba7816bf\u{2026} (3 chars)");
        let secret = SecretString::new("abc");
        assert_eq!(secret.fingerprint(), fingerprint("abc"));
        assert!(!secret.fingerprint().contains("abc"));
    }

    #[test]
    fn equality_compares_values() {
        assert_eq!(SecretString::new("a"), SecretString::new("a"));
        assert_ne!(SecretString::new("a"), SecretString::new("b"));
        assert!(SecretString::new("state").ct_eq("state"));
        assert!(!SecretString::new("state").ct_eq("stat"));
    }

    #[test]
    fn deserializes_from_a_plain_string() {
        let secret: SecretString = serde_json::from_str("\"tok\"").unwrap();
        assert_eq!(secret.expose(), "tok");
    }
}
