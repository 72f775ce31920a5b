//! The embedded default backend: one SQLite file, `<data dir>/tokenflow.db`, in WAL mode.
//!
//! All of the SQLite SQL lives here (the PostgreSQL backend has its own, in `postgres.rs`). The
//! design decision that matters: every "exactly once" guarantee is made by the database, not by
//! Rust code around it — a conditional `UPDATE … WHERE consumed_at IS NULL RETURNING` consumes a
//! pending authorization, a primary key plus `ON CONFLICT DO NOTHING` claims a schedule firing —
//! so they hold across connections and processes. Transactions that read before they write start
//! with `BEGIN IMMEDIATE`: a deferred one would fail with `SQLITE_BUSY` on the lock upgrade
//! instead of waiting out the busy timeout.
//!
//! Secret columns are sealed here, on the way in, with their place as associated data
//! (`runs.state:<id>`, `pending.payload:<state hash>`, `oauth_servers.client_secret:<id>`).
//! Timestamps are INTEGER unix milliseconds.

use crate::VaultEntryRow;
use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{QueryBuilder, Row, Sqlite};
use time::OffsetDateTime;
use tokenflow_core::{RunStatus, SecretString, VaultEntryState};

use crate::at_rest::{
    from_ms, list_limit, new_key_check, oauth_secret_aad, open_secret, pending_payload_aad,
    run_state_aad, seal_secret, sort_expired, state_hash, to_ms, verify_key_check,
};
use crate::crypto::{Cipher, MasterKey, create_private_dir};
use crate::migrations::{MigrationList, migrator};
use crate::sqlite_writes::{Bind, Write, Writes};
use crate::{
    ActionRecordRow, ApiKeyRow, FiringRow, FlowRow, OAuthServerRow, PendingRow, Result, RunFilter,
    RunRow, RunSummary, Store, StoreError, TakePending, UiSessionRow,
};

/// The database file's name inside the data directory.
pub const DB_FILE_NAME: &str = "tokenflow.db";

/// The migrations, embedded in the binary (see [`crate::migrations`]); a test checks that the
/// list matches `migrations/sqlite/`.
#[path = "sqlite_admin.rs"]
mod admin;
#[path = "sqlite_records.rs"]
mod records;

const MIGRATIONS: MigrationList = &[
    (
        1,
        "init",
        include_str!("../migrations/sqlite/0001_init.sql"),
    ),
    (
        2,
        "vault",
        include_str!("../migrations/sqlite/0002_vault.sql"),
    ),
    (
        3,
        "vault_lease",
        include_str!("../migrations/sqlite/0003_vault_lease.sql"),
    ),
    (
        4,
        "run_lease",
        include_str!("../migrations/sqlite/0004_run_lease.sql"),
    ),
    (
        5,
        "ui_sessions",
        include_str!("../migrations/sqlite/0005_ui_sessions.sql"),
    ),
];

const RUN_COLUMNS: &str = "id, flow_id, flow_version, status, state, browser_binding, started_at, \
                           updated_at, ended_at";

/// The SQLite [`Store`].
#[derive(Debug)]
pub struct SqliteStore {
    /// Reads: several connections (WAL lets them read while a write goes on).
    pub(crate) pool: SqlitePool,
    /// Writes: one connection. SQLite takes one writer at a time anyway; queueing writers here
    /// (in order, without spinning) instead of letting several connections race for the write
    /// lock avoids SQLite's busy-wait sleeps, which made latency under concurrency jump by tens
    /// of milliseconds (measured by bench/run, benchmark 2).
    pub(crate) writer: SqlitePool,
    /// The group commit of the hot writes (`sqlite_writes.rs`), through `writer`.
    writes: Writes,
    cipher: Cipher,
    path: PathBuf,
}

impl SqliteStore {
    /// Opens (creating when missing) `<data_dir>/tokenflow.db`; the data directory is created
    /// with mode 0700. See [`SqliteStore::open_file`].
    pub async fn open(data_dir: &Path, key: &MasterKey) -> Result<Self> {
        create_private_dir(data_dir).map_err(|source| StoreError::DataDir {
            path: data_dir.display().to_string(),
            source,
        })?;
        Self::open_file(&data_dir.join(DB_FILE_NAME), key).await
    }

    /// Opens the database file at `path` (creating it when missing), applies the migrations and
    /// checks that `key` is the key the data was written with ([`StoreError::WrongMasterKey`]
    /// otherwise; a new database records a check value for the next start).
    ///
    /// The database, its WAL and its shared-memory file are readable by the owner only (mode
    /// 0600, like the key file), whatever the umask.
    pub async fn open_file(path: &Path, key: &MasterKey) -> Result<Self> {
        let file_error = |source| StoreError::DataDir {
            path: path.display().to_string(),
            source,
        };
        make_private_file(path).map_err(file_error)?;
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // Durable at every checkpoint and never corrupt; a power cut may lose the last
            // commits, which WAL + NORMAL trades for not syncing on every commit.
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options.clone())
            .await
            .map_err(StoreError::Database)?;
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(options)
            .await
            .map_err(StoreError::Database)?;
        let store = Self {
            pool,
            writes: Writes::start(writer.clone()),
            writer,
            cipher: Cipher::new(key),
            path: path.to_path_buf(),
        };
        if let Err(err) = store.prepare().await {
            store.close().await;
            return Err(err);
        }
        // SQLite creates the WAL and shared-memory files with the database file's mode; files
        // left by a version that did not restrict the database are tightened here.
        for suffix in ["-wal", "-shm"] {
            let mut companion = path.as_os_str().to_owned();
            companion.push(suffix);
            restrict_if_present(Path::new(&companion)).map_err(file_error)?;
        }
        Ok(store)
    }

    async fn prepare(&self) -> Result<()> {
        migrator(MIGRATIONS)
            .await?
            .run(&self.writer)
            .await
            .map_err(StoreError::Migration)?;
        self.check_key().await
    }

    /// Writes the key check when absent (first start), then verifies whatever is there: the
    /// insert-if-absent makes two processes opening a new database at once agree on one value.
    async fn check_key(&self) -> Result<()> {
        let sealed = new_key_check(&self.cipher)?;
        sqlx::query(
            "INSERT INTO meta (key, value) VALUES ('key_check', ?) ON CONFLICT (key) DO NOTHING",
        )
        .bind(sealed)
        .execute(&self.writer)
        .await
        .map_err(StoreError::Database)?;
        let stored: Vec<u8> = sqlx::query_scalar("SELECT value FROM meta WHERE key = 'key_check'")
            .fetch_one(&self.pool)
            .await
            .map_err(StoreError::Database)?;
        verify_key_check(&self.cipher, &stored)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Closes every connection (waiting for queries in flight); later calls fail.
    pub async fn close(&self) {
        self.writer.close().await;
        self.pool.close().await;
    }

    pub(crate) fn seal_secret(&self, secret: &SecretString, aad: &str) -> Result<Vec<u8>> {
        seal_secret(&self.cipher, secret, aad)
    }

    fn seal_run_state(&self, run: &RunRow) -> Result<Vec<u8>> {
        self.seal_secret(&run.state, &run_state_aad(&run.id))
    }

    pub(crate) fn open_secret(&self, sealed: &[u8], aad: &str) -> Result<SecretString> {
        open_secret(&self.cipher, sealed, aad)
    }

    fn run_from_row(&self, row: &SqliteRow) -> Result<RunRow> {
        let id: String = row.try_get("id").map_err(StoreError::Database)?;
        let state: Vec<u8> = row.try_get("state").map_err(StoreError::Database)?;
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
    fn pending_from_row(&self, row: &SqliteRow, state: SecretString) -> Result<PendingRow> {
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

    fn oauth_server_from_row(&self, row: &SqliteRow) -> Result<OAuthServerRow> {
        let id: String = get(row, "id")?;
        let secret: Option<Vec<u8>> = get(row, "client_secret")?;
        let client_secret = secret
            .map(|sealed| self.open_secret(&sealed, &oauth_secret_aad(&id)))
            .transpose()?;
        Ok(OAuthServerRow {
            spec_json: get(row, "spec_json")?,
            client_secret,
            updated_at: from_ms(get(row, "updated_at")?)?,
            id,
        })
    }
}

/// Creates the database file with mode 0600 before SQLite opens it (SQLite would create it with
/// 0644 less the umask), or restricts an existing one to 0600.
fn make_private_file(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        // Set at creation, so there is no moment when others can read it.
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
        {
            Ok(_) => Ok(()),
            Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {
                restrict_if_present(path)
            }
            Err(err) => Err(err),
        }
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        Ok(())
    }
}

/// Takes group and other permissions away from `path` if it exists.
fn restrict_if_present(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = match std::fs::metadata(path) {
            Ok(meta) => meta.permissions().mode(),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(err) => return Err(err),
        };
        if mode & 0o077 != 0 {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode & 0o700))?;
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// Writes the run's mutable columns (bound by [`run_update_binds`]).
const UPDATE_RUN: &str = "UPDATE runs SET status = ?, state = ?, browser_binding = ?, updated_at = ?, \
                          ended_at = ? WHERE id = ?";

/// The values of [`UPDATE_RUN`]'s parameters.
fn run_update_binds(run: &RunRow, sealed_state: Vec<u8>) -> Vec<Bind> {
    vec![
        Bind::Text(run.status.as_str().to_owned()),
        Bind::Blob(sealed_state),
        Bind::OptText(run.browser_binding.clone()),
        Bind::Int(to_ms(run.updated_at)),
        Bind::OptInt(run.ended_at.map(to_ms)),
        Bind::Text(run.id.clone()),
    ]
}

#[async_trait]
impl Store for SqliteStore {
    async fn put_oauth_server(&self, server: &OAuthServerRow) -> Result<()> {
        self.sql_put_oauth_server(server).await
    }

    async fn get_oauth_server(&self, id: &str) -> Result<Option<OAuthServerRow>> {
        self.sql_get_oauth_server(id).await
    }

    async fn list_oauth_servers(&self) -> Result<Vec<OAuthServerRow>> {
        self.sql_list_oauth_servers().await
    }

    async fn delete_oauth_server(&self, id: &str) -> Result<bool> {
        self.sql_delete_oauth_server(id).await
    }

    async fn put_api_key(&self, key: &ApiKeyRow) -> Result<()> {
        self.sql_put_api_key(key).await
    }

    async fn find_api_key(&self, hash: &str) -> Result<Option<ApiKeyRow>> {
        self.sql_find_api_key(hash).await
    }

    async fn list_api_keys(&self) -> Result<Vec<ApiKeyRow>> {
        self.sql_list_api_keys().await
    }

    async fn delete_api_key(&self, name: &str) -> Result<bool> {
        self.sql_delete_api_key(name).await
    }

    async fn claim_firing(
        &self,
        flow_id: &str,
        due: i64,
        run_id: &str,
        now: OffsetDateTime,
    ) -> Result<bool> {
        self.sql_claim_firing(flow_id, due, run_id, now).await
    }

    async fn last_firing(&self, flow_id: &str) -> Result<Option<FiringRow>> {
        self.sql_last_firing(flow_id).await
    }

    async fn firings(&self, flow_id: &str, limit: u32) -> Result<Vec<FiringRow>> {
        self.sql_firings(flow_id, limit).await
    }

    async fn purge_consumed(&self, before: OffsetDateTime) -> Result<u64> {
        self.sql_purge_consumed(before).await
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(StoreError::Database)?;
        Ok(())
    }

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

    async fn create_run(&self, run: &RunRow) -> Result<()> {
        self.writes
            .write(Write {
                sql:
                    "INSERT INTO runs (id, flow_id, flow_version, status, state, browser_binding, \
                      started_at, updated_at, ended_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
                        .to_owned(),
                binds: vec![
                    Bind::Text(run.id.clone()),
                    Bind::Text(run.flow_id.clone()),
                    Bind::Int(run.flow_version),
                    Bind::Text(run.status.as_str().to_owned()),
                    Bind::Blob(self.seal_run_state(run)?),
                    Bind::OptText(run.browser_binding.clone()),
                    Bind::Int(to_ms(run.started_at)),
                    Bind::Int(to_ms(run.updated_at)),
                    Bind::OptInt(run.ended_at.map(to_ms)),
                ],
                run_id: run.id.clone(),
                conflict: format!("run {} already exists", run.id),
            })
            .await
    }

    async fn record_action_outcomes(
        &self,
        run: &RunRow,
        records: &[ActionRecordRow],
    ) -> Result<()> {
        if let Some(record) = records.iter().find(|record| record.run_id != run.id) {
            return Err(StoreError::Conflict(format!(
                "monitor record of run {} saved with run {}",
                record.run_id, run.id
            )));
        }
        // Each INSERT runs only if the statement before it changed a row, so a missing run
        // changes nothing (`sqlite_writes.rs`).
        let mut sql = UPDATE_RUN.to_owned();
        let mut binds = run_update_binds(run, self.seal_run_state(run)?);
        for record in records {
            sql.push_str(
                "; INSERT INTO action_records (run_id, seq, json) SELECT ?, ?, ? WHERE changes() = 1",
            );
            binds.push(Bind::Text(record.run_id.clone()));
            binds.push(Bind::Int(record.seq));
            binds.push(Bind::Text(record.json.clone()));
        }
        let conflict = match records {
            [] => format!("run {}", run.id),
            [record] => format!("run {} already has monitor record {}", run.id, record.seq),
            [first, .., last] => format!(
                "run {} already has one of monitor records {}–{}",
                run.id, first.seq, last.seq
            ),
        };
        self.writes
            .write(Write {
                sql,
                binds,
                run_id: run.id.clone(),
                conflict,
            })
            .await
    }

    async fn suspend_run(&self, run: &RunRow, pending: &PendingRow) -> Result<()> {
        if pending.run_id != run.id {
            return Err(StoreError::Conflict(format!(
                "pending authorization of run {} saved with run {}",
                pending.run_id, run.id
            )));
        }
        let hash = state_hash(&pending.state);
        let payload = self.seal_secret(&pending.payload, &pending_payload_aad(&hash))?;
        let mut binds = run_update_binds(run, self.seal_run_state(run)?);
        binds.extend([
            Bind::Text(hash),
            Bind::Text(pending.run_id.clone()),
            Bind::Text(pending.action.clone()),
            Bind::Blob(payload),
            Bind::Int(to_ms(pending.created_at)),
            Bind::Int(to_ms(pending.expires_at)),
        ]);
        self.writes
            .write(Write {
                sql: format!(
                    "{UPDATE_RUN}; INSERT INTO pending_authorizations \
                     (state_hash, run_id, action, payload, created_at, expires_at) \
                     SELECT ?, ?, ?, ?, ?, ? WHERE changes() = 1"
                ),
                binds,
                run_id: run.id.clone(),
                // Never the state or its hash in a message.
                conflict: "a pending authorization with this state exists".to_owned(),
            })
            .await
    }

    async fn get_run(&self, id: &str) -> Result<Option<RunRow>> {
        sqlx::query(&format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = ?"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(StoreError::Database)?
            .map(|row| self.run_from_row(&row))
            .transpose()
    }

    async fn list_runs(&self, filter: &RunFilter) -> Result<Vec<RunSummary>> {
        let mut query = QueryBuilder::<Sqlite>::new(
            "SELECT id, flow_id, flow_version, status, started_at, ended_at FROM runs WHERE 1 = 1",
        );
        if let Some(flow_id) = &filter.flow_id {
            query.push(" AND flow_id = ").push_bind(flow_id.clone());
        }
        if let Some(status) = &filter.status {
            query.push(" AND status = ").push_bind(status.as_str());
        }
        if let Some(after) = filter.started_after {
            query.push(" AND started_at >= ").push_bind(to_ms(after));
        }
        if let Some(before) = filter.started_before {
            query.push(" AND started_at < ").push_bind(to_ms(before));
        }
        let limit = list_limit(filter.limit);
        query
            .push(" ORDER BY started_at DESC, id DESC LIMIT ")
            .push_bind(i64::from(limit))
            .push(" OFFSET ")
            .push_bind(i64::from(filter.offset));
        query
            .build()
            .fetch_all(&self.pool)
            .await
            .map_err(StoreError::Database)?
            .iter()
            .map(|row| {
                Ok(RunSummary {
                    id: get(row, "id")?,
                    flow_id: get(row, "flow_id")?,
                    flow_version: get(row, "flow_version")?,
                    status: run_status(row)?,
                    started_at: from_ms(get(row, "started_at")?)?,
                    ended_at: get::<Option<i64>>(row, "ended_at")?
                        .map(from_ms)
                        .transpose()?,
                })
            })
            .collect()
    }

    async fn action_records_page(
        &self,
        run_id: &str,
        offset: u64,
        limit: u32,
    ) -> Result<Vec<ActionRecordRow>> {
        self.sql_action_records_page(run_id, offset, limit).await
    }

    async fn action_record_count(&self, run_id: &str) -> Result<u64> {
        self.sql_action_record_count(run_id).await
    }

    async fn action_records(&self, run_id: &str) -> Result<Vec<ActionRecordRow>> {
        sqlx::query("SELECT run_id, seq, json FROM action_records WHERE run_id = ? ORDER BY seq")
            .bind(run_id)
            .fetch_all(&self.pool)
            .await
            .map_err(StoreError::Database)?
            .iter()
            .map(|row| {
                Ok(ActionRecordRow {
                    run_id: get(row, "run_id")?,
                    seq: get(row, "seq")?,
                    json: get(row, "json")?,
                })
            })
            .collect()
    }

    async fn runs_with_status(&self, status: RunStatus) -> Result<Vec<RunRow>> {
        sqlx::query(&format!(
            "SELECT {RUN_COLUMNS} FROM runs WHERE status = ? ORDER BY started_at, id"
        ))
        .bind(status.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::Database)?
        .iter()
        .map(|row| self.run_from_row(row))
        .collect()
    }

    async fn find_pending_authorization(&self, state: &SecretString) -> Result<Option<PendingRow>> {
        let row = sqlx::query(
            "SELECT state_hash, run_id, action, payload, created_at, expires_at \
             FROM pending_authorizations WHERE state_hash = ? AND consumed_at IS NULL",
        )
        .bind(state_hash(state))
        .fetch_optional(&self.pool)
        .await
        .map_err(StoreError::Database)?;
        row.map(|row| self.pending_from_row(&row, state.clone()))
            .transpose()
    }

    async fn take_pending_authorization(
        &self,
        state: &SecretString,
        now: OffsetDateTime,
    ) -> Result<TakePending> {
        let hash = state_hash(state);
        // The conditional UPDATE is the single-use guarantee: of any number of concurrent
        // callers exactly one sees the row come back. The transaction only makes an `Err` (an
        // undecryptable payload) leave the row as it was.
        let mut tx = self
            .writer
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(StoreError::Database)?;
        let taken = sqlx::query(
            "UPDATE pending_authorizations SET consumed_at = ? \
             WHERE state_hash = ? AND consumed_at IS NULL \
             RETURNING state_hash, run_id, action, payload, created_at, expires_at",
        )
        .bind(to_ms(now))
        .bind(&hash)
        // `fetch_all`, not `fetch_optional`: it steps the statement to completion.
        .fetch_all(&mut *tx)
        .await
        .map_err(StoreError::Database)?;
        let outcome = match taken.first() {
            Some(row) => {
                let pending = self.pending_from_row(row, state.clone())?;
                if pending.expires_at > now {
                    TakePending::Taken(pending)
                } else {
                    TakePending::Expired(pending)
                }
            }
            None => {
                let exists: Option<i64> =
                    sqlx::query_scalar("SELECT 1 FROM pending_authorizations WHERE state_hash = ?")
                        .bind(&hash)
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(StoreError::Database)?;
                match exists {
                    Some(_) => TakePending::AlreadyUsed,
                    None => TakePending::Unknown,
                }
            }
        };
        tx.commit().await.map_err(StoreError::Database)?;
        Ok(outcome)
    }

    async fn take_expired_pending(&self, now: OffsetDateTime) -> Result<Vec<PendingRow>> {
        let mut tx = self
            .writer
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(StoreError::Database)?;
        let rows = sqlx::query(
            "UPDATE pending_authorizations SET consumed_at = ? \
             WHERE consumed_at IS NULL AND expires_at <= ? \
             RETURNING state_hash, run_id, action, payload, created_at, expires_at",
        )
        .bind(to_ms(now))
        .bind(to_ms(now))
        .fetch_all(&mut *tx)
        .await
        .map_err(StoreError::Database)?;
        // The raw state is never stored, so these rows carry an empty one; the sweeper needs
        // only the run and the action.
        let mut expired = rows
            .iter()
            .map(|row| self.pending_from_row(row, SecretString::default()))
            .collect::<Result<Vec<_>>>()?;
        // Committed only once every row decrypted: an `Err` loses no expiry.
        tx.commit().await.map_err(StoreError::Database)?;
        sort_expired(&mut expired);
        Ok(expired)
    }

    async fn discard_pending_for_run(&self, run_id: &str) -> Result<bool> {
        // The trait gives no `now`; `consumed_at` is only an audit mark here (nothing reads its
        // value), so SQLite's own clock sets it.
        let discarded = sqlx::query(
            "UPDATE pending_authorizations \
             SET consumed_at = CAST(unixepoch('subsec') * 1000 AS INTEGER) \
             WHERE run_id = ? AND consumed_at IS NULL",
        )
        .bind(run_id)
        .execute(&self.writer)
        .await
        .map_err(StoreError::Database)?;
        Ok(discarded.rows_affected() > 0)
    }

    async fn get_vault_entry(&self, name: &str) -> Result<Option<VaultEntryRow>> {
        self.vault_get(name).await
    }

    async fn put_vault_entry(&self, entry: &VaultEntryRow) -> Result<VaultEntryRow> {
        self.vault_put(entry).await
    }

    async fn update_vault_entry(
        &self,
        entry: &VaultEntryRow,
        expected_version: i64,
    ) -> Result<bool> {
        self.vault_update(entry, expected_version).await
    }

    async fn list_vault_entries(&self) -> Result<Vec<VaultEntryRow>> {
        self.vault_list().await
    }

    async fn renew_run_lease(
        &self,
        run_id: &str,
        owner: &str,
        until: OffsetDateTime,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE runs SET lease_owner = ?, lease_until = ? WHERE id = ? AND status = 'running'",
        )
        .bind(owner)
        .bind(to_ms(until))
        .bind(run_id)
        .execute(&self.writer)
        .await
        .map_err(StoreError::Database)?;
        Ok(())
    }

    async fn runs_with_expired_lease(
        &self,
        now: OffsetDateTime,
        grace_ms: i64,
    ) -> Result<Vec<String>> {
        sqlx::query_scalar("SELECT id FROM runs WHERE status = 'running' AND MAX(COALESCE(lease_until, 0), updated_at + ?) < ? ORDER BY id")
            .bind(grace_ms)
            .bind(to_ms(now))
            .fetch_all(&self.pool)
            .await
            .map_err(StoreError::Database)
    }

    async fn fail_interrupted_run(
        &self,
        failed: &RunRow,
        now: OffsetDateTime,
        grace_ms: i64,
    ) -> Result<bool> {
        // Through the write connection, not the group commit: it is a rare write whose answer
        // (did this row change?) the batch's all-or-`NotFound` reply cannot carry. Both share
        // the one connection, so they are serialized and never race.
        let failed_it = sqlx::query(
            "UPDATE runs SET status = 'failed', state = ?, updated_at = ?, ended_at = ? \
             WHERE id = ? AND status = 'running' \
             AND MAX(COALESCE(lease_until, 0), updated_at + ?) < ?",
        )
        .bind(self.seal_run_state(failed)?)
        .bind(to_ms(failed.updated_at))
        .bind(failed.ended_at.map(to_ms))
        .bind(&failed.id)
        .bind(grace_ms)
        .bind(to_ms(now))
        .execute(&self.writer)
        .await
        .map_err(StoreError::Database)?;
        Ok(failed_it.rows_affected() == 1)
    }

    async fn claim_vault_refresh(
        &self,
        name: &str,
        owner: &str,
        until: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<bool> {
        self.vault_claim(name, owner, until, now).await
    }

    async fn release_vault_refresh(&self, name: &str, owner: &str) -> Result<()> {
        self.vault_release(name, owner).await
    }

    async fn delete_vault_entry(&self, name: &str) -> Result<bool> {
        self.vault_delete(name).await
    }

    async fn create_ui_session(&self, session: &UiSessionRow) -> Result<()> {
        self.sessions_create(session).await
    }

    async fn find_ui_session(
        &self,
        id_hash: &str,
        now: OffsetDateTime,
    ) -> Result<Option<UiSessionRow>> {
        self.sessions_find(id_hash, now).await
    }

    async fn delete_ui_session(&self, id_hash: &str) -> Result<bool> {
        self.sessions_delete(id_hash).await
    }

    async fn purge_expired_ui_sessions(&self, now: OffsetDateTime, limit: u32) -> Result<u64> {
        self.sessions_purge(now, limit).await
    }
}

pub(crate) fn get<'r, T>(row: &'r SqliteRow, column: &str) -> Result<T>
where
    T: sqlx::Decode<'r, Sqlite> + sqlx::Type<Sqlite>,
{
    row.try_get(column).map_err(StoreError::Database)
}

/// The `runs.status` column, read: the one place this backend turns its text into a status.
fn run_status(row: &SqliteRow) -> Result<RunStatus> {
    let text: String = get(row, "status")?;
    RunStatus::parse(&text)
        .ok_or_else(|| StoreError::Corrupt(format!("unknown run status `{text}`")))
}

/// The `vault_entries.state` column, read: the one place this backend turns its text into a state.
pub(crate) fn vault_state(row: &SqliteRow) -> Result<VaultEntryState> {
    let text: String = get(row, "state")?;
    VaultEntryState::parse(&text)
        .ok_or_else(|| StoreError::Corrupt(format!("unknown vault entry state `{text}`")))
}

fn flow_from_row(row: &SqliteRow) -> Result<FlowRow> {
    Ok(FlowRow {
        id: get(row, "id")?,
        version: get(row, "version")?,
        yaml: get(row, "yaml")?,
        created_at: from_ms(get(row, "created_at")?)?,
    })
}

/// Unique and primary-key violations become `Conflict(message)`, anything else `Database`.
pub(crate) fn conflict_or_database(
    err: sqlx::Error,
    message: impl FnOnce() -> String,
) -> StoreError {
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
        assert_embedded_in_order("sqlite", MIGRATIONS);
    }
}
