//! The SQLite side of a master key rotation (`crate::rotation`): its own connection to the
//! database file, each step one `BEGIN IMMEDIATE` transaction, so `tokenflow serve` keeps
//! writing between batches (it waits at most one batch for the write lock).

use std::path::Path;

use async_trait::async_trait;
use sqlx::Sqlite;
use sqlx::pool::PoolConnection;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use super::{MIGRATIONS, writes};
use crate::at_rest::SealedColumn;
use crate::crypto::{MasterKey, TAG_PREFIX_LEN};
use crate::migrations::migrator;
use crate::rotation::{ProgressFn, RotationBackend, RotationOutcome, rotate};
use crate::{Result, StoreError};

/// Rotates the database file at `path` (which must exist) from `old` to `new`, `batch` rows a
/// transaction; see [`crate::rotation`]. Applies the migrations first (the key fence needs them).
pub async fn rotate_master_key(
    path: &Path,
    old: &MasterKey,
    new: &MasterKey,
    batch: u32,
    progress: &mut ProgressFn<'_>,
) -> Result<RotationOutcome> {
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(false)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .foreign_keys(true)
        .busy_timeout(writes::BUSY_TIMEOUT);
    // A pool of one connection: the migrator's future over a pool is `Send`.
    let pool = SqlitePoolOptions::new()
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
        rotate(&mut SqliteRotation { conn }, old, new, batch, progress).await
    }
    .await;
    pool.close().await;
    outcome
}

struct SqliteRotation {
    conn: PoolConnection<Sqlite>,
}

impl SqliteRotation {
    async fn exec(&mut self, sql: &str) -> Result<()> {
        sqlx::query(sql)
            .execute(&mut *self.conn)
            .await
            .map(|_| ())
            .map_err(StoreError::Database)
    }

    /// Commits when `body` succeeded, rolls back otherwise.
    async fn end(&mut self, body: Result<u64>) -> Result<u64> {
        match body {
            Ok(count) => self.exec("COMMIT").await.map(|()| count),
            Err(err) => {
                let _ = self.exec("ROLLBACK").await;
                Err(err)
            }
        }
    }
}

#[async_trait]
impl RotationBackend for SqliteRotation {
    async fn key_state(&mut self) -> Result<(Vec<u8>, bool)> {
        let check: Option<Vec<u8>> =
            sqlx::query_scalar("SELECT value FROM meta WHERE key = 'key_check'")
                .fetch_optional(&mut *self.conn)
                .await
                .map_err(StoreError::Database)?;
        let unfinished: i64 =
            sqlx::query_scalar("SELECT count(*) FROM meta WHERE key = 'rotation'")
                .fetch_one(&mut *self.conn)
                .await
                .map_err(StoreError::Database)?;
        let check =
            check.ok_or_else(|| StoreError::Corrupt("the store has no key check".into()))?;
        Ok((check, unfinished > 0))
    }

    async fn begin(&mut self, fence: &[u8], key_check: Vec<u8>) -> Result<()> {
        self.exec("BEGIN IMMEDIATE").await?;
        let body = async {
            for (key, value) in [
                ("key_fence", fence.to_vec()),
                ("key_check", key_check),
                ("rotation", b"unfinished".to_vec()),
            ] {
                sqlx::query(
                    "INSERT INTO meta (key, value) VALUES (?, ?) \
                     ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                )
                .bind(key)
                .bind(value)
                .execute(&mut *self.conn)
                .await
                .map_err(StoreError::Database)?;
            }
            Ok(0)
        }
        .await;
        self.end(body).await.map(|_| ())
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
            "SELECT {key}, {column} FROM {table} WHERE {column} IS NOT NULL AND {key} > ? \
             ORDER BY {key} LIMIT ?"
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
        let sql = format!("UPDATE {table} SET {column} = ? WHERE {key} = ? AND {column} = ?");
        self.exec("BEGIN IMMEDIATE").await?;
        let body = async {
            let mut written = 0;
            for (id, old, new) in rows {
                written += sqlx::query(&sql)
                    .bind(new)
                    .bind(id)
                    .bind(old)
                    .execute(&mut *self.conn)
                    .await
                    .map_err(StoreError::Database)?
                    .rows_affected();
            }
            Ok(written)
        }
        .await;
        self.end(body).await
    }

    async fn remaining(&mut self, column: &SealedColumn, fence: &[u8]) -> Result<u64> {
        let SealedColumn { table, column, .. } = column;
        let sql = format!(
            "SELECT count(*) FROM {table} WHERE {column} IS NOT NULL \
             AND substr({column}, 1, {TAG_PREFIX_LEN}) IS NOT ?"
        );
        let count: i64 = sqlx::query_scalar(&sql)
            .bind(fence)
            .fetch_one(&mut *self.conn)
            .await
            .map_err(StoreError::Database)?;
        Ok(u64::try_from(count).unwrap_or(0))
    }

    async fn finish(&mut self) -> Result<()> {
        self.exec("DELETE FROM meta WHERE key = 'rotation'").await
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::BTreeSet;

    use crate::at_rest::SEALED_COLUMNS;
    use crate::crypto::MasterKey;
    use crate::sqlite::SqliteStore;

    /// Every BLOB column holds sealed values (migrations/sqlite/0001_init.sql): a new one must be
    /// in `SEALED_COLUMNS`, so that a rotation re-seals it, and behind the key fence's triggers.
    #[tokio::test]
    async fn every_blob_column_is_rotated_and_fenced() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path(), &MasterKey::generate().unwrap())
            .await
            .unwrap();
        let blobs: Vec<(String, String)> = sqlx::query_as(
            "SELECT m.name, p.name FROM sqlite_master m, pragma_table_info(m.name) p \
             WHERE m.type = 'table' AND p.type = 'BLOB' \
             AND m.name NOT IN ('meta', '_sqlx_migrations')",
        )
        .fetch_all(&store.pool)
        .await
        .unwrap();
        let rotated: BTreeSet<(String, String)> = SEALED_COLUMNS
            .iter()
            .map(|c| (c.table.to_owned(), c.column.to_owned()))
            .collect();
        assert_eq!(blobs.into_iter().collect::<BTreeSet<_>>(), rotated);
        for (table, column) in &rotated {
            for event in ["insert", "update"] {
                let sql: String = sqlx::query_scalar(
                    "SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name = ?",
                )
                .bind(format!("{table}_key_fence_{event}"))
                .fetch_one(&store.pool)
                .await
                .unwrap();
                assert!(sql.contains(&format!("NEW.{column}")), "{sql}");
            }
        }
        store.close().await;
    }
}
