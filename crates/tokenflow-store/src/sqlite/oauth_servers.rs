//! The SQLite store's oAuth servers created through the API: the spec as JSON, the client secret
//! sealed (write-only).

use async_trait::async_trait;

use super::SqliteStore;
use crate::at_rest::{oauth_private_key_aad, oauth_secret_aad, to_ms};
use crate::{OAuthServerRow, OAuthServerStore, Result, StoreError};

#[async_trait]
impl OAuthServerStore for SqliteStore {
    async fn put_oauth_server(&self, server: &OAuthServerRow) -> Result<()> {
        let secret = server
            .client_secret
            .as_ref()
            .map(|secret| self.seal_secret(secret, &oauth_secret_aad(&server.id)))
            .transpose()?;
        let private_key = server
            .private_key
            .as_ref()
            .map(|key| self.seal_secret(key, &oauth_private_key_aad(&server.id)))
            .transpose()?;
        sqlx::query(
            "INSERT INTO oauth_servers (id, spec_json, client_secret, private_key, updated_at) \
             VALUES (?, ?, ?, ?, ?) \
             ON CONFLICT (id) DO UPDATE SET spec_json = excluded.spec_json, \
             client_secret = excluded.client_secret, private_key = excluded.private_key, \
             updated_at = excluded.updated_at",
        )
        .bind(&server.id)
        .bind(&server.spec_json)
        .bind(secret)
        .bind(private_key)
        .bind(to_ms(server.updated_at))
        .execute(&self.writer)
        .await
        .map_err(StoreError::Database)?;
        Ok(())
    }

    async fn get_oauth_server(&self, id: &str) -> Result<Option<OAuthServerRow>> {
        sqlx::query(
            "SELECT id, spec_json, client_secret, private_key, updated_at FROM oauth_servers WHERE id = ?",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(StoreError::Database)?
        .map(|row| self.oauth_server_from_row(&row))
        .transpose()
    }

    async fn list_oauth_servers(&self) -> Result<Vec<OAuthServerRow>> {
        sqlx::query(
            "SELECT id, spec_json, client_secret, private_key, updated_at FROM oauth_servers ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::Database)?
        .iter()
        .map(|row| self.oauth_server_from_row(row))
        .collect()
    }

    async fn delete_oauth_server(&self, id: &str) -> Result<bool> {
        let deleted = sqlx::query("DELETE FROM oauth_servers WHERE id = ?")
            .bind(id)
            .execute(&self.writer)
            .await
            .map_err(StoreError::Database)?;
        Ok(deleted.rows_affected() > 0)
    }
}
