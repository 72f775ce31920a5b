//! The PostgreSQL store's schedule firings: each claimed once, across instances, by its primary
//! key.

use async_trait::async_trait;
use sqlx::postgres::PgRow;
use time::OffsetDateTime;

use super::{PostgresStore, get};
use crate::at_rest::{from_ms, to_ms};
use crate::{FiringRow, Result, ScheduleStore, StoreError};

#[async_trait]
impl ScheduleStore for PostgresStore {
    async fn claim_firing(
        &self,
        flow_id: &str,
        due: i64,
        run_id: &str,
        now: OffsetDateTime,
    ) -> Result<bool> {
        // A concurrent claimer's uncommitted insert of the same key makes this one wait for its
        // outcome, then do nothing: exactly one claim, across instances.
        let claimed = sqlx::query(
            "INSERT INTO schedule_firings (flow_id, due, run_id, claimed_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (flow_id, due) DO NOTHING",
        )
        .bind(flow_id)
        .bind(due)
        .bind(run_id)
        .bind(to_ms(now))
        .execute(&self.pool)
        .await
        .map_err(StoreError::Database)?;
        Ok(claimed.rows_affected() == 1)
    }

    async fn last_firing(&self, flow_id: &str) -> Result<Option<FiringRow>> {
        sqlx::query(
            "SELECT flow_id, due, run_id, claimed_at FROM schedule_firings WHERE flow_id = $1 \
             ORDER BY due DESC LIMIT 1",
        )
        .bind(flow_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(StoreError::Database)?
        .map(|row| firing_from_row(&row))
        .transpose()
    }

    async fn firings(&self, flow_id: &str, limit: u32) -> Result<Vec<FiringRow>> {
        let rows = sqlx::query(
            "SELECT flow_id, due, run_id, claimed_at FROM \
             (SELECT flow_id, due, run_id, claimed_at FROM schedule_firings WHERE flow_id = $1 \
              ORDER BY due DESC LIMIT $2) AS newest \
             ORDER BY due ASC",
        )
        .bind(flow_id)
        .bind(i64::from(limit.clamp(1, 10_000)))
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::Database)?;
        rows.iter().map(firing_from_row).collect()
    }
}

fn firing_from_row(row: &PgRow) -> Result<FiringRow> {
    Ok(FiringRow {
        flow_id: get(row, "flow_id")?,
        due: get(row, "due")?,
        run_id: get(row, "run_id")?,
        claimed_at: from_ms(get(row, "claimed_at")?)?,
    })
}
