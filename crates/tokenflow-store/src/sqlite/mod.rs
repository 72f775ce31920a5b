//! The embedded default backend: one SQLite file, `<data dir>/tokenflow.db`, in WAL mode.
//!
//! All of the SQLite SQL lives in this folder, one file per concern (the PostgreSQL backend has its own, in `postgres/`). The
//! design decision that matters: every "exactly once" guarantee is made by the database, not by
//! Rust code around it — a conditional `UPDATE … WHERE consumed_at IS NULL RETURNING` consumes a
//! pending authorization, a primary key plus `ON CONFLICT DO NOTHING` claims a schedule firing —
//! so they hold across connections and processes. Transactions that read before they write start
//! with `BEGIN IMMEDIATE`: a deferred one would fail with `SQLITE_BUSY` on the lock upgrade
//! instead of waiting out the busy timeout.
//!
//! Secret columns are sealed here, on the way in, with their place as associated data
//! (`runs.state:<id>`, `pending.payload:<state hash>`, `oauth_servers.client_secret:<id>`,
//! `oauth_servers.private_key:<id>`).
//! Timestamps are INTEGER unix milliseconds.

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{Row, Sqlite};
use tokenflow_core::{RunStatus, SecretString};

use crate::at_rest::{
    from_ms, new_key_check, oauth_private_key_aad, oauth_secret_aad, open_secret,
    pending_payload_aad, run_state_aad, seal_secret, to_ms, verify_key_check,
};
use crate::crypto::{Cipher, MasterKey, create_private_dir};
use crate::migrations::{MigrationList, migrator};
use crate::{Health, OAuthServerRow, PendingRow, Result, RunRow, StoreError};
use writes::{Bind, Writes};

mod api_keys;
mod backup;
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
mod writes;

pub use backup::{BackupReport, backup};
pub use rotation::rotate_master_key;

/// The database file's name inside the data directory.
pub const DB_FILE_NAME: &str = "tokenflow.db";

/// The migrations, embedded in the binary (see [`crate::migrations`]); a test checks that the
/// list matches `migrations/sqlite/`.
const MIGRATIONS: MigrationList = &[
    (
        1,
        "init",
        include_str!("../../migrations/sqlite/0001_init.sql"),
    ),
    (
        2,
        "vault",
        include_str!("../../migrations/sqlite/0002_vault.sql"),
    ),
    (
        3,
        "vault_lease",
        include_str!("../../migrations/sqlite/0003_vault_lease.sql"),
    ),
    (
        4,
        "run_lease",
        include_str!("../../migrations/sqlite/0004_run_lease.sql"),
    ),
    (
        5,
        "ui_sessions",
        include_str!("../../migrations/sqlite/0005_ui_sessions.sql"),
    ),
    (
        6,
        "oauth_private_key",
        include_str!("../../migrations/sqlite/0006_oauth_private_key.sql"),
    ),
    (
        7,
        "key_fence",
        include_str!("../../migrations/sqlite/0007_key_fence.sql"),
    ),
    (
        8,
        "device_polls",
        include_str!("../../migrations/sqlite/0008_device_polls.sql"),
    ),
    (
        9,
        "retention",
        include_str!("../../migrations/sqlite/0009_retention.sql"),
    ),
    (
        10,
        "dashboard_counts",
        include_str!("../../migrations/sqlite/0010_dashboard_counts.sql"),
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
    /// The hot writes on their own thread and connection, and the checkpointer ([`writes`]).
    writes: Writes,
    cipher: Cipher,
    path: PathBuf,
}

impl SqliteStore {
    /// Opens (creating when missing) `<data_dir>/tokenflow.db`; the data directory is created
    /// with mode 0700. See [`SqliteStore::open_file`].
    pub async fn open(data_dir: &Path, key: &MasterKey) -> Result<Self> {
        let dir_error = |source| StoreError::DataDir {
            path: data_dir.display().to_string(),
            source,
        };
        create_private_dir(data_dir).map_err(dir_error)?;
        // A read-only folder would otherwise surface later as a migration or write failure that
        // does not name it (docs/operations.md, "When the database fails").
        check_writable(data_dir).map_err(dir_error)?;
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
            .busy_timeout(writes::BUSY_TIMEOUT)
            // Checkpoints are the checkpointer thread's (`writes.rs`), never a commit's.
            .pragma("wal_autocheckpoint", "0")
            .pragma("journal_size_limit", writes::WAL_LIMIT_BYTES.to_string());
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
        if let Err(err) = prepare(&writer, &pool, &Cipher::new(key)).await {
            writer.close().await;
            pool.close().await;
            return Err(err);
        }
        let writes = match Writes::start(path) {
            Ok(writes) => writes,
            Err(err) => {
                writer.close().await;
                pool.close().await;
                return Err(err);
            }
        };
        let store = Self {
            pool,
            writes,
            writer,
            cipher: Cipher::new(key),
            path: path.to_path_buf(),
        };
        // SQLite creates the WAL and shared-memory files with the database file's mode; files
        // left by a version that did not restrict the database are tightened here.
        for suffix in ["-wal", "-shm"] {
            let mut companion = path.as_os_str().to_owned();
            companion.push(suffix);
            restrict_if_present(Path::new(&companion)).map_err(file_error)?;
        }
        Ok(store)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Closes every connection (waiting for queries in flight); later calls fail.
    pub async fn close(&self) {
        self.writes.close().await;
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
}

/// Applies the migrations and checks the master key: refuses while a key rotation is unfinished
/// (`crate::rotation`), writes the key check when absent (first start), then verifies whatever
/// is there; the insert-if-absent makes two processes opening a
/// new database at once agree on one value.
async fn prepare(writer: &SqlitePool, pool: &SqlitePool, cipher: &Cipher) -> Result<()> {
    migrator(MIGRATIONS)
        .await?
        .run(writer)
        .await
        .map_err(StoreError::Migration)?;
    let sealed = new_key_check(cipher)?;
    sqlx::query(
        "INSERT INTO meta (key, value) VALUES ('key_check', ?) ON CONFLICT (key) DO NOTHING",
    )
    .bind(sealed)
    .execute(writer)
    .await
    .map_err(StoreError::Database)?;
    let unfinished: i64 = sqlx::query_scalar("SELECT count(*) FROM meta WHERE key = 'rotation'")
        .fetch_one(pool)
        .await
        .map_err(StoreError::Database)?;
    if unfinished > 0 {
        return Err(StoreError::RotationUnfinished);
    }
    let stored: Vec<u8> = sqlx::query_scalar("SELECT value FROM meta WHERE key = 'key_check'")
        .fetch_one(pool)
        .await
        .map_err(StoreError::Database)?;
    verify_key_check(cipher, &stored)
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

/// Creates and removes a file in `dir`: fails when the folder cannot be written (a read-only file
/// system; permissions do not stop root, which is why this is not a permission check).
fn check_writable(dir: &Path) -> std::io::Result<()> {
    let probe = dir.join(".tokenflow-write-check");
    std::fs::write(&probe, b"")?;
    std::fs::remove_file(&probe)
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
impl Health for SqliteStore {
    /// The database answers a read, and the writer thread still takes writes.
    async fn ping(&self) -> Result<()> {
        if self.writes.stopped() {
            return Err(StoreError::WriterStopped);
        }
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(StoreError::Database)?;
        Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::migrations::assert_embedded_in_order;

    #[tokio::test]
    async fn the_store_is_not_ready_once_its_writer_thread_has_stopped() {
        let dir = tempfile::tempdir().unwrap();
        let key = MasterKey::from_base64("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=").unwrap();
        let store = SqliteStore::open(dir.path(), &key).await.unwrap();
        store.ping().await.unwrap();
        // The reads still answer; only the writer is gone.
        store.writes.close().await;
        assert!(matches!(store.ping().await, Err(StoreError::WriterStopped)));
        store.close().await;
    }

    #[test]
    fn every_migration_file_is_embedded_in_order() {
        assert_embedded_in_order("sqlite", MIGRATIONS);
    }
}
