//! What values look like at rest, the same for every backend: timestamps as unix milliseconds,
//! `state` only as its SHA-256, and the associated data that ties each sealed value to its place.
//!
//! Kept out of the backends so that a PostgreSQL backend seals with the same AAD names and hashes
//! `state` the same way — a database moved between backends then still opens with the same key.

use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use tokenflow_core::SecretString;
use zeroize::Zeroizing;

use crate::crypto::Cipher;
use crate::{PendingRow, Result, StoreError};

/// The key check stored in `meta`: sealing a known text tells a wrong master key at start-up
/// instead of at the first secret read.
pub(crate) const KEY_CHECK_PLAINTEXT: &[u8] = b"tokenflow key check";
pub(crate) const KEY_CHECK_AAD: &[u8] = b"meta.key_check";

/// A fresh sealed key check, for a database that has none yet.
pub(crate) fn new_key_check(cipher: &Cipher) -> Result<Vec<u8>> {
    cipher.seal(KEY_CHECK_PLAINTEXT, KEY_CHECK_AAD)
}

/// Whether the stored key check opens with this cipher's key; any failure means another key.
pub(crate) fn verify_key_check(cipher: &Cipher, stored: &[u8]) -> Result<()> {
    match cipher.open(stored, KEY_CHECK_AAD) {
        Ok(plain) if plain == KEY_CHECK_PLAINTEXT => Ok(()),
        _ => Err(StoreError::WrongMasterKey),
    }
}

/// Seals a secret column value bound to its place `aad`.
pub(crate) fn seal_secret(cipher: &Cipher, secret: &SecretString, aad: &str) -> Result<Vec<u8>> {
    cipher.seal(secret.expose().as_bytes(), aad.as_bytes())
}

/// Opens a value sealed by [`seal_secret`] at the same place.
pub(crate) fn open_secret(cipher: &Cipher, sealed: &[u8], aad: &str) -> Result<SecretString> {
    let plain = cipher.open(sealed, aad.as_bytes())?;
    String::from_utf8(plain)
        .map(SecretString::new)
        .map_err(|err| {
            // Zero the decrypted bytes on this path too.
            drop(Zeroizing::new(err.into_bytes()));
            StoreError::Corrupt(format!("decrypted value at {aad} is not UTF-8"))
        })
}

/// A sealed column: its table, the primary key that names its place, and its associated data.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SealedColumn {
    pub table: &'static str,
    pub key: &'static str,
    pub column: &'static str,
    pub aad: fn(&str) -> String,
}

impl SealedColumn {
    /// `table.column`, as progress and errors name it.
    pub fn name(&self) -> String {
        format!("{}.{}", self.table, self.column)
    }
}

/// Every sealed column but the key check (`meta.key_check`): what a master key rotation re-seals
/// and what the key fence of the migrations guards. A test checks it against the schema's
/// BLOB/BYTEA columns, so a new sealed column cannot be forgotten here.
pub(crate) const SEALED_COLUMNS: &[SealedColumn] = &[
    SealedColumn {
        table: "runs",
        key: "id",
        column: "state",
        aad: run_state_aad,
    },
    SealedColumn {
        table: "pending_authorizations",
        key: "state_hash",
        column: "payload",
        aad: pending_payload_aad,
    },
    SealedColumn {
        table: "oauth_servers",
        key: "id",
        column: "client_secret",
        aad: oauth_secret_aad,
    },
    SealedColumn {
        table: "oauth_servers",
        key: "id",
        column: "private_key",
        aad: oauth_private_key_aad,
    },
    SealedColumn {
        table: "vault_entries",
        key: "name",
        column: "access_token",
        aad: vault_access_token_aad,
    },
    SealedColumn {
        table: "vault_entries",
        key: "name",
        column: "refresh_token",
        aad: vault_refresh_token_aad,
    },
];

fn vault_access_token_aad(name: &str) -> String {
    vault_token_aad("access_token", name)
}

fn vault_refresh_token_aad(name: &str) -> String {
    vault_token_aad("refresh_token", name)
}

/// The order `take_expired_pending` returns rows in, whatever order the database produced.
pub(crate) fn sort_expired(expired: &mut [PendingRow]) {
    expired.sort_by(|a, b| {
        (a.expires_at, &a.run_id, &a.action).cmp(&(b.expires_at, &b.run_id, &b.action))
    });
}

const DEFAULT_LIST_LIMIT: u32 = 100;
const MAX_LIST_LIMIT: u32 = 1000;

/// `RunFilter::limit` as applied: 0 means the default page, anything else is capped.
pub(crate) fn list_limit(requested: u32) -> u32 {
    match requested {
        0 => DEFAULT_LIST_LIMIT,
        limit => limit.min(MAX_LIST_LIMIT),
    }
}

/// Unix milliseconds, rounded down. `OffsetDateTime` spans ±9999 years (about ±3.2e14 ms), so
/// the result always fits an `i64`.
pub(crate) fn to_ms(at: OffsetDateTime) -> i64 {
    at.unix_timestamp_nanos().div_euclid(1_000_000) as i64
}

pub(crate) fn from_ms(ms: i64) -> Result<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .map_err(|_| StoreError::Corrupt(format!("timestamp {ms} ms is out of range")))
}

/// Lowercase hex SHA-256 of the raw `state`: the only form of it a database ever sees.
pub(crate) fn state_hash(state: &SecretString) -> String {
    Sha256::digest(state.expose().as_bytes())
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

pub(crate) fn run_state_aad(run_id: &str) -> String {
    format!("runs.state:{run_id}")
}

pub(crate) fn pending_payload_aad(state_hash: &str) -> String {
    format!("pending.payload:{state_hash}")
}

pub(crate) fn oauth_secret_aad(server_id: &str) -> String {
    format!("oauth_servers.client_secret:{server_id}")
}

pub(crate) fn oauth_private_key_aad(server_id: &str) -> String {
    format!("oauth_servers.private_key:{server_id}")
}

/// A vault token column (`access_token`, `refresh_token`) of entry `name`.
pub(crate) fn vault_token_aad(column: &str, name: &str) -> String {
    format!("vault.{column}:{name}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn milliseconds_roundtrip_and_round_down() {
        let at = datetime!(2025-03-04 05:06:07.123_456 UTC);
        assert_eq!(to_ms(at), 1_741_064_767_123);
        assert_eq!(
            from_ms(to_ms(at)).unwrap(),
            datetime!(2025-03-04 05:06:07.123 UTC)
        );
        assert_eq!(to_ms(datetime!(1969-12-31 23:59:59.999_5 UTC)), -1);
        assert!(matches!(from_ms(i64::MAX), Err(StoreError::Corrupt(_))));
    }

    #[test]
    fn the_state_hash_is_lowercase_hex_sha256() {
        // sha256("abc")
        assert_eq!(
            state_hash(&SecretString::new("abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn a_zero_limit_is_a_hundred_and_large_ones_are_capped() {
        assert_eq!(list_limit(0), 100);
        assert_eq!(list_limit(7), 7);
        assert_eq!(list_limit(5000), 1000);
    }
}
