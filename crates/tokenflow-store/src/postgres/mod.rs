//! The PostgreSQL backend: one database shared by any number of tokenflow instances.
//!
//! All of the PostgreSQL SQL lives in this folder, one file per concern; the semantics are those of the
//! SQLite backend, checked by the same contract suite. The design decision that matters: every
//! "exactly once" guarantee is one conditional statement, atomic under PostgreSQL's default READ
//! COMMITTED isolation — `UPDATE … WHERE consumed_at IS NULL RETURNING` consumes a pending
//! authorization (a second updater waits for the first's row lock, then re-checks the condition
//! and finds nothing), a primary key plus `ON CONFLICT DO NOTHING` claims a schedule firing,
//! `WHERE version = $n` is the vault's compare-and-swap. Nothing reads a row and then decides
//! to write it on the strength of that read, with one exception made safe by a unique key:
//! `put_flow` (see there). No transaction needs SERIALIZABLE, so none has to be retried.
//!
//! Secret columns are sealed here, on the way in, with the same associated data as SQLite
//! (`crate::at_rest`), so a database moved between backends opens with the same key. Timestamps
//! are BIGINT unix milliseconds. The connection URL may hold a password: it is never logged, put
//! in an error or shown by `Debug`.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::{PgConnection, Postgres, Row};
use tokenflow_core::{RunStatus, SecretString};

use crate::at_rest::{
    from_ms, new_key_check, oauth_private_key_aad, oauth_secret_aad, open_secret,
    pending_payload_aad, run_state_aad, seal_secret, to_ms, verify_key_check,
};
use crate::crypto::{Cipher, MasterKey};
use crate::migrations::{MigrationList, migrator};
use crate::{Health, OAuthServerRow, PendingRow, Result, RunRow, StoreError};

mod api_keys;
mod dashboard;
mod device_polls;
mod flows;
mod housekeeping;
mod oauth_servers;
mod pending;
mod rotation;
mod runs;
mod schedules;
mod sessions;
#[cfg(feature = "testing")]
mod testing;
mod vault;

pub use rotation::rotate_master_key;

/// The migrations, embedded in the binary (see [`crate::migrations`]); a test checks that the
/// list matches `migrations/postgres/`.
const MIGRATIONS: MigrationList = &[
    (
        1,
        "init",
        include_str!("../../migrations/postgres/0001_init.sql"),
    ),
    (
        2,
        "vault",
        include_str!("../../migrations/postgres/0002_vault.sql"),
    ),
    (
        3,
        "vault_lease",
        include_str!("../../migrations/postgres/0003_vault_lease.sql"),
    ),
    (
        4,
        "run_lease",
        include_str!("../../migrations/postgres/0004_run_lease.sql"),
    ),
    (
        5,
        "ui_sessions",
        include_str!("../../migrations/postgres/0005_ui_sessions.sql"),
    ),
    (
        6,
        "oauth_private_key",
        include_str!("../../migrations/postgres/0006_oauth_private_key.sql"),
    ),
    (
        7,
        "key_fence",
        include_str!("../../migrations/postgres/0007_key_fence.sql"),
    ),
    (
        8,
        "device_polls",
        include_str!("../../migrations/postgres/0008_device_polls.sql"),
    ),
    (
        9,
        "retention",
        include_str!("../../migrations/postgres/0009_retention.sql"),
    ),
    (
        10,
        "dashboard_counts",
        include_str!("../../migrations/postgres/0010_dashboard_counts.sql"),
    ),
];

/// Connections per instance: enough for the runner, the API and the sweepers at once, and few
/// enough that a handful of instances stay well under PostgreSQL's default `max_connections`
/// (100).
const MAX_CONNECTIONS: u32 = 10;

/// How long a query waits for a free connection before it fails (instead of hanging a request).
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// `put_flow` retries when another writer took the version it wanted; each retry means another
/// writer committed, so this bound is only reached by a pathological storm of writers.
const PUT_FLOW_ATTEMPTS: u32 = 100;

const RUN_COLUMNS: &str = "id, flow_id, flow_version, status, state, browser_binding, started_at, \
                           updated_at, ended_at";

const PENDING_COLUMNS: &str = "state_hash, run_id, action, payload, created_at, expires_at";

/// The PostgreSQL [`Store`].
pub struct PostgresStore {
    pub(crate) pool: PgPool,
    cipher: Cipher,
}

impl fmt::Debug for PostgresStore {
    // Written by hand: the pool's connect options hold the URL's password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresStore")
            .field("connections", &self.pool.size())
            .field("closed", &self.pool.is_closed())
            .finish_non_exhaustive()
    }
}

impl PostgresStore {
    /// Connects to the database at `url` (`postgres://user:password@host:port/database?sslmode=…`;
    /// TLS through rustls when the URL asks for it), applies the migrations and checks that `key`
    /// is the key the data was written with ([`StoreError::WrongMasterKey`] otherwise; a new
    /// database records a check value for the next start).
    ///
    /// Several instances may connect to one new database at once: sqlx's migrator holds a
    /// PostgreSQL advisory lock while it migrates, and the key check is insert-if-absent.
    pub async fn connect(url: &SecretString, key: &MasterKey) -> Result<Self> {
        // sqlx's parse errors name the offending part (a bad port, an unknown parameter), never
        // the URL itself, so they are kept as the cause.
        let options = PgConnectOptions::from_str(url.expose()).map_err(StoreError::Database)?;
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await
            .map_err(StoreError::Database)?;
        let store = Self {
            pool,
            cipher: Cipher::new(key),
        };
        if let Err(err) = store.prepare().await {
            store.close().await;
            return Err(err);
        }
        Ok(store)
    }

    async fn prepare(&self) -> Result<()> {
        migrator(MIGRATIONS)
            .await?
            .run(&self.pool)
            .await
            .map_err(StoreError::Migration)?;
        self.check_key().await
    }

    /// Refuses while a key rotation is unfinished (`crate::rotation`), writes the key check when
    /// absent (first start), then verifies whatever is there: the
    /// insert-if-absent makes instances starting on a new database at once agree on one value.
    async fn check_key(&self) -> Result<()> {
        sqlx::query(
            "INSERT INTO meta (key, value) VALUES ('key_check', $1) ON CONFLICT (key) DO NOTHING",
        )
        .bind(new_key_check(&self.cipher)?)
        .execute(&self.pool)
        .await
        .map_err(StoreError::Database)?;
        let unfinished: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM meta WHERE key = 'rotation')")
                .fetch_one(&self.pool)
                .await
                .map_err(StoreError::Database)?;
        if unfinished {
            return Err(StoreError::RotationUnfinished);
        }
        let stored: Vec<u8> = sqlx::query_scalar("SELECT value FROM meta WHERE key = 'key_check'")
            .fetch_one(&self.pool)
            .await
            .map_err(StoreError::Database)?;
        verify_key_check(&self.cipher, &stored)
    }

    /// Closes every connection (waiting for queries in flight); later calls fail.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    pub(crate) fn seal_secret(&self, secret: &SecretString, aad: &str) -> Result<Vec<u8>> {
        seal_secret(&self.cipher, secret, aad)
    }

    pub(crate) fn open_secret(&self, sealed: &[u8], aad: &str) -> Result<SecretString> {
        open_secret(&self.cipher, sealed, aad)
    }

    fn run_from_row(&self, row: &PgRow) -> Result<RunRow> {
        let id: String = get(row, "id")?;
        let state: Vec<u8> = get(row, "state")?;
        let state = self.open_secret(&state, &run_state_aad(&id))?;
        Ok(RunRow {
            flow_id: get(row, "flow_id")?,
            flow_version: get(row, "flow_version")?,
            status: run_status(row)?,
            state,
            browser_binding: get(row, "browser_binding")?,
            started_at: from_ms(get(row, "started_at")?)?,
            updated_at: from_ms(get(row, "updated_at")?)?,
            ended_at: get::<Option<i64>>(row, "ended_at")?
                .map(from_ms)
                .transpose()?,
            id,
        })
    }

    /// A pending row as read back: the raw `state` is not stored, so the caller supplies it.
    fn pending_from_row(&self, row: &PgRow, state: SecretString) -> Result<PendingRow> {
        let state_hash: String = get(row, "state_hash")?;
        let payload: Vec<u8> = get(row, "payload")?;
        Ok(PendingRow {
            state,
            run_id: get(row, "run_id")?,
            action: get(row, "action")?,
            payload: self.open_secret(&payload, &pending_payload_aad(&state_hash))?,
            created_at: from_ms(get(row, "created_at")?)?,
            expires_at: from_ms(get(row, "expires_at")?)?,
        })
    }

    fn oauth_server_from_row(&self, row: &PgRow) -> Result<OAuthServerRow> {
        let id: String = get(row, "id")?;
        let secret: Option<Vec<u8>> = get(row, "client_secret")?;
        let client_secret = secret
            .map(|sealed| self.open_secret(&sealed, &oauth_secret_aad(&id)))
            .transpose()?;
        let key: Option<Vec<u8>> = get(row, "private_key")?;
        let private_key = key
            .map(|sealed| self.open_secret(&sealed, &oauth_private_key_aad(&id)))
            .transpose()?;
        Ok(OAuthServerRow {
            spec_json: get(row, "spec_json")?,
            client_secret,
            private_key,
            updated_at: from_ms(get(row, "updated_at")?)?,
            id,
        })
    }

    /// Writes the run's mutable columns; `NotFound` when there is no such run. The UPDATE also
    /// row-locks the run until the caller's transaction ends.
    async fn update_run(&self, conn: &mut PgConnection, run: &RunRow) -> Result<()> {
        let updated = sqlx::query(
            "UPDATE runs SET status = $1, state = $2, browser_binding = $3, updated_at = $4, \
             ended_at = $5 WHERE id = $6",
        )
        .bind(run.status.as_str())
        .bind(self.seal_secret(&run.state, &run_state_aad(&run.id))?)
        .bind(&run.browser_binding)
        .bind(to_ms(run.updated_at))
        .bind(run.ended_at.map(to_ms))
        .bind(&run.id)
        .execute(conn)
        .await
        .map_err(StoreError::Database)?;
        if updated.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("run {}", run.id)));
        }
        Ok(())
    }
}

#[async_trait]
impl Health for PostgresStore {
    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(StoreError::Database)?;
        Ok(())
    }
}

pub(crate) fn get<'r, T>(row: &'r PgRow, column: &str) -> Result<T>
where
    T: sqlx::Decode<'r, Postgres> + sqlx::Type<Postgres>,
{
    row.try_get(column).map_err(StoreError::Database)
}

/// The `runs.status` column, read: the one place this backend turns its text into a status.
fn run_status(row: &PgRow) -> Result<RunStatus> {
    let text: String = get(row, "status")?;
    RunStatus::parse(&text)
        .ok_or_else(|| StoreError::Corrupt(format!("unknown run status `{text}`")))
}

/// Unique and primary-key violations become `Conflict(message)`, anything else `Database`.
fn conflict_or_database(err: sqlx::Error, message: impl FnOnce() -> String) -> StoreError {
    match &err {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict(message()),
        _ => StoreError::Database(err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::migrations::assert_embedded_in_order;

    #[test]
    fn every_migration_file_is_embedded_in_order() {
        assert_embedded_in_order("postgres", MIGRATIONS);
    }
}
