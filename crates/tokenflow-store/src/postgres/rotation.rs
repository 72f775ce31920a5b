//! The PostgreSQL side of a master key rotation (`crate::rotation`): one connection of its own,
//! each step one transaction. Setting the fence takes the fence's advisory lock exclusively
//! (migration 7 takes it shared in every sealed write), so it commits only after every
//! transaction that passed the old fence has ended, and every later write sees it.

use std::str::FromStr;

use async_trait::async_trait;
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Acquire, Postgres};
use tokenflow_core::SecretString;

use super::MIGRATIONS;
use crate::at_rest::SealedColumn;
use crate::crypto::{MasterKey, TAG_PREFIX_LEN};
use crate::migrations::migrator;
use crate::rotation::{ProgressFn, RotationBackend, RotationOutcome, rotate};
use crate::{Result, StoreError};

/// The advisory lock of the key fence: the ASCII of "tokenfen", as in migration 7.
const FENCE_LOCK: i64 = 8_390_042_714_202_596_718;

/// Rotates the database at `url` from `old` to `new`, `batch` rows a transaction, while any
/// number of instances keep running; see [`crate::rotation`]. Applies the migrations first.
pub async fn rotate_master_key(
    url: &SecretString,
    old: &MasterKey,
    new: &MasterKey,
    batch: u32,
    progress: &mut ProgressFn<'_>,
) -> Result<RotationOutcome> {
    let options = PgConnectOptions::from_str(url.expose()).map_err(StoreError::Database)?;
    // A pool of one connection: the migrator's future over a pool is `Send`.
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await
        .map_err(StoreError::Database)?;
    let outcome = async {
        migrator(MIGRATIONS)
            .await?
            .run(&pool)
            .await
            .map_err(StoreError::Migration)?;
        let conn = pool.acquire().await.map_err(StoreError::Database)?;
        rotate(&mut PgRotation { conn }, old, new, batch, progress).await
    }
    .await;
    pool.close().await;
    outcome
}

struct PgRotation {
    conn: PoolConnection<Postgres>,
}

#[async_trait]
impl RotationBackend for PgRotation {
    async fn key_state(&mut self) -> Result<(Vec<u8>, bool)> {
        let check: Option<Vec<u8>> =
            sqlx::query_scalar("SELECT value FROM meta WHERE key = 'key_check'")
                .fetch_optional(&mut *self.conn)
                .await
                .map_err(StoreError::Database)?;
        let unfinished: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM meta WHERE key = 'rotation')")
                .fetch_one(&mut *self.conn)
                .await
                .map_err(StoreError::Database)?;
        let check =
            check.ok_or_else(|| StoreError::Corrupt("the store has no key check".into()))?;
        Ok((check, unfinished))
    }

    async fn begin(&mut self, fence: &[u8], key_check: Vec<u8>) -> Result<()> {
        let mut tx = self.conn.begin().await.map_err(StoreError::Database)?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(FENCE_LOCK)
            .execute(&mut *tx)
            .await
            .map_err(StoreError::Database)?;
        for (key, value) in [
            ("key_fence", fence.to_vec()),
            ("key_check", key_check),
            ("rotation", b"unfinished".to_vec()),
        ] {
            sqlx::query(
                "INSERT INTO meta (key, value) VALUES ($1, $2) \
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            )
            .bind(key)
            .bind(value)
            .execute(&mut *tx)
            .await
            .map_err(StoreError::Database)?;
        }
        tx.commit().await.map_err(StoreError::Database)
    }

    async fn page(
        &mut self,
        column: &SealedColumn,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<(String, Vec<u8>)>> {
        let SealedColumn {
            table, key, column, ..
        } = column;
        let sql = format!(
            "SELECT {key}, {column} FROM {table} WHERE {column} IS NOT NULL AND {key} > $1 \
             ORDER BY {key} LIMIT $2"
        );
        sqlx::query_as(&sql)
            .bind(after.unwrap_or(""))
            .bind(i64::from(limit))
            .fetch_all(&mut *self.conn)
            .await
            .map_err(StoreError::Database)
    }

    async fn reseal(
        &mut self,
        column: &SealedColumn,
        rows: &[(String, Vec<u8>, Vec<u8>)],
    ) -> Result<u64> {
        let SealedColumn {
            table, key, column, ..
        } = column;
        let sql = format!("UPDATE {table} SET {column} = $1 WHERE {key} = $2 AND {column} = $3");
        let mut tx = self.conn.begin().await.map_err(StoreError::Database)?;
        let mut written = 0;
        for (id, old, new) in rows {
            written += sqlx::query(&sql)
                .bind(new)
                .bind(id)
                .bind(old)
                .execute(&mut *tx)
                .await
                .map_err(StoreError::Database)?
                .rows_affected();
        }
        tx.commit().await.map_err(StoreError::Database)?;
        Ok(written)
    }

    async fn remaining(&mut self, column: &SealedColumn, fence: &[u8]) -> Result<u64> {
        let SealedColumn { table, column, .. } = column;
        let sql = format!(
            "SELECT count(*) FROM {table} WHERE {column} IS NOT NULL \
             AND substring({column} FROM 1 FOR {TAG_PREFIX_LEN}) IS DISTINCT FROM $1"
        );
        let count: i64 = sqlx::query_scalar(&sql)
            .bind(fence)
            .fetch_one(&mut *self.conn)
            .await
            .map_err(StoreError::Database)?;
        Ok(u64::try_from(count).unwrap_or(0))
    }

    async fn finish(&mut self) -> Result<()> {
        sqlx::query("DELETE FROM meta WHERE key = 'rotation'")
            .execute(&mut *self.conn)
            .await
            .map(|_| ())
            .map_err(StoreError::Database)
    }
}
