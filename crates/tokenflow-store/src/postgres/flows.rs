//! The PostgreSQL store's flows, versioned: a YAML that differs from the newest version becomes the
//! next version; the same YAML again keeps it.

use async_trait::async_trait;
use sqlx::postgres::PgRow;
use time::OffsetDateTime;

use super::{PUT_FLOW_ATTEMPTS, PostgresStore, get};
use crate::at_rest::{from_ms, to_ms};
use crate::{FlowRow, FlowStore, Result, StoreError};

#[async_trait]
impl FlowStore for PostgresStore {
    async fn put_flow(&self, id: &str, yaml: &str, now: OffsetDateTime) -> Result<FlowRow> {
        // Optimistic, with the primary key (id, version) as the arbiter: read the newest
        // version, then insert the next one unless somebody already has. A writer that loses
        // re-reads and decides again, so concurrent writers of the same yaml all end up with
        // the one version it got, and writers of different yamls get consecutive versions —
        // what SQLite's `BEGIN IMMEDIATE` gives by serializing them.
        for _ in 0..PUT_FLOW_ATTEMPTS {
            let newest = self.get_flow(id).await?;
            if let Some(newest) = newest.as_ref().filter(|newest| newest.yaml == yaml) {
                return Ok(newest.clone());
            }
            let inserted = sqlx::query(
                "INSERT INTO flows (id, version, yaml, created_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (id, version) DO NOTHING RETURNING id, version, yaml, created_at",
            )
            .bind(id)
            .bind(newest.map_or(1, |newest| newest.version + 1))
            .bind(yaml)
            .bind(to_ms(now))
            .fetch_optional(&self.pool)
            .await
            .map_err(StoreError::Database)?;
            if let Some(row) = inserted {
                return flow_from_row(&row);
            }
        }
        Err(StoreError::Conflict(format!(
            "flow {id} kept changing while it was being saved; try again"
        )))
    }

    async fn get_flow(&self, id: &str) -> Result<Option<FlowRow>> {
        sqlx::query(
            "SELECT id, version, yaml, created_at FROM flows WHERE id = $1 \
             ORDER BY version DESC LIMIT 1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(StoreError::Database)?
        .map(|row| flow_from_row(&row))
        .transpose()
    }

    async fn get_flow_version(&self, id: &str, version: i64) -> Result<Option<FlowRow>> {
        sqlx::query(
            "SELECT id, version, yaml, created_at FROM flows WHERE id = $1 AND version = $2",
        )
        .bind(id)
        .bind(version)
        .fetch_optional(&self.pool)
        .await
        .map_err(StoreError::Database)?
        .map(|row| flow_from_row(&row))
        .transpose()
    }

    async fn list_flows(&self) -> Result<Vec<FlowRow>> {
        sqlx::query(
            "SELECT DISTINCT ON (id) id, version, yaml, created_at FROM flows \
             ORDER BY id, version DESC",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::Database)?
        .iter()
        .map(flow_from_row)
        .collect()
    }
}

fn flow_from_row(row: &PgRow) -> Result<FlowRow> {
    Ok(FlowRow {
        id: get(row, "id")?,
        version: get(row, "version")?,
        yaml: get(row, "yaml")?,
        created_at: from_ms(get(row, "created_at")?)?,
    })
}
