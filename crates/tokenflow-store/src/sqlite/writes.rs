//! Group commit for the SQLite store's hot writes: a run's state with its monitor records, a
//! suspension with its pending authorization, a new run.
//!
//! Why (measured by `bench/run`, benchmark 2; see ARCHITECTURE.md): SQLite admits one writer at a
//! time, sqlx runs each connection on a thread of its own so every statement sent costs two thread
//! wake-ups, and every commit appends the changed pages to the WAL. One task owns the writes: it
//! takes every write waiting in its queue (up to [`MAX_BATCH`]) and runs them as one
//! `BEGIN IMMEDIATE; …; COMMIT` statement batch, in one round trip and one commit. A write whose
//! run is missing changes nothing and reports `NotFound`; when a statement fails (a conflict), the
//! batch is rolled back and its writes are run again one by one, so each gets its own answer and
//! the others still land.

use sqlx::sqlite::SqlitePool;
use sqlx::{Row, Sqlite};
use tokio::sync::{mpsc, oneshot};

use crate::{Result, StoreError};

/// At most this many writes share one transaction.
const MAX_BATCH: usize = 64;

/// A value bound to a `?` of a write.
#[derive(Debug)]
pub(crate) enum Bind {
    Text(String),
    OptText(Option<String>),
    Int(i64),
    OptInt(Option<i64>),
    Blob(Vec<u8>),
}

/// One write: `sql` is one or more `;`-separated statements whose first changes one row and whose
/// later ones run only `WHERE changes() = 1`, so that `changes()` after the last is 1 when all of
/// them ran and 0 when the first found no row (the run `run_id` does not exist).
#[derive(Debug)]
pub(crate) struct Write {
    pub sql: String,
    pub binds: Vec<Bind>,
    pub run_id: String,
    /// The message of a [`StoreError::Conflict`] when a statement violates a unique constraint.
    pub conflict: String,
}

type Job = (Write, oneshot::Sender<Result<()>>);

/// The queue of the writer task; the task ends when this is dropped.
#[derive(Debug)]
pub(crate) struct Writes {
    queue: mpsc::Sender<Job>,
}

impl Writes {
    /// Starts the writer task on the current Tokio runtime; it writes through `pool`.
    pub(crate) fn start(pool: SqlitePool) -> Self {
        let (queue, jobs) = mpsc::channel(4 * MAX_BATCH);
        tokio::spawn(writer(pool, jobs));
        Self { queue }
    }

    /// Queues `write` and waits until it is committed (or failed).
    pub(crate) async fn write(&self, write: Write) -> Result<()> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send((write, reply))
            .await
            .map_err(|_| StoreError::Database(sqlx::Error::PoolClosed))?;
        answer
            .await
            .map_err(|_| StoreError::Database(sqlx::Error::WorkerCrashed))?
    }
}

async fn writer(pool: SqlitePool, mut jobs: mpsc::Receiver<Job>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while jobs.recv_many(&mut batch, MAX_BATCH).await > 0 {
        if batch.len() > 1 {
            let writes: Vec<&Write> = batch.iter().map(|(write, _)| write).collect();
            if let Ok(results) = run(&pool, &writes).await {
                for ((_, reply), result) in batch.drain(..).zip(results) {
                    let _ = reply.send(result);
                }
                continue;
            }
        }
        // One write, or a batch that failed: each on its own, with its own answer.
        for (write, reply) in batch.drain(..) {
            let result = match run(&pool, &[&write]).await {
                Ok(mut results) => results.pop().unwrap_or(Err(StoreError::Corrupt(
                    "a write reported nothing".to_owned(),
                ))),
                Err(err) => Err(conflict_or_database(err, || write.conflict.clone())),
            };
            let _ = reply.send(result);
        }
    }
}

/// Runs `writes` in one transaction; per write `Ok` or `NotFound`. An `Err` means a statement
/// failed and the transaction was rolled back.
async fn run(
    pool: &SqlitePool,
    writes: &[&Write],
) -> std::result::Result<Vec<Result<()>>, sqlx::Error> {
    let mut sql = String::from("BEGIN IMMEDIATE;");
    for write in writes {
        sql.push(' ');
        sql.push_str(&write.sql);
        sql.push_str("; SELECT changes();");
    }
    sql.push_str(" COMMIT;");
    // Batches differ in their text; caching their prepared statements would only churn the cache.
    let mut query = sqlx::query::<Sqlite>(&sql).persistent(false);
    for write in writes {
        for bind in &write.binds {
            query = match bind {
                Bind::Text(value) => query.bind(value.as_str()),
                Bind::OptText(value) => query.bind(value.as_deref()),
                Bind::Int(value) => query.bind(*value),
                Bind::OptInt(value) => query.bind(*value),
                Bind::Blob(value) => query.bind(value.as_slice()),
            };
        }
    }
    let mut conn = pool.acquire().await?;
    let rows = match query.fetch_all(&mut *conn).await {
        Ok(rows) => rows,
        Err(err) => {
            // The batch stopped inside its transaction.
            let _ = sqlx::query("ROLLBACK").execute(&mut *conn).await;
            return Err(err);
        }
    };
    if rows.len() != writes.len() {
        return Err(sqlx::Error::Protocol(format!(
            "{} writes answered {} times",
            writes.len(),
            rows.len()
        )));
    }
    Ok(rows
        .iter()
        .zip(writes)
        .map(|(row, write)| match row.try_get::<i64, _>(0) {
            Ok(1) => Ok(()),
            Ok(0) => Err(StoreError::NotFound(format!("run {}", write.run_id))),
            other => Err(StoreError::Corrupt(format!(
                "saving run {} reported {other:?}",
                write.run_id
            ))),
        })
        .collect())
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
