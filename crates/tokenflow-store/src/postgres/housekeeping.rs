//! The PostgreSQL store's housekeeping: deleting consumed pending authorizations and old schedule
//! firings.

use async_trait::async_trait;
use time::OffsetDateTime;

use super::PostgresStore;
use crate::at_rest::to_ms;
use crate::{Housekeeping, Result, StoreError};

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
}
