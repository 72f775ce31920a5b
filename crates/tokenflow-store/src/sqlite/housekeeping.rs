//! The SQLite store's housekeeping: deleting consumed pending authorizations, old schedule
//! firings and, by the retention rule, ended runs with everything that hangs on them.

use async_trait::async_trait;
use time::OffsetDateTime;

use super::SqliteStore;
use crate::at_rest::to_ms;
use crate::retention::{ENDED_STATUSES, RetentionReads, batch_deletes, runs_past_retention};
use crate::{Housekeeping, Result, RetentionRule, StoreError};

#[async_trait]
impl Housekeeping for SqliteStore {
    async fn purge_consumed(&self, before: OffsetDateTime) -> Result<u64> {
        let pending = sqlx::query(
            "DELETE FROM pending_authorizations WHERE consumed_at IS NOT NULL AND consumed_at < ?",
        )
        .bind(to_ms(before))
        .execute(&self.writer)
        .await
        .map_err(StoreError::Database)?;
        let firings = sqlx::query(
            "DELETE FROM schedule_firings WHERE claimed_at < ? AND due < \
             (SELECT MAX(newest.due) FROM schedule_firings newest \
              WHERE newest.flow_id = schedule_firings.flow_id)",
        )
        .bind(to_ms(before))
        .execute(&self.writer)
        .await
        .map_err(StoreError::Database)?;
        Ok(pending.rows_affected() + firings.rows_affected())
    }

    async fn purge_ended_runs(&self, rule: &RetentionRule, limit: u32) -> Result<u64> {
        let ids = runs_past_retention(self, rule, limit).await?;
        if ids.is_empty() {
            return Ok(0);
        }
        let list = vec!["?"; ids.len()].join(", ");
        let mut tx = self.writer.begin().await.map_err(StoreError::Database)?;
        let mut deleted = 0;
        for sql in batch_deletes(&format!("id IN ({list})")) {
            let mut query = sqlx::query(&sql);
            for id in &ids {
                query = query.bind(id);
            }
            deleted = query
                .execute(&mut *tx)
                .await
                .map_err(StoreError::Database)?
                .rows_affected();
        }
        tx.commit().await.map_err(StoreError::Database)?;
        Ok(deleted)
    }
}

#[async_trait]
/// SQLite's planner, without statistics, prefers `runs_by_status` and sorts every ended run
/// in a temporary B-tree; `INDEXED BY` holds it to migration 9's indexes (and fails loudly if
/// they were missing).
impl RetentionReads for SqliteStore {
    async fn ended_before(&self, before: OffsetDateTime, limit: i64) -> Result<Vec<String>> {
        sqlx::query_scalar(&format!(
            "SELECT id FROM runs INDEXED BY runs_ended_by_age WHERE {ENDED_STATUSES} AND ended_at < ? \
                 ORDER BY ended_at, id LIMIT ?"
        ))
        .bind(to_ms(before))
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::Database)
    }

    async fn flows_over(&self, keep: i64) -> Result<Vec<String>> {
        sqlx::query_scalar(&format!(
            "SELECT flow_id FROM runs INDEXED BY runs_ended_by_flow WHERE {ENDED_STATUSES} \
             GROUP BY flow_id HAVING COUNT(*) > ?"
        ))
        .bind(keep)
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::Database)
    }

    async fn beyond_newest(&self, flow: &str, keep: i64, limit: i64) -> Result<Vec<String>> {
        sqlx::query_scalar(&format!(
            "SELECT id FROM runs INDEXED BY runs_ended_by_flow WHERE flow_id = ? AND {ENDED_STATUSES} \
                 ORDER BY ended_at DESC, id DESC LIMIT ? OFFSET ?"
        ))
        .bind(flow)
        .bind(limit)
        .bind(keep)
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::Database)
    }
}
