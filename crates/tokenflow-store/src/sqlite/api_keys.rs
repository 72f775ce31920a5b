//! The SQLite store's aPI keys, stored as SHA-256 hashes only.

use async_trait::async_trait;
use sqlx::sqlite::SqliteRow;

use super::writes::conflict_or_database;
use super::{SqliteStore, get};
use crate::at_rest::{from_ms, to_ms};
use crate::{ApiKeyRow, ApiKeyStore, Result, StoreError};

#[async_trait]
impl ApiKeyStore for SqliteStore {
    async fn put_api_key(&self, key: &ApiKeyRow) -> Result<()> {
        sqlx::query("INSERT INTO api_keys (name, hash, created_at) VALUES (?, ?, ?)")
            .bind(&key.name)
            .bind(&key.hash)
            .bind(to_ms(key.created_at))
            .execute(&self.writer)
            .await
            .map_err(|err| {
                // Either the name or the hash is taken; say which without showing the hash.
                conflict_or_database(err, || {
                    format!("an API key named {} or with the same hash exists", key.name)
                })
            })?;
        Ok(())
    }

    async fn find_api_key(&self, hash: &str) -> Result<Option<ApiKeyRow>> {
        sqlx::query("SELECT name, hash, created_at FROM api_keys WHERE hash = ?")
            .bind(hash)
            .fetch_optional(&self.pool)
            .await
            .map_err(StoreError::Database)?
            .map(|row| api_key_from_row(&row))
            .transpose()
    }

    async fn list_api_keys(&self) -> Result<Vec<ApiKeyRow>> {
        sqlx::query("SELECT name, hash, created_at FROM api_keys ORDER BY name")
            .fetch_all(&self.pool)
            .await
            .map_err(StoreError::Database)?
            .iter()
            .map(api_key_from_row)
            .collect()
    }

    async fn delete_api_key(&self, name: &str) -> Result<bool> {
        let deleted = sqlx::query("DELETE FROM api_keys WHERE name = ?")
            .bind(name)
            .execute(&self.writer)
            .await
            .map_err(StoreError::Database)?;
        Ok(deleted.rows_affected() > 0)
    }
}

fn api_key_from_row(row: &SqliteRow) -> Result<ApiKeyRow> {
    Ok(ApiKeyRow {
        name: get(row, "name")?,
        hash: get(row, "hash")?,
        created_at: from_ms(get(row, "created_at")?)?,
    })
}
