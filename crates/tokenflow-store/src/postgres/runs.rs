//! The PostgreSQL store's runs and their monitor records: created, saved with the records of each
//! step, suspended at a user login, listed, read a page at a time, and taken over from an instance
//! that died (leases).

use async_trait::async_trait;
use sqlx::{Postgres, QueryBuilder};
use time::OffsetDateTime;

use super::{PENDING_COLUMNS, PostgresStore, RUN_COLUMNS, conflict_or_database, get, run_status};
use crate::at_rest::{from_ms, list_limit, pending_payload_aad, run_state_aad, state_hash, to_ms};
use crate::{
    ActionRecordRow, PendingRow, Result, RunFilter, RunRow, RunStore, RunSummary, StoreError,
};

#[async_trait]
impl RunStore for PostgresStore {
    async fn create_run_with_records(
        &self,
        run: &RunRow,
        records: &[ActionRecordRow],
    ) -> Result<()> {
        crate::types::check_records_of(run, records)?;
        let (seqs, jsons) = record_columns(records);
        // One statement, one round trip and one commit: the run and its records (the foreign
        // key is checked at the end of the statement, when the run exists).
        sqlx::query(&format!(
            "WITH r AS (INSERT INTO runs ({RUN_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             RETURNING id) \
             INSERT INTO action_records (run_id, seq, json) \
             SELECT r.id, t.seq, t.json FROM r, unnest($10::bigint[], $11::text[]) AS t(seq, json)"
        ))
        .bind(&run.id)
        .bind(&run.flow_id)
        .bind(run.flow_version)
        .bind(run.status.as_str())
        .bind(self.seal_secret(&run.state, &run_state_aad(&run.id))?)
        .bind(&run.browser_binding)
        .bind(to_ms(run.started_at))
        .bind(to_ms(run.updated_at))
        .bind(run.ended_at.map(to_ms))
        .bind(seqs)
        .bind(jsons)
        .execute(&self.pool)
        .await
        .map_err(|err| {
            conflict_or_database(err, || crate::types::create_conflict(run, records))
        })?;
        Ok(())
    }

    async fn record_action_outcomes(
        &self,
        run: &RunRow,
        records: &[ActionRecordRow],
    ) -> Result<()> {
        crate::types::check_records_of(run, records)?;
        let (seqs, jsons) = record_columns(records);
        // One statement (one round trip, one commit): the records are inserted only for the run
        // the update found, and the count tells whether it found one.
        let updated: i64 = sqlx::query_scalar(
            "WITH u AS (UPDATE runs SET status = $1, state = $2, browser_binding = $3, \
             updated_at = $4, ended_at = $5 WHERE id = $6 RETURNING id), \
             i AS (INSERT INTO action_records (run_id, seq, json) \
             SELECT u.id, t.seq, t.json FROM u, unnest($7::bigint[], $8::text[]) AS t(seq, json)) \
             SELECT count(*) FROM u",
        )
        .bind(run.status.as_str())
        .bind(self.seal_secret(&run.state, &run_state_aad(&run.id))?)
        .bind(&run.browser_binding)
        .bind(to_ms(run.updated_at))
        .bind(run.ended_at.map(to_ms))
        .bind(&run.id)
        .bind(seqs)
        .bind(jsons)
        .fetch_one(&self.pool)
        .await
        .map_err(|err| {
            conflict_or_database(err, || crate::types::records_conflict(run, records))
        })?;
        if updated == 0 {
            return Err(StoreError::NotFound(format!("run {}", run.id)));
        }
        Ok(())
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
        let mut tx = self.pool.begin().await.map_err(StoreError::Database)?;
        self.update_run(&mut tx, run).await?;
        sqlx::query(&format!(
            "INSERT INTO pending_authorizations ({PENDING_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6)"
        ))
        .bind(&hash)
        .bind(&pending.run_id)
        .bind(&pending.action)
        .bind(payload)
        .bind(to_ms(pending.created_at))
        .bind(to_ms(pending.expires_at))
        .execute(&mut *tx)
        .await
        .map_err(|err| {
            // Never the state or its hash in a message (PostgreSQL's own detail names the key,
            // so the cause is dropped).
            conflict_or_database(err, || {
                "a pending authorization with this state exists".into()
            })
        })?;
        tx.commit().await.map_err(StoreError::Database)
    }

    async fn get_run(&self, id: &str) -> Result<Option<RunRow>> {
        sqlx::query(&format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(StoreError::Database)?
            .map(|row| self.run_from_row(&row))
            .transpose()
    }

    async fn list_runs(&self, filter: &RunFilter) -> Result<Vec<RunSummary>> {
        let mut query = QueryBuilder::<Postgres>::new(
            "SELECT id, flow_id, flow_version, status, started_at, ended_at FROM runs WHERE TRUE",
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
        query
            .push(" ORDER BY started_at DESC, id DESC LIMIT ")
            .push_bind(i64::from(list_limit(filter.limit)))
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
            "SELECT run_id, seq, json FROM action_records WHERE run_id = $1 AND seq >= $2 \
             ORDER BY seq LIMIT $3",
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
        let count: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM action_records WHERE run_id = $1")
                .bind(run_id)
                .fetch_one(&self.pool)
                .await
                .map_err(StoreError::Database)?;
        Ok(u64::try_from(count).unwrap_or(0))
    }

    async fn count_waiting_runs(&self, flow_id: &str) -> Result<u64> {
        let count: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM runs WHERE flow_id = $1 AND status = 'waiting'",
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
        sqlx::query("UPDATE runs SET lease_owner = $1, lease_until = $2 WHERE id = $3 AND status = 'running'")
        .bind(owner)
        .bind(to_ms(until))
        .bind(run_id)
        .execute(&self.pool)
        .await
        .map_err(StoreError::Database)?;
        Ok(())
    }

    async fn runs_with_expired_lease(
        &self,
        now: OffsetDateTime,
        grace_ms: i64,
    ) -> Result<Vec<String>> {
        sqlx::query_scalar("SELECT id FROM runs WHERE status = 'running' AND GREATEST(COALESCE(lease_until, 0), updated_at + $1) < $2 ORDER BY id")
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
        // Under READ COMMITTED a concurrent second UPDATE waits for the first, then re-checks
        // its WHERE on the row the first wrote (status `failed`) and changes nothing.
        let failed_it = sqlx::query(
            "UPDATE runs SET status = 'failed', state = $1, updated_at = $2, ended_at = $3 \
             WHERE id = $4 AND status = 'running' \
             AND GREATEST(COALESCE(lease_until, 0), updated_at + $5) < $6",
        )
        .bind(self.seal_secret(&failed.state, &run_state_aad(&failed.id))?)
        .bind(to_ms(failed.updated_at))
        .bind(failed.ended_at.map(to_ms))
        .bind(&failed.id)
        .bind(grace_ms)
        .bind(to_ms(now))
        .execute(&self.pool)
        .await
        .map_err(StoreError::Database)?;
        Ok(failed_it.rows_affected() == 1)
    }
}

/// The records' `seq` and `json` columns, as arrays for `unnest`.
fn record_columns(records: &[ActionRecordRow]) -> (Vec<i64>, Vec<&str>) {
    records
        .iter()
        .map(|record| (record.seq, record.json.as_str()))
        .unzip()
}
