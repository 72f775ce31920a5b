//! The SQLite store's reads that only tests make (the `testing` feature): a run's whole monitor
//! history and the runs in one status.

use async_trait::async_trait;
use tokenflow_core::RunStatus;

use super::{RUN_COLUMNS, SqliteStore, get};
use crate::{ActionRecordRow, Result, RunRow, StoreError, StoreTesting};

#[async_trait]
impl StoreTesting for SqliteStore {
    async fn action_records(&self, run_id: &str) -> Result<Vec<ActionRecordRow>> {
        sqlx::query("SELECT run_id, seq, json FROM action_records WHERE run_id = ? ORDER BY seq")
            .bind(run_id)
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

    async fn runs_with_status(&self, status: RunStatus) -> Result<Vec<RunRow>> {
        sqlx::query(&format!(
            "SELECT {RUN_COLUMNS} FROM runs WHERE status = ? ORDER BY started_at, id"
        ))
        .bind(status.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::Database)?
        .iter()
        .map(|row| self.run_from_row(row))
        .collect()
    }
}
