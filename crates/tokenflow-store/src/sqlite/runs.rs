//! The SQLite store's runs and their monitor records: created, saved with the records of each step,
//! suspended at a user login, listed, read a page at a time, and taken over from an instance that
//! died (leases).

use async_trait::async_trait;
use sqlx::{QueryBuilder, Sqlite};
use time::OffsetDateTime;

use super::writes::{Bind, Statement, Write};
use super::{RUN_COLUMNS, SqliteStore, UPDATE_RUN, get, run_status, run_update_binds};
use crate::at_rest::{from_ms, list_limit, pending_payload_aad, state_hash, to_ms};
use crate::{
    ActionRecordRow, PendingRow, Result, RunFilter, RunRow, RunStore, RunSummary, StoreError,
};

#[async_trait]
impl RunStore for SqliteStore {
    async fn create_run_with_records(
        &self,
        run: &RunRow,
        records: &[ActionRecordRow],
    ) -> Result<()> {
        crate::types::check_records_of(run, records)?;
        let mut statements = vec![Statement::new(
            "INSERT INTO runs (id, flow_id, flow_version, status, state, browser_binding, \
             started_at, updated_at, ended_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            vec![
                Bind::Text(run.id.clone()),
                Bind::Text(run.flow_id.clone()),
                Bind::Int(run.flow_version),
                Bind::Text(run.status.as_str().to_owned()),
                Bind::Blob(self.seal_run_state(run)?),
                Bind::OptText(run.browser_binding.clone()),
                Bind::Int(to_ms(run.started_at)),
                Bind::Int(to_ms(run.updated_at)),
                Bind::OptInt(run.ended_at.map(to_ms)),
            ],
        )];
        statements.extend(records.iter().map(insert_record));
        let conflict = crate::types::create_conflict(run, records);
        self.writes
            .write(Write {
                statements,
                run_id: run.id.clone(),
                conflict,
            })
            .await
    }

    async fn record_action_outcomes(
        &self,
        run: &RunRow,
        records: &[ActionRecordRow],
    ) -> Result<()> {
        crate::types::check_records_of(run, records)?;
        let mut statements = vec![Statement::new(
            UPDATE_RUN,
            run_update_binds(run, self.seal_run_state(run)?),
        )];
        statements.extend(records.iter().map(insert_record));
        let conflict = crate::types::records_conflict(run, records);
        self.writes
            .write(Write {
                statements,
                run_id: run.id.clone(),
                conflict,
            })
            .await
    }

    async fn suspend_run(&self, run: &RunRow, pending: &PendingRow) -> Result<()> {
        if pending.run_id != run.id {
            return Err(StoreError::Conflict(format!(
                "pending authorization of run {} saved with run {}",
                pending.run_id, run.id
            )));
        }
        let hash = state_hash(&pending.state);
        let payload = self.seal_secret(&pending.payload, &pending_payload_aad(&hash))?;
        self.writes
            .write(Write {
                statements: vec![
                    Statement::new(UPDATE_RUN, run_update_binds(run, self.seal_run_state(run)?)),
                    Statement::new(
                        "INSERT INTO pending_authorizations \
                         (state_hash, run_id, action, payload, created_at, expires_at) \
                         VALUES (?, ?, ?, ?, ?, ?)",
                        vec![
                            Bind::Text(hash),
                            Bind::Text(pending.run_id.clone()),
                            Bind::Text(pending.action.clone()),
                            Bind::Blob(payload),
                            Bind::Int(to_ms(pending.created_at)),
                            Bind::Int(to_ms(pending.expires_at)),
                        ],
                    ),
                ],
                run_id: run.id.clone(),
                // Never the state or its hash in a message.
                conflict: "a pending authorization with this state exists".to_owned(),
            })
            .await
    }

    async fn get_run(&self, id: &str) -> Result<Option<RunRow>> {
        sqlx::query(&format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = ?"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(StoreError::Database)?
            .map(|row| self.run_from_row(&row))
            .transpose()
    }

    async fn list_runs(&self, filter: &RunFilter) -> Result<Vec<RunSummary>> {
        let mut query = QueryBuilder::<Sqlite>::new(
            "SELECT id, flow_id, flow_version, status, started_at, ended_at FROM runs WHERE 1 = 1",
        );
        if let Some(flow_id) = &filter.flow_id {
            query.push(" AND flow_id = ").push_bind(flow_id.clone());
        }
        if let Some(status) = &filter.status {
            query.push(" AND status = ").push_bind(status.as_str());
        }
        if let Some(after) = filter.started_after {
            query.push(" AND started_at >= ").push_bind(to_ms(after));
        }
        if let Some(before) = filter.started_before {
            query.push(" AND started_at < ").push_bind(to_ms(before));
        }
        let limit = list_limit(filter.limit);
        query
            .push(" ORDER BY started_at DESC, id DESC LIMIT ")
            .push_bind(i64::from(limit))
            .push(" OFFSET ")
            .push_bind(i64::from(filter.offset));
        query
            .build()
            .fetch_all(&self.pool)
            .await
            .map_err(StoreError::Database)?
            .iter()
            .map(|row| {
                Ok(RunSummary {
                    id: get(row, "id")?,
                    flow_id: get(row, "flow_id")?,
                    flow_version: get(row, "flow_version")?,
                    status: run_status(row)?,
                    started_at: from_ms(get(row, "started_at")?)?,
                    ended_at: get::<Option<i64>>(row, "ended_at")?
                        .map(from_ms)
                        .transpose()?,
                })
            })
            .collect()
    }

    async fn action_records_page(
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

    async fn action_record_count(&self, run_id: &str) -> Result<u64> {
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM action_records WHERE run_id = ?")
            .bind(run_id)
            .fetch_one(&self.pool)
            .await
            .map_err(StoreError::Database)?;
        Ok(u64::try_from(count).unwrap_or(0))
    }

    async fn count_waiting_runs(&self, flow_id: &str) -> Result<u64> {
        let count: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM runs WHERE flow_id = ? AND status = 'waiting'",
        )
        .bind(flow_id)
        .fetch_one(&self.pool)
        .await
        .map_err(StoreError::Database)?;
        Ok(u64::try_from(count).unwrap_or(0))
    }

    async fn renew_run_lease(
        &self,
        run_id: &str,
        owner: &str,
        until: OffsetDateTime,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE runs SET lease_owner = ?, lease_until = ? WHERE id = ? AND status = 'running'",
        )
        .bind(owner)
        .bind(to_ms(until))
        .bind(run_id)
        .execute(&self.writer)
        .await
        .map_err(StoreError::Database)?;
        Ok(())
    }

    async fn runs_with_expired_lease(
        &self,
        now: OffsetDateTime,
        grace_ms: i64,
    ) -> Result<Vec<String>> {
        sqlx::query_scalar("SELECT id FROM runs WHERE status = 'running' AND MAX(COALESCE(lease_until, 0), updated_at + ?) < ? ORDER BY id")
            .bind(grace_ms)
            .bind(to_ms(now))
            .fetch_all(&self.pool)
            .await
            .map_err(StoreError::Database)
    }

    async fn fail_interrupted_run(
        &self,
        failed: &RunRow,
        now: OffsetDateTime,
        grace_ms: i64,
    ) -> Result<bool> {
        // Through the write connection, not the group commit: it is a rare write whose answer
        // (did this row change?) the batch's all-or-`NotFound` reply cannot carry. Both share
        // the one connection, so they are serialized and never race.
        let failed_it = sqlx::query(
            "UPDATE runs SET status = 'failed', state = ?, updated_at = ?, ended_at = ? \
             WHERE id = ? AND status = 'running' \
             AND MAX(COALESCE(lease_until, 0), updated_at + ?) < ?",
        )
        .bind(self.seal_run_state(failed)?)
        .bind(to_ms(failed.updated_at))
        .bind(failed.ended_at.map(to_ms))
        .bind(&failed.id)
        .bind(grace_ms)
        .bind(to_ms(now))
        .execute(&self.writer)
        .await
        .map_err(StoreError::Database)?;
        Ok(failed_it.rows_affected() == 1)
    }
}

fn insert_record(record: &ActionRecordRow) -> Statement {
    Statement::new(
        "INSERT INTO action_records (run_id, seq, json) VALUES (?, ?, ?)",
        vec![
            Bind::Text(record.run_id.clone()),
            Bind::Int(record.seq),
            Bind::Text(record.json.clone()),
        ],
    )
}
