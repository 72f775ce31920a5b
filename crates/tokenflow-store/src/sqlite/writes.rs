//! The SQLite store's hot writes — a run created with its first monitor records, a run's state
//! with its records, a suspension with its pending authorization — on a writer thread of their
//! own, and the WAL checkpoints on another (ARCHITECTURE.md, "The SQLite write path").
//!
//! Why (measured by `bench/run`, benchmark 2): SQLite admits one writer at a time, and a
//! statement sent to sqlx's connection worker costs a hand-off to its thread and one back, plus
//! the task that batched the writes. Here one OS thread owns one `rusqlite` connection with cached
//! prepared statements and runs every statement on its own stack: a write costs one hand-off to
//! that thread and one back. It takes every write waiting in its queue (up to [`MAX_BATCH`]) into
//! one transaction and one commit (group commit); each write sits in a savepoint of its own, so
//! a write that fails (a conflict) is rolled back alone and the others still land.
//!
//! Checkpoints: SQLite's automatic checkpoint runs inside the commit that crosses its threshold
//! and calls `fsync` there, which was the whole p99 latency at concurrency 1. Every connection of
//! the store turns it off (`wal_autocheckpoint = 0`); a checkpointer thread with its own
//! connection runs a passive checkpoint (it never blocks a writer) every
//! [`CHECKPOINT_EVERY`], and a blocking one only when the WAL has grown past [`WAL_LIMIT_BYTES`]
//! anyway (readers holding old snapshots can keep a passive checkpoint from finishing), which
//! bounds the WAL file.

use std::borrow::Cow;
use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc as std_mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, OpenFlags, ToSql};
use tokio::sync::{mpsc, oneshot};

use crate::{Result, StoreError};

/// At most this many writes share one transaction.
const MAX_BATCH: usize = 64;
/// How often the checkpointer copies the WAL into the database.
pub(crate) const CHECKPOINT_EVERY: Duration = Duration::from_millis(200);
/// The WAL size past which the checkpointer makes writers wait for a complete checkpoint; also
/// the size SQLite truncates the WAL file to once it is reset (`journal_size_limit`).
pub(crate) const WAL_LIMIT_BYTES: i64 = 64 * 1024 * 1024;
/// How long a statement waits for a lock another connection holds.
pub(crate) const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// A value bound to a `?` of a statement.
#[derive(Debug)]
pub(crate) enum Bind {
    Text(String),
    OptText(Option<String>),
    Int(i64),
    OptInt(Option<i64>),
    Blob(Vec<u8>),
}

impl ToSql for Bind {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(match self {
            Bind::Text(value) => ValueRef::Text(value.as_bytes()),
            Bind::OptText(Some(value)) => ValueRef::Text(value.as_bytes()),
            Bind::OptText(None) | Bind::OptInt(None) => ValueRef::Null,
            Bind::Int(value) | Bind::OptInt(Some(value)) => ValueRef::Integer(*value),
            Bind::Blob(value) => ValueRef::Blob(value),
        }))
    }
}

/// One statement of a write, with its parameters.
#[derive(Debug)]
pub(crate) struct Statement {
    pub sql: Cow<'static, str>,
    pub binds: Vec<Bind>,
}

impl Statement {
    pub(crate) fn new(sql: impl Into<Cow<'static, str>>, binds: Vec<Bind>) -> Self {
        Self {
            sql: sql.into(),
            binds,
        }
    }
}

/// One write: statements run in order, all or none. The first must change exactly one row
/// (the run `run_id`); when it changes none the write reports `NotFound` and changes nothing.
#[derive(Debug)]
pub(crate) struct Write {
    pub statements: Vec<Statement>,
    pub run_id: String,
    /// The message of a [`StoreError::Conflict`] when a statement violates a unique constraint.
    pub conflict: String,
}

enum Job {
    Write(Write, oneshot::Sender<Result<()>>),
    /// Stop after the writes queued before this one; answered once the connection is closed.
    Close(oneshot::Sender<()>),
}

/// The writer thread's queue, and the checkpointer.
#[derive(Debug)]
pub(crate) struct Writes {
    queue: mpsc::Sender<Job>,
    checkpointer: Checkpointer,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Job::Write(..) => "Job::Write",
            Job::Close(_) => "Job::Close",
        })
    }
}

impl Writes {
    /// Opens the writer's and the checkpointer's connections to the (migrated) database at
    /// `path` and starts their threads.
    pub(crate) fn start(path: &Path) -> Result<Self> {
        let writer = open(path)?;
        let checkpointer = Checkpointer::start(open(path)?)?;
        let (queue, jobs) = mpsc::channel(4 * MAX_BATCH);
        std::thread::Builder::new()
            .name("tokenflow-sqlite-writer".to_owned())
            .spawn(move || write_loop(writer, jobs))
            .map_err(|err| StoreError::Corrupt(format!("cannot start the writer thread: {err}")))?;
        Ok(Self {
            queue,
            checkpointer,
        })
    }

    /// Queues `write` and waits until it is committed (or failed).
    pub(crate) async fn write(&self, write: Write) -> Result<()> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Job::Write(write, reply))
            .await
            .map_err(|_| closed())?;
        answer.await.map_err(|_| closed())?
    }

    /// Whether the writer thread is gone (it ended, or the store was closed): no write can land
    /// any more. `/readyz` asks (`Health::ping`).
    pub(crate) fn stopped(&self) -> bool {
        self.queue.is_closed()
    }

    /// Lets the writes already queued finish, then closes both connections (a last checkpoint).
    pub(crate) async fn close(&self) {
        let (reply, answer) = oneshot::channel();
        if self.queue.send(Job::Close(reply)).await.is_ok() {
            let _ = answer.await;
        }
        self.checkpointer.stop();
    }
}

fn closed() -> StoreError {
    StoreError::Closed
}

fn sqlite(err: rusqlite::Error) -> StoreError {
    StoreError::Sqlite(Arc::new(err))
}

/// A connection as every connection of the store is set up (`mod.rs`), checkpoints left to the
/// checkpointer.
fn open(path: &Path) -> Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(sqlite)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(sqlite)?;
    conn.execute_batch(&format!(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; \
         PRAGMA wal_autocheckpoint = 0; PRAGMA journal_size_limit = {WAL_LIMIT_BYTES};"
    ))
    .map_err(sqlite)?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

fn write_loop(conn: Connection, mut jobs: mpsc::Receiver<Job>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Some(job) = jobs.blocking_recv() {
        let mut close = None;
        match job {
            Job::Write(write, reply) => batch.push((write, reply)),
            Job::Close(reply) => close = Some(reply),
        }
        while close.is_none() && batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(Job::Write(write, reply)) => batch.push((write, reply)),
                Ok(Job::Close(reply)) => close = Some(reply),
                Err(_) => break,
            }
        }
        if !batch.is_empty() {
            commit(&conn, &mut batch);
        }
        if let Some(reply) = close {
            jobs.close();
            // Anything queued after the close is refused (its sender sees the channel closed).
            while let Ok(job) = jobs.try_recv() {
                if let Job::Write(_, reply) = job {
                    let _ = reply.send(Err(closed()));
                }
            }
            drop(conn);
            let _ = reply.send(());
            return;
        }
    }
}

/// Runs `batch` in one transaction and answers each write.
fn commit(conn: &Connection, batch: &mut Vec<(Write, oneshot::Sender<Result<()>>)>) {
    if let Err(err) = exec(conn, "BEGIN IMMEDIATE") {
        let err = Arc::new(err);
        for (_, reply) in batch.drain(..) {
            let _ = reply.send(Err(StoreError::Sqlite(err.clone())));
        }
        return;
    }
    let results: Vec<Result<()>> = batch
        .iter()
        .map(|(write, _)| in_savepoint(conn, write))
        .collect();
    // Some failures (SQLITE_FULL, SQLITE_IOERR) make SQLite roll the whole transaction back on
    // its own: nothing of the batch landed, and the cause is the failing write's error — a
    // COMMIT would only add "no transaction is active" (docs/operations.md, "When the database
    // fails").
    let rolled_back = conn.is_autocommit();
    let committed = if rolled_back {
        Err(first_sqlite_error(&results))
    } else {
        exec(conn, "COMMIT").map_err(|err| {
            let _ = exec(conn, "ROLLBACK");
            Arc::new(err)
        })
    };
    if let Err(err) = committed {
        for (_, reply) in batch.drain(..) {
            let _ = reply.send(Err(StoreError::Sqlite(err.clone())));
        }
        return;
    }
    for ((_, reply), result) in batch.drain(..).zip(results) {
        let _ = reply.send(result);
    }
}

/// Runs one write in a savepoint: on any failure it is rolled back, alone.
fn in_savepoint(conn: &Connection, write: &Write) -> Result<()> {
    let outcome = (|| -> Result<()> {
        exec(conn, "SAVEPOINT w").map_err(sqlite)?;
        for (index, statement) in write.statements.iter().enumerate() {
            let changed = conn
                .prepare_cached(&statement.sql)
                .and_then(|mut prepared| {
                    prepared.execute(rusqlite::params_from_iter(statement.binds.iter()))
                })
                .map_err(|err| conflict_or_sqlite(err, || write.conflict.clone()))?;
            if index == 0 && changed != 1 {
                return Err(StoreError::NotFound(format!("run {}", write.run_id)));
            }
        }
        Ok(())
    })();
    let end = if outcome.is_ok() {
        exec(conn, "RELEASE w")
    } else {
        exec(conn, "ROLLBACK TO w").and_then(|()| exec(conn, "RELEASE w"))
    };
    // The write's own failure is the cause; the savepoint's end fails after it only when SQLite
    // already rolled everything back.
    outcome.and(end.map_err(sqlite))
}

/// The first writer-connection error among a batch's results (what rolled the batch back).
fn first_sqlite_error(results: &[Result<()>]) -> Arc<rusqlite::Error> {
    results
        .iter()
        .find_map(|result| match result {
            Err(StoreError::Sqlite(err)) => Some(err.clone()),
            _ => None,
        })
        .unwrap_or_else(|| {
            Arc::new(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ABORT),
                Some("the transaction was rolled back".to_owned()),
            ))
        })
}

/// Runs one statement without parameters, prepared once per connection.
fn exec(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(|_| ())
}

/// Unique and primary-key violations become `Conflict(message)`, anything else `Sqlite`.
fn conflict_or_sqlite(err: rusqlite::Error, message: impl FnOnce() -> String) -> StoreError {
    match &err {
        rusqlite::Error::SqliteFailure(failure, _)
            if failure.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                || failure.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY =>
        {
            StoreError::Conflict(message())
        }
        _ => sqlite(err),
    }
}

/// Unique and primary-key violations become `Conflict(message)`, anything else `Database`
/// (for the statements that go through sqlx).
pub(crate) fn conflict_or_database(
    err: sqlx::Error,
    message: impl FnOnce() -> String,
) -> StoreError {
    match &err {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict(message()),
        _ => StoreError::Database(err),
    }
}

/// The checkpointer thread; stopped by [`Checkpointer::stop`] or when dropped.
#[derive(Debug)]
struct Checkpointer {
    stop: std::sync::Mutex<Option<std_mpsc::Sender<()>>>,
    thread: std::sync::Mutex<Option<JoinHandle<()>>>,
}

impl Checkpointer {
    fn start(conn: Connection) -> Result<Self> {
        let (stop, stopped) = std_mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("tokenflow-sqlite-checkpoint".to_owned())
            .spawn(move || {
                // Ends when `stop` sends or is dropped.
                while let Err(std_mpsc::RecvTimeoutError::Timeout) =
                    stopped.recv_timeout(CHECKPOINT_EVERY)
                {
                    if let Err(err) = checkpoint(&conn) {
                        tracing::warn!(error = %err, "WAL checkpoint failed; retrying");
                    }
                }
            })
            .map_err(|err| {
                StoreError::Corrupt(format!("cannot start the checkpoint thread: {err}"))
            })?;
        Ok(Self {
            stop: std::sync::Mutex::new(Some(stop)),
            thread: std::sync::Mutex::new(Some(thread)),
        })
    }

    fn stop(&self) {
        if let Ok(mut stop) = self.stop.lock() {
            stop.take();
        }
        let thread = self.thread.lock().ok().and_then(|mut t| t.take());
        if let Some(thread) = thread {
            let _ = thread.join();
        }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One round: a passive checkpoint; a restarting one (writers wait) only when the WAL is past
/// [`WAL_LIMIT_BYTES`] and the passive one could not take all of it.
fn checkpoint(conn: &Connection) -> rusqlite::Result<()> {
    let (log, done) = wal_checkpoint(conn, "PASSIVE")?;
    let page_size: i64 = conn.query_row("PRAGMA page_size", [], |row| row.get(0))?;
    if log > done && log.saturating_mul(page_size) > WAL_LIMIT_BYTES {
        wal_checkpoint(conn, "RESTART")?;
    }
    Ok(())
}

/// `PRAGMA wal_checkpoint(mode)`: the WAL's frames and how many of them are now in the database.
fn wal_checkpoint(conn: &Connection, mode: &str) -> rusqlite::Result<(i64, i64)> {
    conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |row| {
        Ok((row.get::<_, i64>(1)?, row.get::<_, i64>(2)?))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Outage;

    fn insert(run_id: &str, bytes: usize) -> Write {
        Write {
            statements: vec![Statement::new(
                "INSERT INTO t (id, data) VALUES (?, ?)",
                vec![Bind::Text(run_id.to_owned()), Bind::Blob(vec![7; bytes])],
            )],
            run_id: run_id.to_owned(),
            conflict: format!("{run_id} exists"),
        }
    }

    fn answers(conn: &Connection, writes: Vec<Write>) -> Vec<Result<()>> {
        let mut batch = Vec::new();
        let mut answers = Vec::new();
        for write in writes {
            let (reply, answer) = oneshot::channel();
            batch.push((write, reply));
            answers.push(answer);
        }
        commit(conn, &mut batch);
        answers
            .into_iter()
            .map(|mut answer| answer.try_recv().unwrap())
            .collect()
    }

    /// A full disk in the middle of a batch (SQLite's page limit stands in for the disk here;
    /// `tokenflow`'s `faults_disk` tests fill a real one) makes SQLite roll the whole transaction
    /// back: every write of the batch hears "disk full", none hears a confusing follow-up
    /// error, and the connection takes the next batch.
    #[test]
    fn a_full_disk_mid_batch_fails_every_write_of_it_as_disk_full_and_the_next_batch_lands() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        drop(Connection::open(&path).unwrap());
        let conn = open(&path).unwrap();
        conn.execute_batch("CREATE TABLE t (id TEXT PRIMARY KEY, data BLOB)")
            .unwrap();
        let pages: i64 = conn
            .query_row("PRAGMA page_count", [], |row| row.get(0))
            .unwrap();
        conn.query_row(
            &format!("PRAGMA max_page_count = {}", pages + 4),
            [],
            |_| Ok(()),
        )
        .unwrap();

        let results = answers(&conn, vec![insert("a", 100), insert("b", 1 << 20)]);
        for result in results {
            let err = result.unwrap_err();
            assert_eq!(err.outage(), Some(Outage::DiskFull), "{err:?}");
        }
        assert!(conn.is_autocommit(), "no transaction is left open");

        conn.query_row("PRAGMA max_page_count = 1000000", [], |_| Ok(()))
            .unwrap();
        let results = answers(&conn, vec![insert("a", 100), insert("b", 1 << 20)]);
        assert!(results.iter().all(Result::is_ok), "{results:?}");
        let rows: i64 = conn
            .query_row("SELECT count(*) FROM t", [], |row| row.get(0))
            .unwrap();
        assert_eq!(rows, 2);
    }
}
