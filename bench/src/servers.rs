//! The two small servers the suite starts as its own subprocesses (`tokenflow-bench stub|bare`):
//!
//! - the **stub API**: `GET /data` (needs a bearer token) answers a fixed JSON document;
//!   `POST /token` answers a token response at once (the token endpoint of the waiting-run
//!   benchmark, so that a callback measures tokenflow and not an identity provider's signing).
//! - the **bare reference**: what a developer would hand-write instead of a flow, an axum handler
//!   `POST /run` that keeps one client-credentials token in memory, calls the stub with it and
//!   answers the one field the flow extracts. It is the limit tokenflow is measured against.
//! - the **durable reference** (`tokenflow-bench durable`): the bare handler plus one durable
//!   write per request, the fastest way we know on SQLite: one row the size of tokenflow's run
//!   state, written by one connection that puts every write waiting at that moment into one
//!   multi-row `INSERT` (one statement, one transaction: group commit), in WAL mode with the
//!   `synchronous` setting tokenflow uses; a request is answered only after its commit. It is
//!   what durability alone costs, the limit for a store that keeps each run.
//!
//! All three print `READY http://127.0.0.1:<port>` and exit when their stdin closes.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use sqlx::ConnectOptions as _;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqliteSynchronous};
use std::io::Write as _;
use tokio::sync::{mpsc, oneshot};

/// The document `GET /data` answers; the flows extract `$.user.name`.
pub fn data_document() -> Value {
    json!({ "user": { "id": 42, "name": "Bench User", "roles": ["reader"] }, "items": [1, 2, 3] })
}

/// The value every target must answer.
pub const EXPECTED_NAME: &str = "Bench User";

async fn listen_and_announce(app: axum::Router) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "READY http://{address}")?;
    stdout.flush()?;
    drop(stdout);
    // Exit when the suite goes away (its end of our stdin closes).
    std::thread::spawn(|| {
        let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
        std::process::exit(0);
    });
    axum::serve(listener, app).await?;
    Ok(())
}

pub async fn stub() -> anyhow::Result<()> {
    let issued = Arc::new(AtomicU64::new(0));
    let app = axum::Router::new()
        .route("/data", get(data))
        .route("/token", post(token))
        .with_state(issued);
    listen_and_announce(app).await
}

async fn data(headers: HeaderMap) -> Response {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .is_some_and(|token| !token.trim().is_empty());
    if bearer {
        Json(data_document()).into_response()
    } else {
        (StatusCode::UNAUTHORIZED, "a bearer token is required").into_response()
    }
}

async fn token(State(issued): State<Arc<AtomicU64>>) -> Json<Value> {
    let n = issued.fetch_add(1, Ordering::Relaxed);
    Json(json!({
        "access_token": format!("stub-access-token-{n}"),
        "token_type": "Bearer",
        "expires_in": 3600,
    }))
}

/// Where the bare reference gets its token and calls the stub.
#[derive(Debug, Clone, clap::Args)]
pub struct BareArgs {
    #[arg(long)]
    pub token_url: String,
    #[arg(long)]
    pub client_id: String,
    /// Read from the environment so it never shows in `ps`.
    #[arg(long, env = "BENCH_CLIENT_SECRET", hide_env_values = true)]
    pub client_secret: String,
    #[arg(long)]
    pub scope: String,
    #[arg(long)]
    pub stub_url: String,
}

struct Bare {
    args: BareArgs,
    http: reqwest::Client,
    token: tokio::sync::Mutex<Option<(String, Instant)>>,
}

impl Bare {
    fn new(args: BareArgs) -> anyhow::Result<Bare> {
        // The same client settings as tokenflow's (rustls, no redirects, timeouts).
        let http = tokenflow_connectors::http::build_client(Duration::from_secs(30))?;
        Ok(Bare {
            args,
            http,
            token: tokio::sync::Mutex::new(None),
        })
    }
}

pub async fn bare(args: BareArgs) -> anyhow::Result<()> {
    let state = Arc::new(Bare::new(args)?);
    let app = axum::Router::new()
        .route("/run", post(bare_run))
        .with_state(state);
    listen_and_announce(app).await
}

impl Bare {
    /// The cached client-credentials token, fetched again a minute before it expires.
    async fn token(&self) -> anyhow::Result<String> {
        let mut slot = self.token.lock().await;
        if let Some((token, until)) = slot.as_ref()
            && Instant::now() < *until
        {
            return Ok(token.clone());
        }
        let answer: Value = self
            .http
            .post(&self.args.token_url)
            .basic_auth(&self.args.client_id, Some(&self.args.client_secret))
            .form(&[
                ("grant_type", "client_credentials"),
                ("scope", &self.args.scope),
            ])
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let token = answer["access_token"]
            .as_str()
            .context("no access_token")?
            .to_owned();
        let lifetime = answer["expires_in"]
            .as_u64()
            .unwrap_or(0)
            .saturating_sub(60);
        *slot = Some((
            token.clone(),
            Instant::now() + Duration::from_secs(lifetime),
        ));
        Ok(token)
    }

    async fn call(&self) -> anyhow::Result<Value> {
        let token = self.token().await?;
        let body: Value = self
            .http
            .get(format!("{}/data", self.args.stub_url))
            .bearer_auth(token)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let name = body
            .pointer("/user/name")
            .cloned()
            .context("no user.name")?;
        Ok(json!({ "name": name }))
    }
}

async fn bare_run(State(bare): State<Arc<Bare>>) -> Response {
    match bare.call().await {
        Ok(body) => Json(body).into_response(),
        Err(err) => (StatusCode::BAD_GATEWAY, err.to_string()).into_response(),
    }
}

/// The durable reference: the bare reference's arguments, its SQLite file and the row size.
#[derive(Debug, Clone, clap::Args)]
pub struct DurableArgs {
    #[command(flatten)]
    pub bare: BareArgs,
    /// The SQLite database to create.
    #[arg(long)]
    pub db: PathBuf,
    /// Bytes of state stored per request (tokenflow's encrypted run state of the same flow).
    #[arg(long)]
    pub state_bytes: usize,
}

const CREATE_RUNS: &str = "CREATE TABLE runs (id TEXT PRIMARY KEY NOT NULL, state BLOB NOT NULL, ended_at INTEGER NOT NULL) STRICT";

/// At most this many writes share one transaction (as in tokenflow's SQLite writer).
const MAX_BATCH: usize = 64;

type Commit = oneshot::Sender<Result<(), String>>;

struct Durable {
    bare: Bare,
    writes: mpsc::Sender<Commit>,
}

pub async fn durable(args: DurableArgs) -> anyhow::Result<()> {
    // WAL and `synchronous = NORMAL`, as tokenflow's SQLite store opens its database: a commit
    // appends to the WAL without `fsync`; the WAL is synced at checkpoints.
    let mut connection = SqliteConnectOptions::new()
        .filename(&args.db)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .connect()
        .await
        .with_context(|| format!("cannot open {}", args.db.display()))?;
    sqlx::query(CREATE_RUNS).execute(&mut connection).await?;
    let (writes, jobs) = mpsc::channel(4 * MAX_BATCH);
    tokio::spawn(durable_writer(connection, jobs, args.state_bytes));
    let state = Arc::new(Durable {
        bare: Bare::new(args.bare)?,
        writes,
    });
    let app = axum::Router::new()
        .route("/run", post(durable_run))
        .with_state(state);
    listen_and_announce(app).await
}

/// The one writer: takes every request waiting in the queue (up to [`MAX_BATCH`]) and writes
/// their rows with one multi-row `INSERT`, a single statement in its own transaction, so a batch
/// costs one round trip to sqlx's connection thread and one commit; then answers them all.
async fn durable_writer(
    mut connection: SqliteConnection,
    mut jobs: mpsc::Receiver<Commit>,
    state_bytes: usize,
) {
    // The content does not matter: SQLite stores a blob as it is (no compression), and an
    // encrypted state is as incompressible as any other bytes.
    let state = vec![0xA5_u8; state_bytes];
    let statements: Vec<String> = (0..=MAX_BATCH)
        .map(|n| {
            let rows = vec!["(?, ?, ?)"; n].join(", ");
            format!("INSERT INTO runs (id, state, ended_at) VALUES {rows}")
        })
        .collect();
    let started = unix_millis();
    let mut next = 0_u64;
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Some(job) = jobs.recv().await {
        batch.push(job);
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let now = unix_millis();
        // Time-ordered ids like tokenflow's run ids, so rows are appended to the primary key.
        let mut query = sqlx::query(&statements[batch.len()]);
        for _ in 0..batch.len() {
            next += 1;
            query = query
                .bind(format!("{started:016x}-{next:016x}"))
                .bind(state.clone())
                .bind(now);
        }
        let result = query
            .execute(&mut connection)
            .await
            .map(|_| ())
            .map_err(|err| err.to_string());
        for reply in batch.drain(..) {
            let _ = reply.send(result.clone());
        }
    }
}

fn unix_millis() -> i64 {
    use tokenflow_core::Clock as _;
    i64::try_from(tokenflow_core::SystemClock.now().unix_timestamp_nanos() / 1_000_000)
        .unwrap_or(i64::MAX)
}

async fn durable_run(State(durable): State<Arc<Durable>>) -> Response {
    let body = match durable.bare.call().await {
        Ok(body) => body,
        Err(err) => return (StatusCode::BAD_GATEWAY, err.to_string()).into_response(),
    };
    let (reply, committed) = oneshot::channel();
    if durable.writes.send(reply).await.is_err() {
        return (StatusCode::INTERNAL_SERVER_ERROR, "the writer stopped").into_response();
    }
    match committed.await {
        Ok(Ok(())) => Json(body).into_response(),
        Ok(Err(err)) => (StatusCode::INTERNAL_SERVER_ERROR, err).into_response(),
        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "the writer stopped").into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::{Connection as _, Row as _};

    #[tokio::test]
    async fn the_durable_reference_commits_one_row_of_the_state_size_per_request_before_answering()
    {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("durable.db");
        let mut connection = SqliteConnectOptions::new()
            .filename(&db)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .connect()
            .await
            .unwrap();
        sqlx::query(CREATE_RUNS)
            .execute(&mut connection)
            .await
            .unwrap();
        let (writes, jobs) = mpsc::channel(4 * MAX_BATCH);
        let writer = tokio::spawn(durable_writer(connection, jobs, 420));
        // More concurrent requests than one batch holds.
        let mut answers = Vec::new();
        for _ in 0..150 {
            let (reply, committed) = oneshot::channel();
            writes.send(reply).await.unwrap();
            answers.push(committed);
        }
        let mut reader = sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.display()))
            .await
            .unwrap();
        for answer in answers {
            answer.await.unwrap().unwrap();
        }
        let row = sqlx::query(
            "SELECT count(*), min(length(state)), max(length(state)), count(DISTINCT id) FROM runs",
        )
        .fetch_one(&mut reader)
        .await
        .unwrap();
        let figures: [i64; 4] = [row.get(0), row.get(1), row.get(2), row.get(3)];
        assert_eq!(figures, [150, 420, 420, 150]);
        let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(&mut reader)
            .await
            .unwrap();
        assert_eq!(mode, "wal");
        drop(writes);
        writer.await.unwrap();
    }
}
