//! The PostgreSQL store's housekeeping: deleting consumed pending authorizations, old schedule
//! firings and, by the retention rule, ended runs with everything that hangs on them.

use async_trait::async_trait;
use time::OffsetDateTime;

use super::PostgresStore;
use crate::at_rest::to_ms;
use crate::retention::{ENDED_STATUSES, RetentionReads, batch_deletes, runs_past_retention};
use crate::{Housekeeping, Result, RetentionRule, StoreError};

#[async_trait]
impl Housekeeping for PostgresStore {
    async fn purge_consumed(&self, before: OffsetDateTime) -> Result<u64> {
        let pending = sqlx::query(
            "DELETE FROM pending_authorizations WHERE consumed_at IS NOT NULL AND consumed_at < $1",
        )
        .bind(to_ms(before))
        .execute(&self.pool)
        .await
        .map_err(StoreError::Database)?;
        let firings = sqlx::query(
            "DELETE FROM schedule_firings WHERE claimed_at < $1 AND due < \
             (SELECT MAX(newest.due) FROM schedule_firings newest \
              WHERE newest.flow_id = schedule_firings.flow_id)",
        )
        .bind(to_ms(before))
        .execute(&self.pool)
        .await
        .map_err(StoreError::Database)?;
        Ok(pending.rows_affected() + firings.rows_affected())
    }

    async fn purge_ended_runs(&self, rule: &RetentionRule, limit: u32) -> Result<u64> {
        let ids = runs_past_retention(self, rule, limit).await?;
        if ids.is_empty() {
            return Ok(0);
        }
        let mut tx = self.pool.begin().await.map_err(StoreError::Database)?;
        let mut deleted = 0;
        for sql in batch_deletes("id = ANY($1)") {
            deleted = sqlx::query(&sql)
                .bind(&ids)
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
impl RetentionReads for PostgresStore {
    async fn ended_before(&self, before: OffsetDateTime, limit: i64) -> Result<Vec<String>> {
        sqlx::query_scalar(&format!(
            "SELECT id FROM runs WHERE {ENDED_STATUSES} AND ended_at < $1 \
                 ORDER BY ended_at, id LIMIT $2"
        ))
        .bind(to_ms(before))
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::Database)
    }

    async fn flows_over(&self, keep: i64) -> Result<Vec<String>> {
        sqlx::query_scalar(&format!(
            "SELECT flow_id FROM runs WHERE {ENDED_STATUSES} GROUP BY flow_id HAVING COUNT(*) > $1"
        ))
        .bind(keep)
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::Database)
    }

    async fn beyond_newest(&self, flow: &str, keep: i64, limit: i64) -> Result<Vec<String>> {
        sqlx::query_scalar(&format!(
            "SELECT id FROM runs WHERE flow_id = $1 AND {ENDED_STATUSES} \
                 ORDER BY ended_at DESC, id DESC LIMIT $2 OFFSET $3"
        ))
        .bind(flow)
        .bind(limit)
        .bind(keep)
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::Database)
    }
}
