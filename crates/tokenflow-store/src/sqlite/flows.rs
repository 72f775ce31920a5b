//! The SQLite store's flows, versioned: a YAML that differs from the newest version becomes the
//! next version; the same YAML again keeps it.

use async_trait::async_trait;
use sqlx::sqlite::SqliteRow;
use time::OffsetDateTime;

use super::{SqliteStore, get};
use crate::at_rest::{from_ms, to_ms};
use crate::{FlowRow, FlowStore, FlowVersionRow, Result, StoreError};

#[async_trait]
impl FlowStore for SqliteStore {
    async fn put_flow(&self, id: &str, yaml: &str, now: OffsetDateTime) -> Result<FlowRow> {
        // IMMEDIATE: we read the newest version and then write the next one.
        let mut tx = self
            .writer
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(StoreError::Database)?;
        let newest = sqlx::query(
            "SELECT id, version, yaml, created_at FROM flows WHERE id = ? \
             ORDER BY version DESC LIMIT 1",
        )
        .bind(id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(StoreError::Database)?
        .map(|row| flow_from_row(&row))
        .transpose()?;
        if let Some(newest) = newest.as_ref().filter(|newest| newest.yaml == yaml) {
            tx.rollback().await.map_err(StoreError::Database)?;
            return Ok(newest.clone());
        }
        let created_at = to_ms(now);
        let flow = FlowRow {
            id: id.to_owned(),
            version: newest.map_or(1, |newest| newest.version + 1),
            yaml: yaml.to_owned(),
            created_at: from_ms(created_at)?,
        };
        sqlx::query("INSERT INTO flows (id, version, yaml, created_at) VALUES (?, ?, ?, ?)")
            .bind(&flow.id)
            .bind(flow.version)
            .bind(&flow.yaml)
            .bind(created_at)
            .execute(&mut *tx)
            .await
            .map_err(StoreError::Database)?;
        tx.commit().await.map_err(StoreError::Database)?;
        Ok(flow)
    }

    async fn get_flow(&self, id: &str) -> Result<Option<FlowRow>> {
        sqlx::query(
            "SELECT id, version, yaml, created_at FROM flows WHERE id = ? \
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
        sqlx::query("SELECT id, version, yaml, created_at FROM flows WHERE id = ? AND version = ?")
            .bind(id)
            .bind(version)
            .fetch_optional(&self.pool)
            .await
            .map_err(StoreError::Database)?
            .map(|row| flow_from_row(&row))
            .transpose()
    }

    async fn list_flow_versions(&self, id: &str, limit: u32) -> Result<Vec<FlowVersionRow>> {
        sqlx::query(
            "SELECT version, created_at, length(CAST(yaml AS BLOB)) AS bytes FROM flows WHERE id = ? \
             ORDER BY version DESC LIMIT ?",
        )
        .bind(id)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::Database)?
        .iter()
        .map(|row| {
            Ok(FlowVersionRow {
                version: get(row, "version")?,
                created_at: from_ms(get(row, "created_at")?)?,
                bytes: get(row, "bytes")?,
            })
        })
        .collect()
    }

    async fn list_flows(&self) -> Result<Vec<FlowRow>> {
        sqlx::query(
            "SELECT f.id, f.version, f.yaml, f.created_at FROM flows f \
             WHERE f.version = (SELECT MAX(version) FROM flows WHERE id = f.id) ORDER BY f.id",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::Database)?
        .iter()
        .map(flow_from_row)
        .collect()
    }
}

fn flow_from_row(row: &SqliteRow) -> Result<FlowRow> {
    Ok(FlowRow {
        id: get(row, "id")?,
        version: get(row, "version")?,
        yaml: get(row, "yaml")?,
        created_at: from_ms(get(row, "created_at")?)?,
    })
}
