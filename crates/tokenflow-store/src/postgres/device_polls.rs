//! The PostgreSQL store's device-login polling schedules: claimed by one conditional `UPDATE …
//! RETURNING` with `FOR UPDATE SKIP LOCKED`, so a due schedule goes to one caller across instances.

use async_trait::async_trait;
use sqlx::Row;
use sqlx::postgres::PgRow;
use time::OffsetDateTime;

use super::PostgresStore;
use crate::at_rest::{from_ms, to_ms};
use crate::{DevicePollRow, DevicePollStore, Result, StoreError};

fn poll_from_row(row: &PgRow) -> Result<DevicePollRow> {
    Ok(DevicePollRow {
        run_id: row.try_get("run_id").map_err(StoreError::Database)?,
        action: row.try_get("action").map_err(StoreError::Database)?,
        interval_ms: row.try_get("interval_ms").map_err(StoreError::Database)?,
        next_poll_at: from_ms(row.try_get("next_poll_at").map_err(StoreError::Database)?)?,
        expires_at: from_ms(row.try_get("expires_at").map_err(StoreError::Database)?)?,
    })
}

#[async_trait]
impl DevicePollStore for PostgresStore {
    async fn schedule_device_poll(&self, poll: &DevicePollRow) -> Result<()> {
        sqlx::query(
            "INSERT INTO device_polls (run_id, action, interval_ms, next_poll_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (run_id) DO UPDATE SET action = excluded.action, \
             interval_ms = excluded.interval_ms, next_poll_at = excluded.next_poll_at, \
             expires_at = excluded.expires_at, claim_owner = NULL, claim_until = NULL",
        )
        .bind(&poll.run_id)
        .bind(&poll.action)
        .bind(poll.interval_ms)
        .bind(to_ms(poll.next_poll_at))
        .bind(to_ms(poll.expires_at))
        .execute(&self.pool)
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
        // `SKIP LOCKED`: instances claiming at once never wait on each other's rows; a row
        // another claim committed meanwhile is re-checked against the conditions and left out.
        let rows = sqlx::query(
            "WITH due AS (SELECT run_id FROM device_polls \
                 WHERE next_poll_at <= $3 AND (claim_until IS NULL OR claim_until <= $3) \
                 ORDER BY next_poll_at LIMIT $4 FOR UPDATE SKIP LOCKED) \
             UPDATE device_polls d SET claim_owner = $1, claim_until = $2 FROM due \
             WHERE d.run_id = due.run_id \
             RETURNING d.run_id, d.action, d.interval_ms, d.next_poll_at, d.expires_at",
        )
        .bind(owner)
        .bind(to_ms(until))
        .bind(to_ms(now))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
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
             interval_ms = $1, next_poll_at = $2 WHERE run_id = $3 AND claim_owner = $4",
        )
        .bind(interval_ms)
        .bind(to_ms(next_poll_at))
        .bind(run_id)
        .bind(owner)
        .execute(&self.pool)
        .await
        .map_err(StoreError::Database)?;
        Ok(done.rows_affected() == 1)
    }

    async fn delete_device_poll(&self, run_id: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM device_polls WHERE run_id = $1")
            .bind(run_id)
            .execute(&self.pool)
            .await
            .map_err(StoreError::Database)?;
        Ok(done.rows_affected() > 0)
    }
}
