//! The SQLite store's device-login polling schedules: claimed by one conditional `UPDATE …
//! RETURNING` on the single writer connection, so a due schedule goes to one caller.

use async_trait::async_trait;
use sqlx::Row;
use sqlx::sqlite::SqliteRow;
use time::OffsetDateTime;

use super::SqliteStore;
use crate::at_rest::{from_ms, to_ms};
use crate::{DevicePollRow, DevicePollStore, Result, StoreError};

fn poll_from_row(row: &SqliteRow) -> Result<DevicePollRow> {
    Ok(DevicePollRow {
        run_id: row.try_get("run_id").map_err(StoreError::Database)?,
        action: row.try_get("action").map_err(StoreError::Database)?,
        interval_ms: row.try_get("interval_ms").map_err(StoreError::Database)?,
        next_poll_at: from_ms(row.try_get("next_poll_at").map_err(StoreError::Database)?)?,
        expires_at: from_ms(row.try_get("expires_at").map_err(StoreError::Database)?)?,
    })
}

#[async_trait]
impl DevicePollStore for SqliteStore {
    async fn schedule_device_poll(&self, poll: &DevicePollRow) -> Result<()> {
        sqlx::query(
            "INSERT INTO device_polls (run_id, action, interval_ms, next_poll_at, expires_at) \
             VALUES (?, ?, ?, ?, ?) \
             ON CONFLICT (run_id) DO UPDATE SET action = excluded.action, \
             interval_ms = excluded.interval_ms, next_poll_at = excluded.next_poll_at, \
             expires_at = excluded.expires_at, claim_owner = NULL, claim_until = NULL",
        )
        .bind(&poll.run_id)
        .bind(&poll.action)
        .bind(poll.interval_ms)
        .bind(to_ms(poll.next_poll_at))
        .bind(to_ms(poll.expires_at))
        .execute(&self.writer)
        .await
        .map_err(StoreError::Database)?;
        Ok(())
    }

    async fn claim_device_polls(
        &self,
        owner: &str,
        now: OffsetDateTime,
        until: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<DevicePollRow>> {
        let rows = sqlx::query(
            "UPDATE device_polls SET claim_owner = ?, claim_until = ? \
             WHERE run_id IN (SELECT run_id FROM device_polls \
                 WHERE next_poll_at <= ? AND (claim_until IS NULL OR claim_until <= ?) \
                 ORDER BY next_poll_at LIMIT ?) \
             RETURNING run_id, action, interval_ms, next_poll_at, expires_at",
        )
        .bind(owner)
        .bind(to_ms(until))
        .bind(to_ms(now))
        .bind(to_ms(now))
        .bind(i64::from(limit))
        .fetch_all(&self.writer)
        .await
        .map_err(StoreError::Database)?;
        let mut polls = rows.iter().map(poll_from_row).collect::<Result<Vec<_>>>()?;
        polls.sort_by_key(|poll| poll.next_poll_at);
        Ok(polls)
    }

    async fn release_device_poll(
        &self,
        run_id: &str,
        owner: &str,
        interval_ms: i64,
        next_poll_at: OffsetDateTime,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE device_polls SET claim_owner = NULL, claim_until = NULL, \
             interval_ms = ?, next_poll_at = ? WHERE run_id = ? AND claim_owner = ?",
        )
        .bind(interval_ms)
        .bind(to_ms(next_poll_at))
        .bind(run_id)
        .bind(owner)
        .execute(&self.writer)
        .await
        .map_err(StoreError::Database)?;
        Ok(done.rows_affected() == 1)
    }

    async fn delete_device_poll(&self, run_id: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM device_polls WHERE run_id = ?")
            .bind(run_id)
            .execute(&self.writer)
            .await
            .map_err(StoreError::Database)?;
        Ok(done.rows_affected() > 0)
    }
}
