//! The PostgreSQL store's pending authorizations: looked up by the SHA-256 of their `state`,
//! consumed exactly once by a conditional write.

use async_trait::async_trait;
use time::OffsetDateTime;
use tokenflow_core::SecretString;

use super::{PENDING_COLUMNS, PostgresStore};
use crate::at_rest::{sort_expired, state_hash, to_ms};
use crate::{PendingRow, PendingStore, Result, StoreError, TakePending};

#[async_trait]
impl PendingStore for PostgresStore {
    async fn find_pending_authorization(&self, state: &SecretString) -> Result<Option<PendingRow>> {
        let row = sqlx::query(&format!(
            "SELECT {PENDING_COLUMNS} FROM pending_authorizations \
             WHERE state_hash = $1 AND consumed_at IS NULL"
        ))
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
        // The conditional UPDATE is the single-use guarantee: concurrent callers queue on the
        // row lock, and each one after the first re-checks `consumed_at IS NULL` against the
        // committed row and gets nothing back. The transaction only makes an `Err` (an
        // undecryptable payload) leave the row as it was.
        let mut tx = self.pool.begin().await.map_err(StoreError::Database)?;
        let taken = sqlx::query(&format!(
            "UPDATE pending_authorizations SET consumed_at = $1 \
             WHERE state_hash = $2 AND consumed_at IS NULL RETURNING {PENDING_COLUMNS}"
        ))
        .bind(to_ms(now))
        .bind(&hash)
        .fetch_optional(&mut *tx)
        .await
        .map_err(StoreError::Database)?;
        let outcome = match taken {
            Some(row) => {
                let pending = self.pending_from_row(&row, state.clone())?;
                if pending.expires_at > now {
                    TakePending::Taken(pending)
                } else {
                    TakePending::Expired(pending)
                }
            }
            None => {
                // A new statement, so a new READ COMMITTED snapshot: it sees the winner's row.
                let exists: bool = sqlx::query_scalar(
                    "SELECT EXISTS (SELECT 1 FROM pending_authorizations WHERE state_hash = $1)",
                )
                .bind(&hash)
                .fetch_one(&mut *tx)
                .await
                .map_err(StoreError::Database)?;
                if exists {
                    TakePending::AlreadyUsed
                } else {
                    TakePending::Unknown
                }
            }
        };
        tx.commit().await.map_err(StoreError::Database)?;
        Ok(outcome)
    }

    async fn take_expired_pending(&self, now: OffsetDateTime) -> Result<Vec<PendingRow>> {
        let mut tx = self.pool.begin().await.map_err(StoreError::Database)?;
        // `SKIP LOCKED`: two sweepers (two instances) never wait on each other's rows, so they
        // cannot deadlock on rows locked in different orders. A row skipped here is being
        // consumed by its locker; should that one roll back, the next sweep takes it.
        let rows = sqlx::query(
            "WITH due AS (\
                 SELECT state_hash FROM pending_authorizations \
                 WHERE consumed_at IS NULL AND expires_at <= $1 \
                 FOR UPDATE SKIP LOCKED) \
             UPDATE pending_authorizations p SET consumed_at = $1 FROM due \
             WHERE p.state_hash = due.state_hash AND p.consumed_at IS NULL \
             RETURNING p.state_hash, p.run_id, p.action, p.payload, p.created_at, p.expires_at",
        )
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
        // value), so the database's clock sets it.
        let discarded = sqlx::query(
            "UPDATE pending_authorizations \
             SET consumed_at = (EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT \
             WHERE run_id = $1 AND consumed_at IS NULL",
        )
        .bind(run_id)
        .execute(&self.pool)
        .await
        .map_err(StoreError::Database)?;
        Ok(discarded.rows_affected() > 0)
    }
}
