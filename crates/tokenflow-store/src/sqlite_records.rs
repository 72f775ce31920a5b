//! The sqlite side of reading a run's monitor records a page at a time, so neither the API nor
//! the runner ever has to hold a long run's whole history. Split from `sqlite.rs` by
//! responsibility; the `Store` impl there delegates here.

use super::*;

impl SqliteStore {
    pub(crate) async fn sql_action_records_page(
        &self,
        run_id: &str,
        offset: u64,
        limit: u32,
    ) -> Result<Vec<ActionRecordRow>> {
        // The primary key (run_id, seq) serves both the range and the order.
        sqlx::query(
            "SELECT run_id, seq, json FROM action_records WHERE run_id = ? AND seq >= ? \
             ORDER BY seq LIMIT ?",
        )
        .bind(run_id)
        .bind(i64::try_from(offset).unwrap_or(i64::MAX))
        .bind(i64::from(list_limit(limit)))
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::Database)?
        .iter()
        .map(|row| {
            Ok(ActionRecordRow {
                run_id: get(row, "run_id")?,
                seq: get(row, "seq")?,
                json: get(row, "json")?,
            })
        })
        .collect()
    }

    pub(crate) async fn sql_action_record_count(&self, run_id: &str) -> Result<u64> {
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM action_records WHERE run_id = ?")
            .bind(run_id)
            .fetch_one(&self.pool)
            .await
            .map_err(StoreError::Database)?;
        Ok(u64::try_from(count).unwrap_or(0))
    }
}
