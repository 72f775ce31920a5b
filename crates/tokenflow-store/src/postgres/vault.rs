//! The PostgreSQL side of the token vault: one row per entry, tokens sealed, and a version column
//! for the compare-and-swap that keeps a rotated refresh token from ever being overwritten by a
//! stale writer.
//!
//! Both writes are single statements, atomic under READ COMMITTED: the upsert's `ON CONFLICT DO
//! UPDATE` increments the version of whatever row is there when it gets the row lock, and the
//! CAS `UPDATE … WHERE version = $n` re-checks the version after waiting for a concurrent writer,
//! so of many swaps of one version exactly one succeeds — across instances as well.

use async_trait::async_trait;
use sqlx::postgres::PgRow;
use tokenflow_core::VaultEntryState;

use super::{PostgresStore, get};
use crate::at_rest::{from_ms, to_ms, vault_token_aad as aad};
use crate::{RefreshClaim, Result, StoreError, VaultEntryRow, VaultStore};

const COLUMNS: &str = "name, server_id, access_token, refresh_token, expires_at, granted_scopes, \
                       state, last_refresh_at, last_refresh_outcome, version, updated_at";

/// The sealed access and refresh tokens of an entry.
type SealedTokens = (Option<Vec<u8>>, Option<Vec<u8>>);

impl PostgresStore {
    fn vault_from_row(&self, row: &PgRow) -> Result<VaultEntryRow> {
        let name: String = get(row, "name")?;
        let open = |column: &str| -> Result<Option<tokenflow_core::SecretString>> {
            let sealed: Option<Vec<u8>> = get(row, column)?;
            sealed
                .map(|sealed| self.open_secret(&sealed, &aad(column, &name)))
                .transpose()
        };
        let ms = |column: &str| -> Result<Option<time::OffsetDateTime>> {
            let value: Option<i64> = get(row, column)?;
            value.map(from_ms).transpose()
        };
        Ok(VaultEntryRow {
            access_token: open("access_token")?,
            refresh_token: open("refresh_token")?,
            server_id: get(row, "server_id")?,
            expires_at: ms("expires_at")?,
            granted_scopes: get(row, "granted_scopes")?,
            state: vault_state(row)?,
            last_refresh_at: ms("last_refresh_at")?,
            last_refresh_outcome: get(row, "last_refresh_outcome")?,
            version: get(row, "version")?,
            updated_at: from_ms(get(row, "updated_at")?)?,
            name,
        })
    }

    fn seal_tokens(&self, entry: &VaultEntryRow) -> Result<SealedTokens> {
        let seal = |secret: &Option<tokenflow_core::SecretString>, column: &str| {
            secret
                .as_ref()
                .map(|s| self.seal_secret(s, &aad(column, &entry.name)))
                .transpose()
        };
        Ok((
            seal(&entry.access_token, "access_token")?,
            seal(&entry.refresh_token, "refresh_token")?,
        ))
    }
}

#[async_trait]
impl VaultStore for PostgresStore {
    async fn get_vault_entry(&self, name: &str) -> Result<Option<VaultEntryRow>> {
        sqlx::query(&format!(
            "SELECT {COLUMNS} FROM vault_entries WHERE name = $1"
        ))
        .bind(name)
        .fetch_optional(&self.pool)
        .await
        .map_err(StoreError::Database)?
        .map(|row| self.vault_from_row(&row))
        .transpose()
    }

    async fn put_vault_entry(&self, entry: &VaultEntryRow) -> Result<VaultEntryRow> {
        let (access, refresh) = self.seal_tokens(entry)?;
        let row = sqlx::query(&format!(
            "INSERT INTO vault_entries ({COLUMNS}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 1, $10) \
             ON CONFLICT (name) DO UPDATE SET server_id = excluded.server_id, \
             access_token = excluded.access_token, refresh_token = excluded.refresh_token, \
             expires_at = excluded.expires_at, granted_scopes = excluded.granted_scopes, \
             state = excluded.state, last_refresh_at = excluded.last_refresh_at, \
             last_refresh_outcome = excluded.last_refresh_outcome, \
             version = vault_entries.version + 1, updated_at = excluded.updated_at \
             RETURNING {COLUMNS}"
        ))
        .bind(&entry.name)
        .bind(&entry.server_id)
        .bind(access)
        .bind(refresh)
        .bind(entry.expires_at.map(to_ms))
        .bind(&entry.granted_scopes)
        .bind(entry.state.as_str())
        .bind(entry.last_refresh_at.map(to_ms))
        .bind(&entry.last_refresh_outcome)
        .bind(to_ms(entry.updated_at))
        .fetch_one(&self.pool)
        .await
        .map_err(StoreError::Database)?;
        self.vault_from_row(&row)
    }

    async fn update_vault_entry(
        &self,
        entry: &VaultEntryRow,
        expected_version: i64,
    ) -> Result<bool> {
        let (access, refresh) = self.seal_tokens(entry)?;
        let done = sqlx::query(
            "UPDATE vault_entries SET server_id = $1, access_token = $2, refresh_token = $3, \
             expires_at = $4, granted_scopes = $5, state = $6, last_refresh_at = $7, \
             last_refresh_outcome = $8, version = version + 1, updated_at = $9 \
             WHERE name = $10 AND version = $11",
        )
        .bind(&entry.server_id)
        .bind(access)
        .bind(refresh)
        .bind(entry.expires_at.map(to_ms))
        .bind(&entry.granted_scopes)
        .bind(entry.state.as_str())
        .bind(entry.last_refresh_at.map(to_ms))
        .bind(&entry.last_refresh_outcome)
        .bind(to_ms(entry.updated_at))
        .bind(&entry.name)
        .bind(expected_version)
        .execute(&self.pool)
        .await
        .map_err(StoreError::Database)?;
        Ok(done.rows_affected() == 1)
    }

    async fn list_vault_entries(&self) -> Result<Vec<VaultEntryRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM vault_entries ORDER BY name"
        ))
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::Database)?;
        rows.iter().map(|row| self.vault_from_row(row)).collect()
    }

    async fn delete_vault_entry(&self, name: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM vault_entries WHERE name = $1")
            .bind(name)
            .execute(&self.pool)
            .await
            .map_err(StoreError::Database)?;
        Ok(done.rows_affected() == 1)
    }

    async fn claim_vault_refresh(
        &self,
        name: &str,
        owner: &str,
        until: time::OffsetDateTime,
        now: time::OffsetDateTime,
    ) -> Result<RefreshClaim> {
        // Two conditional updates, each atomic: a free (or own) lease first, then an expired one
        // of another owner, so the answer can tell a takeover apart.
        let free = sqlx::query(
            "UPDATE vault_entries SET refresh_lease_owner = $1, refresh_lease_until = $2 \
             WHERE name = $3 AND (refresh_lease_until IS NULL OR refresh_lease_owner = $4)",
        )
        .bind(owner)
        .bind(to_ms(until))
        .bind(name)
        .bind(owner)
        .execute(&self.pool)
        .await
        .map_err(StoreError::Database)?;
        if free.rows_affected() == 1 {
            return Ok(RefreshClaim::Claimed);
        }
        let taken = sqlx::query(
            "UPDATE vault_entries SET refresh_lease_owner = $1, refresh_lease_until = $2 \
             WHERE name = $3 AND refresh_lease_until <= $4",
        )
        .bind(owner)
        .bind(to_ms(until))
        .bind(name)
        .bind(to_ms(now))
        .execute(&self.pool)
        .await
        .map_err(StoreError::Database)?;
        Ok(match taken.rows_affected() {
            1 => RefreshClaim::TakenOver,
            _ => RefreshClaim::Refused,
        })
    }

    async fn release_vault_refresh(&self, name: &str, owner: &str) -> Result<()> {
        sqlx::query(
            "UPDATE vault_entries SET refresh_lease_owner = NULL, refresh_lease_until = NULL \
             WHERE name = $1 AND refresh_lease_owner = $2",
        )
        .bind(name)
        .bind(owner)
        .execute(&self.pool)
        .await
        .map_err(StoreError::Database)?;
        Ok(())
    }
}

/// The `vault_entries.state` column, read: the one place this backend turns its text into a state.
fn vault_state(row: &PgRow) -> Result<VaultEntryState> {
    let text: String = get(row, "state")?;
    VaultEntryState::parse(&text)
        .ok_or_else(|| StoreError::Corrupt(format!("unknown vault entry state `{text}`")))
}
