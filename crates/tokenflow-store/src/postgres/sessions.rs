//! The PostgreSQL side of web UI sessions: one row per sign-in, found by the SHA-256 of its random id,
//! deleted at sign-out, with its stored API key (a foreign key with `ON DELETE CASCADE`), or by the
//! housekeeping purge once expired.

use async_trait::async_trait;
use sqlx::postgres::PgRow;

use super::{PostgresStore, get};
use crate::at_rest::{from_ms, to_ms};
use crate::{Result, SessionStore, StoreError, UiSessionOwner, UiSessionRow};

const COLUMNS: &str = "id_hash, api_key_name, config_key_ref, created_at, expires_at";

#[async_trait]
impl SessionStore for PostgresStore {
    async fn create_ui_session(&self, session: &UiSessionRow) -> Result<()> {
        let (name, reference) = owner_columns(&session.owner);
        sqlx::query(&format!(
            "INSERT INTO ui_sessions ({COLUMNS}) VALUES ($1, $2, $3, $4, $5)"
        ))
        .bind(&session.id_hash)
        .bind(name)
        .bind(reference)
        .bind(to_ms(session.created_at))
        .bind(to_ms(session.expires_at))
        .execute(&self.pool)
        .await
        .map_err(|err| create_error(err, &session.owner))?;
        Ok(())
    }

    async fn find_ui_session(
        &self,
        id_hash: &str,
        now: time::OffsetDateTime,
    ) -> Result<Option<UiSessionRow>> {
        // The key check repeats what the foreign key's cascade does (it costs one index probe).
        sqlx::query(&format!(
            "SELECT {COLUMNS} FROM ui_sessions WHERE id_hash = $1 AND expires_at > $2 \
             AND (api_key_name IS NULL OR EXISTS \
                  (SELECT 1 FROM api_keys WHERE api_keys.name = ui_sessions.api_key_name))"
        ))
        .bind(id_hash)
        .bind(to_ms(now))
        .fetch_optional(&self.pool)
        .await
        .map_err(StoreError::Database)?
        .map(|row| session_from_row(&row))
        .transpose()
    }

    async fn delete_ui_session(&self, id_hash: &str) -> Result<bool> {
        let deleted = sqlx::query("DELETE FROM ui_sessions WHERE id_hash = $1")
            .bind(id_hash)
            .execute(&self.pool)
            .await
            .map_err(StoreError::Database)?;
        Ok(deleted.rows_affected() > 0)
    }

    async fn purge_expired_ui_sessions(
        &self,
        now: time::OffsetDateTime,
        limit: u32,
    ) -> Result<u64> {
        let deleted = sqlx::query(
            "DELETE FROM ui_sessions WHERE id_hash IN \
             (SELECT id_hash FROM ui_sessions WHERE expires_at <= $1 LIMIT $2)",
        )
        .bind(to_ms(now))
        .bind(i64::from(limit))
        .execute(&self.pool)
        .await
        .map_err(StoreError::Database)?;
        Ok(deleted.rows_affected())
    }
}

/// `(api_key_name, config_key_ref)`: exactly one is set.
fn owner_columns(owner: &UiSessionOwner) -> (Option<&str>, Option<&str>) {
    match owner {
        UiSessionOwner::StoredKey(name) => (Some(name), None),
        UiSessionOwner::ConfiguredKey(reference) => (None, Some(reference)),
    }
}

/// A missing stored key (the foreign key) is `NotFound`, a taken id hash `Conflict`.
fn create_error(err: sqlx::Error, owner: &UiSessionOwner) -> StoreError {
    match &err {
        sqlx::Error::Database(db) if db.is_foreign_key_violation() => match owner {
            UiSessionOwner::StoredKey(name) => StoreError::NotFound(format!("API key {name}")),
            UiSessionOwner::ConfiguredKey(_) => StoreError::Database(err),
        },
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            StoreError::Conflict("a UI session with this id exists".to_owned())
        }
        _ => StoreError::Database(err),
    }
}

fn session_from_row(row: &PgRow) -> Result<UiSessionRow> {
    let name: Option<String> = get(row, "api_key_name")?;
    let reference: Option<String> = get(row, "config_key_ref")?;
    let owner = match (name, reference) {
        (Some(name), None) => UiSessionOwner::StoredKey(name),
        (None, Some(reference)) => UiSessionOwner::ConfiguredKey(reference),
        _ => {
            return Err(StoreError::Corrupt(
                "a UI session without exactly one owner".to_owned(),
            ));
        }
    };
    Ok(UiSessionRow {
        id_hash: get(row, "id_hash")?,
        owner,
        created_at: from_ms(get(row, "created_at")?)?,
        expires_at: from_ms(get(row, "expires_at")?)?,
    })
}
