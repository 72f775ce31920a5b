//! Secrets compared by their hash: API keys (those of the configuration and those kept in the
//! store) and the cookie that binds a browser-started login to its browser. Neither is kept in
//! plain text in memory or on disk.

use sha2::{Digest, Sha256};

/// Hex SHA-256 of an API key or a binding cookie's value.
pub fn hash_key(key: &str) -> String {
    let digest = Sha256::digest(key.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}
