//! The SQLite store's pending authorizations: looked up by the SHA-256 of their `state`, consumed
//! exactly once by a conditional write.

use async_trait::async_trait;
use time::OffsetDateTime;
use tokenflow_core::SecretString;

use super::SqliteStore;
use crate::at_rest::{sort_expired, state_hash, to_ms};
use crate::{PendingRow, PendingStore, Result, StoreError, TakePending};

#[async_trait]
impl PendingStore for SqliteStore {
    async fn find_pending_authorization(&self, state: &SecretString) -> Result<Option<PendingRow>> {
        let row = sqlx::query(
            "SELECT state_hash, run_id, action, payload, created_at, expires_at \
             FROM pending_authorizations WHERE state_hash = ? AND consumed_at IS NULL",
        )
        .bind(state_hash(state))
        .fetch_optional(&self.pool)
        .await
        .map_err(StoreError::Database)?;
        row.map(|row| self.pending_from_row(&row, state.clone()))
            .transpose()
    }

    async fn take_pending_authorization(
        &self,
        state: &SecretString,
        now: OffsetDateTime,
    ) -> Result<TakePending> {
        let hash = state_hash(state);
        // The conditional UPDATE is the single-use guarantee: of any number of concurrent
        // callers exactly one sees the row come back. The transaction only makes an `Err` (an
        // undecryptable payload) leave the row as it was.
        let mut tx = self
            .writer
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(StoreError::Database)?;
        let taken = sqlx::query(
            "UPDATE pending_authorizations SET consumed_at = ? \
             WHERE state_hash = ? AND consumed_at IS NULL \
             RETURNING state_hash, run_id, action, payload, created_at, expires_at",
        )
        .bind(to_ms(now))
        .bind(&hash)
        // `fetch_all`, not `fetch_optional`: it steps the statement to completion.
        .fetch_all(&mut *tx)
        .await
        .map_err(StoreError::Database)?;
        let outcome = match taken.first() {
            Some(row) => {
                let pending = self.pending_from_row(row, state.clone())?;
                if pending.expires_at > now {
                    TakePending::Taken(pending)
                } else {
                    TakePending::Expired(pending)
                }
            }
            None => {
                let exists: Option<i64> =
                    sqlx::query_scalar("SELECT 1 FROM pending_authorizations WHERE state_hash = ?")
                        .bind(&hash)
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(StoreError::Database)?;
                match exists {
                    Some(_) => TakePending::AlreadyUsed,
                    None => TakePending::Unknown,
                }
            }
        };
        tx.commit().await.map_err(StoreError::Database)?;
        Ok(outcome)
    }

    async fn take_expired_pending(&self, now: OffsetDateTime) -> Result<Vec<PendingRow>> {
        let mut tx = self
            .writer
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(StoreError::Database)?;
        let rows = sqlx::query(
            "UPDATE pending_authorizations SET consumed_at = ? \
             WHERE consumed_at IS NULL AND expires_at <= ? \
             RETURNING state_hash, run_id, action, payload, created_at, expires_at",
        )
        .bind(to_ms(now))
        .bind(to_ms(now))
        .fetch_all(&mut *tx)
        .await
        .map_err(StoreError::Database)?;
        // The raw state is never stored, so these rows carry an empty one; the sweeper needs
        // only the run and the action.
        let mut expired = rows
            .iter()
            .map(|row| self.pending_from_row(row, SecretString::default()))
            .collect::<Result<Vec<_>>>()?;
        // Committed only once every row decrypted: an `Err` loses no expiry.
        tx.commit().await.map_err(StoreError::Database)?;
        sort_expired(&mut expired);
        Ok(expired)
    }

    async fn discard_pending_for_run(&self, run_id: &str) -> Result<bool> {
        // The trait gives no `now`; `consumed_at` is only an audit mark here (nothing reads its
        // value), so SQLite's own clock sets it.
        let discarded = sqlx::query(
            "UPDATE pending_authorizations \
             SET consumed_at = CAST(unixepoch('subsec') * 1000 AS INTEGER) \
             WHERE run_id = ? AND consumed_at IS NULL",
        )
        .bind(run_id)
        .execute(&self.writer)
        .await
        .map_err(StoreError::Database)?;
        Ok(discarded.rows_affected() > 0)
    }
}
