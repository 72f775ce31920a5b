//! The PostgreSQL store's flows, versioned: a YAML that differs from the newest version becomes the
//! next version; the same YAML again keeps it.

use async_trait::async_trait;
use sqlx::postgres::PgRow;
use time::OffsetDateTime;

use super::{PUT_FLOW_ATTEMPTS, PostgresStore, get};
use crate::at_rest::{from_ms, to_ms};
use crate::{FlowChange, FlowChanges, FlowRow, FlowStore, FlowVersionRow, Result, StoreError};

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
            // The notification goes out with the commit, to every instance's flow feed.
            let inserted = sqlx::query(
                "WITH ins AS (INSERT INTO flows (id, version, yaml, created_at) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (id, version) DO NOTHING \
                 RETURNING id, version, yaml, created_at) \
                 SELECT ins.id, ins.version, ins.yaml, ins.created_at FROM ins, \
                 LATERAL (SELECT pg_notify('tokenflow_flows', ins.id)) AS notified",
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

    fn flow_changes(&self) -> Option<Box<dyn FlowChanges>> {
        Some(Box::new(PgFlowChanges {
            pool: self.pool.clone(),
            listener: None,
        }))
    }

    async fn list_flow_versions(&self, id: &str, limit: u32) -> Result<Vec<FlowVersionRow>> {
        sqlx::query(
            "SELECT version, created_at, octet_length(yaml)::BIGINT AS bytes FROM flows WHERE id = $1 \
             ORDER BY version DESC LIMIT $2",
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

/// The notification channel of new flow versions.
const FLOWS_CHANNEL: &str = "tokenflow_flows";

/// Flow changes from PostgreSQL's `NOTIFY`, on a connection of its own.
struct PgFlowChanges {
    pool: sqlx::PgPool,
    listener: Option<sqlx::postgres::PgListener>,
}

#[async_trait]
impl FlowChanges for PgFlowChanges {
    async fn next(&mut self) -> FlowChange {
        loop {
            let Some(listener) = self.listener.as_mut() else {
                match listen(&self.pool).await {
                    Ok(listener) => {
                        self.listener = Some(listener);
                        return FlowChange::Listening;
                    }
                    Err(err) => {
                        tracing::warn!(error = %err, "cannot listen for flow changes; retrying in 1 s");
                        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                        continue;
                    }
                }
            };
            match listener.try_recv().await {
                Ok(Some(notification)) => {
                    return FlowChange::Changed(notification.payload().to_owned());
                }
                // The connection was lost: what was sent meanwhile is gone. A new connection
                // is made at the next call.
                Ok(None) | Err(_) => {
                    self.listener = None;
                    return FlowChange::Lost;
                }
            }
        }
    }
}

async fn listen(
    pool: &sqlx::PgPool,
) -> std::result::Result<sqlx::postgres::PgListener, sqlx::Error> {
    let mut listener = sqlx::postgres::PgListener::connect_with(pool).await?;
    listener.listen(FLOWS_CHANNEL).await?;
    Ok(listener)
}
