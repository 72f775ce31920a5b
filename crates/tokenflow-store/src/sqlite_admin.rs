//! The sqlite side of the administrative tables: OAuth servers created through the API
//! (secret sealed), API keys (hashes only) and schedule firings (claimed once). Split from
//! `sqlite.rs` by responsibility; the `Store` impl there delegates here.

use super::*;

impl SqliteStore {
    pub(crate) async fn sql_put_oauth_server(&self, server: &OAuthServerRow) -> Result<()> {
        let secret = server
            .client_secret
            .as_ref()
            .map(|secret| self.seal_secret(secret, &oauth_secret_aad(&server.id)))
            .transpose()?;
        sqlx::query(
            "INSERT INTO oauth_servers (id, spec_json, client_secret, updated_at) \
             VALUES (?, ?, ?, ?) \
             ON CONFLICT (id) DO UPDATE SET spec_json = excluded.spec_json, \
             client_secret = excluded.client_secret, updated_at = excluded.updated_at",
        )
        .bind(&server.id)
        .bind(&server.spec_json)
        .bind(secret)
        .bind(to_ms(server.updated_at))
        .execute(&self.writer)
        .await
        .map_err(StoreError::Database)?;
        Ok(())
    }
    pub(crate) async fn sql_get_oauth_server(&self, id: &str) -> Result<Option<OAuthServerRow>> {
        sqlx::query(
            "SELECT id, spec_json, client_secret, updated_at FROM oauth_servers WHERE id = ?",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(StoreError::Database)?
        .map(|row| self.oauth_server_from_row(&row))
        .transpose()
    }
    pub(crate) async fn sql_list_oauth_servers(&self) -> Result<Vec<OAuthServerRow>> {
        sqlx::query(
            "SELECT id, spec_json, client_secret, updated_at FROM oauth_servers ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::Database)?
        .iter()
        .map(|row| self.oauth_server_from_row(row))
        .collect()
    }
    pub(crate) async fn sql_delete_oauth_server(&self, id: &str) -> Result<bool> {
        let deleted = sqlx::query("DELETE FROM oauth_servers WHERE id = ?")
            .bind(id)
            .execute(&self.writer)
            .await
            .map_err(StoreError::Database)?;
        Ok(deleted.rows_affected() > 0)
    }
    pub(crate) async fn sql_put_api_key(&self, key: &ApiKeyRow) -> Result<()> {
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
    pub(crate) async fn sql_find_api_key(&self, hash: &str) -> Result<Option<ApiKeyRow>> {
        sqlx::query("SELECT name, hash, created_at FROM api_keys WHERE hash = ?")
            .bind(hash)
            .fetch_optional(&self.pool)
            .await
            .map_err(StoreError::Database)?
            .map(|row| api_key_from_row(&row))
            .transpose()
    }
    pub(crate) async fn sql_list_api_keys(&self) -> Result<Vec<ApiKeyRow>> {
        sqlx::query("SELECT name, hash, created_at FROM api_keys ORDER BY name")
            .fetch_all(&self.pool)
            .await
            .map_err(StoreError::Database)?
            .iter()
            .map(api_key_from_row)
            .collect()
    }
    pub(crate) async fn sql_delete_api_key(&self, name: &str) -> Result<bool> {
        let deleted = sqlx::query("DELETE FROM api_keys WHERE name = ?")
            .bind(name)
            .execute(&self.writer)
            .await
            .map_err(StoreError::Database)?;
        Ok(deleted.rows_affected() > 0)
    }
    pub(crate) async fn sql_claim_firing(
        &self,
        flow_id: &str,
        due: i64,
        run_id: &str,
        now: OffsetDateTime,
    ) -> Result<bool> {
        let claimed = sqlx::query(
            "INSERT INTO schedule_firings (flow_id, due, run_id, claimed_at) VALUES (?, ?, ?, ?) \
             ON CONFLICT (flow_id, due) DO NOTHING",
        )
        .bind(flow_id)
        .bind(due)
        .bind(run_id)
        .bind(to_ms(now))
        .execute(&self.writer)
        .await
        .map_err(StoreError::Database)?;
        Ok(claimed.rows_affected() == 1)
    }
    pub(crate) async fn sql_purge_consumed(&self, before: OffsetDateTime) -> Result<u64> {
        let pending = sqlx::query(
            "DELETE FROM pending_authorizations WHERE consumed_at IS NOT NULL AND consumed_at < ?",
        )
        .bind(to_ms(before))
        .execute(&self.writer)
        .await
        .map_err(StoreError::Database)?;
        let firings = sqlx::query(
            "DELETE FROM schedule_firings WHERE claimed_at < ? AND due < \
             (SELECT MAX(newest.due) FROM schedule_firings newest \
              WHERE newest.flow_id = schedule_firings.flow_id)",
        )
        .bind(to_ms(before))
        .execute(&self.writer)
        .await
        .map_err(StoreError::Database)?;
        Ok(pending.rows_affected() + firings.rows_affected())
    }
    pub(crate) async fn sql_last_firing(&self, flow_id: &str) -> Result<Option<FiringRow>> {
        sqlx::query(
            "SELECT flow_id, due, run_id, claimed_at FROM schedule_firings WHERE flow_id = ? \
             ORDER BY due DESC LIMIT 1",
        )
        .bind(flow_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(StoreError::Database)?
        .map(|row| firing_from_row(&row))
        .transpose()
    }
    pub(crate) async fn sql_firings(&self, flow_id: &str, limit: u32) -> Result<Vec<FiringRow>> {
        let rows = sqlx::query(
            "SELECT flow_id, due, run_id, claimed_at FROM \
             (SELECT * FROM schedule_firings WHERE flow_id = ? ORDER BY due DESC LIMIT ?) \
             ORDER BY due ASC",
        )
        .bind(flow_id)
        .bind(i64::from(limit.clamp(1, 10_000)))
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::Database)?;
        rows.iter().map(firing_from_row).collect()
    }
}

fn firing_from_row(row: &SqliteRow) -> Result<FiringRow> {
    Ok(FiringRow {
        flow_id: get(row, "flow_id")?,
        due: get(row, "due")?,
        run_id: get(row, "run_id")?,
        claimed_at: from_ms(get(row, "claimed_at")?)?,
    })
}
fn api_key_from_row(row: &SqliteRow) -> Result<ApiKeyRow> {
    Ok(ApiKeyRow {
        name: get(row, "name")?,
        hash: get(row, "hash")?,
        created_at: from_ms(get(row, "created_at")?)?,
    })
}
