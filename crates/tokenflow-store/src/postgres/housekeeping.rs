//! The PostgreSQL store's housekeeping: deleting consumed pending authorizations, old schedule
//! firings and, by the retention rule, ended runs with everything that hangs on them.

use std::collections::HashSet;

use async_trait::async_trait;
use time::OffsetDateTime;

use super::PostgresStore;
use crate::at_rest::to_ms;
use crate::{ENDED_STATUSES, Housekeeping, Result, RetentionRule, StoreError};

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
        let ids = self.runs_past_retention(rule, limit).await?;
        if ids.is_empty() {
            return Ok(0);
        }
        let mut tx = self.pool.begin().await.map_err(StoreError::Database)?;
        let mut deleted = 0;
        for table in [
            "action_records",
            "pending_authorizations",
            "device_polls",
            "runs",
        ] {
            let sql = if table == "runs" {
                format!("DELETE FROM runs WHERE {ENDED_STATUSES} AND id = ANY($1)")
            } else {
                format!(
                    "DELETE FROM {table} WHERE run_id IN \
                     (SELECT id FROM runs WHERE {ENDED_STATUSES} AND id = ANY($1))"
                )
            };
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

impl PostgresStore {
    /// At most `limit` ended runs `rule` lets go: by age oldest first, then each flow's beyond
    /// its newest `keep_per_flow`. Reads only, outside the deleting transaction, through
    /// migration 9's indexes.
    async fn runs_past_retention(&self, rule: &RetentionRule, limit: u32) -> Result<Vec<String>> {
        let mut ids: Vec<String> = Vec::new();
        if let Some(before) = rule.ended_before {
            ids = sqlx::query_scalar(&format!(
                "SELECT id FROM runs WHERE {ENDED_STATUSES} AND ended_at < $1 \
                 ORDER BY ended_at, id LIMIT $2"
            ))
            .bind(to_ms(before))
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(StoreError::Database)?;
        }
        let Some(keep) = rule.keep_per_flow else {
            return Ok(ids);
        };
        let keep = i64::try_from(keep).unwrap_or(i64::MAX);
        let flows: Vec<String> = sqlx::query_scalar(&format!(
            "SELECT flow_id FROM runs WHERE {ENDED_STATUSES} GROUP BY flow_id HAVING COUNT(*) > $1"
        ))
        .bind(keep)
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::Database)?;
        let mut seen: HashSet<String> = ids.iter().cloned().collect();
        for flow in flows {
            let room = usize::try_from(limit)
                .unwrap_or(usize::MAX)
                .saturating_sub(ids.len());
            if room == 0 {
                break;
            }
            let beyond: Vec<String> = sqlx::query_scalar(&format!(
                "SELECT id FROM runs WHERE flow_id = $1 AND {ENDED_STATUSES} \
                 ORDER BY ended_at DESC, id DESC LIMIT $2 OFFSET $3"
            ))
            .bind(&flow)
            .bind(i64::try_from(room).unwrap_or(i64::MAX))
            .bind(keep)
            .fetch_all(&self.pool)
            .await
            .map_err(StoreError::Database)?;
            ids.extend(beyond.into_iter().filter(|id| seen.insert(id.clone())));
        }
        Ok(ids)
    }
}
