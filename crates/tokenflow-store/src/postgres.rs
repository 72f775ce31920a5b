//! The PostgreSQL backend: one database shared by any number of tokenflow instances.
//!
//! All of the PostgreSQL SQL lives here and in `postgres_vault.rs`; the semantics are those of the
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
use sqlx::{PgConnection, Postgres, QueryBuilder, Row};
use time::OffsetDateTime;
use tokenflow_core::{RunStatus, SecretString, VaultEntryState};

use crate::at_rest::{
    from_ms, list_limit, new_key_check, oauth_secret_aad, open_secret, pending_payload_aad,
    run_state_aad, seal_secret, sort_expired, state_hash, to_ms, verify_key_check,
};
use crate::crypto::{Cipher, MasterKey};
use crate::migrations::{MigrationList, migrator};
use crate::{
    ActionRecordRow, ApiKeyRow, FiringRow, FlowRow, OAuthServerRow, PendingRow, Result, RunFilter,
    RunRow, RunSummary, Store, StoreError, TakePending, UiSessionRow, VaultEntryRow,
};

/// The migrations, embedded in the binary (see [`crate::migrations`]); a test checks that the
/// list matches `migrations/postgres/`.
#[path = "postgres_admin.rs"]
mod admin;
#[path = "postgres_records.rs"]
mod records;

const MIGRATIONS: MigrationList = &[
    (
        1,
        "init",
        include_str!("../migrations/postgres/0001_init.sql"),
    ),
    (
        2,
        "vault",
        include_str!("../migrations/postgres/0002_vault.sql"),
    ),
    (
        3,
        "vault_lease",
        include_str!("../migrations/postgres/0003_vault_lease.sql"),
    ),
    (
        4,
        "run_lease",
        include_str!("../migrations/postgres/0004_run_lease.sql"),
    ),
    (
        5,
        "ui_sessions",
        include_str!("../migrations/postgres/0005_ui_sessions.sql"),
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

    /// Writes the key check when absent (first start), then verifies whatever is there: the
    /// insert-if-absent makes instances starting on a new database at once agree on one value.
    async fn check_key(&self) -> Result<()> {
        sqlx::query(
            "INSERT INTO meta (key, value) VALUES ('key_check', $1) ON CONFLICT (key) DO NOTHING",
        )
        .bind(new_key_check(&self.cipher)?)
        .execute(&self.pool)
        .await
        .map_err(StoreError::Database)?;
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
        Ok(OAuthServerRow {
            spec_json: get(row, "spec_json")?,
            client_secret,
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
impl Store for PostgresStore {
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
        // Optimistic, with the primary key (id, version) as the arbiter: read the newest
        // version, then insert the next one unless somebody already has. A writer that loses
        // re-reads and decides again, so concurrent writers of the same yaml all end up with
        // the one version it got, and writers of different yamls get consecutive versions —
        // what SQLite's `BEGIN IMMEDIATE` gives by serializing them.
        for _ in 0..PUT_FLOW_ATTEMPTS {
            let newest = self.get_flow(id).await?;
            if let Some(newest) = newest.as_ref().filter(|newest| newest.yaml == yaml) {
                return Ok(newest.clone());
            }
            let inserted = sqlx::query(
                "INSERT INTO flows (id, version, yaml, created_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (id, version) DO NOTHING RETURNING id, version, yaml, created_at",
            )
            .bind(id)
            .bind(newest.map_or(1, |newest| newest.version + 1))
            .bind(yaml)
            .bind(to_ms(now))
            .fetch_optional(&self.pool)
            .await
            .map_err(StoreError::Database)?;
            if let Some(row) = inserted {
                return flow_from_row(&row);
            }
        }
        Err(StoreError::Conflict(format!(
            "flow {id} kept changing while it was being saved; try again"
        )))
    }

    async fn get_flow(&self, id: &str) -> Result<Option<FlowRow>> {
        sqlx::query(
            "SELECT id, version, yaml, created_at FROM flows WHERE id = $1 \
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
        sqlx::query(
            "SELECT id, version, yaml, created_at FROM flows WHERE id = $1 AND version = $2",
        )
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
            "SELECT DISTINCT ON (id) id, version, yaml, created_at FROM flows \
             ORDER BY id, version DESC",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::Database)?
        .iter()
        .map(flow_from_row)
        .collect()
    }

    async fn create_run(&self, run: &RunRow) -> Result<()> {
        sqlx::query(&format!(
            "INSERT INTO runs ({RUN_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
        ))
        .bind(&run.id)
        .bind(&run.flow_id)
        .bind(run.flow_version)
        .bind(run.status.as_str())
        .bind(self.seal_secret(&run.state, &run_state_aad(&run.id))?)
        .bind(&run.browser_binding)
        .bind(to_ms(run.started_at))
        .bind(to_ms(run.updated_at))
        .bind(run.ended_at.map(to_ms))
        .execute(&self.pool)
        .await
        .map_err(|err| conflict_or_database(err, || format!("run {} already exists", run.id)))?;
        Ok(())
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
        let mut tx = self.pool.begin().await.map_err(StoreError::Database)?;
        self.update_run(&mut tx, run).await?;
        for record in records {
            sqlx::query("INSERT INTO action_records (run_id, seq, json) VALUES ($1, $2, $3)")
                .bind(&record.run_id)
                .bind(record.seq)
                .bind(&record.json)
                .execute(&mut *tx)
                .await
                .map_err(|err| {
                    conflict_or_database(err, || {
                        format!("run {} already has monitor record {}", run.id, record.seq)
                    })
                })?;
        }
        // An early return above drops `tx`, which rolls the run update back.
        tx.commit().await.map_err(StoreError::Database)
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
        let mut tx = self.pool.begin().await.map_err(StoreError::Database)?;
        self.update_run(&mut tx, run).await?;
        sqlx::query(&format!(
            "INSERT INTO pending_authorizations ({PENDING_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6)"
        ))
        .bind(&hash)
        .bind(&pending.run_id)
        .bind(&pending.action)
        .bind(payload)
        .bind(to_ms(pending.created_at))
        .bind(to_ms(pending.expires_at))
        .execute(&mut *tx)
        .await
        .map_err(|err| {
            // Never the state or its hash in a message (PostgreSQL's own detail names the key,
            // so the cause is dropped).
            conflict_or_database(err, || {
                "a pending authorization with this state exists".into()
            })
        })?;
        tx.commit().await.map_err(StoreError::Database)
    }

    async fn get_run(&self, id: &str) -> Result<Option<RunRow>> {
        sqlx::query(&format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(StoreError::Database)?
            .map(|row| self.run_from_row(&row))
            .transpose()
    }

    async fn list_runs(&self, filter: &RunFilter) -> Result<Vec<RunSummary>> {
        let mut query = QueryBuilder::<Postgres>::new(
            "SELECT id, flow_id, flow_version, status, started_at, ended_at FROM runs WHERE TRUE",
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
        query
            .push(" ORDER BY started_at DESC, id DESC LIMIT ")
            .push_bind(i64::from(list_limit(filter.limit)))
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
        sqlx::query("SELECT run_id, seq, json FROM action_records WHERE run_id = $1 ORDER BY seq")
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
            "SELECT {RUN_COLUMNS} FROM runs WHERE status = $1 ORDER BY started_at, id"
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
        let row = sqlx::query(&format!(
            "SELECT {PENDING_COLUMNS} FROM pending_authorizations \
             WHERE state_hash = $1 AND consumed_at IS NULL"
        ))
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
        // The conditional UPDATE is the single-use guarantee: concurrent callers queue on the
        // row lock, and each one after the first re-checks `consumed_at IS NULL` against the
        // committed row and gets nothing back. The transaction only makes an `Err` (an
        // undecryptable payload) leave the row as it was.
        let mut tx = self.pool.begin().await.map_err(StoreError::Database)?;
        let taken = sqlx::query(&format!(
            "UPDATE pending_authorizations SET consumed_at = $1 \
             WHERE state_hash = $2 AND consumed_at IS NULL RETURNING {PENDING_COLUMNS}"
        ))
        .bind(to_ms(now))
        .bind(&hash)
        .fetch_optional(&mut *tx)
        .await
        .map_err(StoreError::Database)?;
        let outcome = match taken {
            Some(row) => {
                let pending = self.pending_from_row(&row, state.clone())?;
                if pending.expires_at > now {
                    TakePending::Taken(pending)
                } else {
                    TakePending::Expired(pending)
                }
            }
            None => {
                // A new statement, so a new READ COMMITTED snapshot: it sees the winner's row.
                let exists: bool = sqlx::query_scalar(
                    "SELECT EXISTS (SELECT 1 FROM pending_authorizations WHERE state_hash = $1)",
                )
                .bind(&hash)
                .fetch_one(&mut *tx)
                .await
                .map_err(StoreError::Database)?;
                if exists {
                    TakePending::AlreadyUsed
                } else {
                    TakePending::Unknown
                }
            }
        };
        tx.commit().await.map_err(StoreError::Database)?;
        Ok(outcome)
    }

    async fn take_expired_pending(&self, now: OffsetDateTime) -> Result<Vec<PendingRow>> {
        let mut tx = self.pool.begin().await.map_err(StoreError::Database)?;
        // `SKIP LOCKED`: two sweepers (two instances) never wait on each other's rows, so they
        // cannot deadlock on rows locked in different orders. A row skipped here is being
        // consumed by its locker; should that one roll back, the next sweep takes it.
        let rows = sqlx::query(
            "WITH due AS (\
                 SELECT state_hash FROM pending_authorizations \
                 WHERE consumed_at IS NULL AND expires_at <= $1 \
                 FOR UPDATE SKIP LOCKED) \
             UPDATE pending_authorizations p SET consumed_at = $1 FROM due \
             WHERE p.state_hash = due.state_hash AND p.consumed_at IS NULL \
             RETURNING p.state_hash, p.run_id, p.action, p.payload, p.created_at, p.expires_at",
        )
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
        // value), so the database's clock sets it.
        let discarded = sqlx::query(
            "UPDATE pending_authorizations \
             SET consumed_at = (EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT \
             WHERE run_id = $1 AND consumed_at IS NULL",
        )
        .bind(run_id)
        .execute(&self.pool)
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
        sqlx::query("UPDATE runs SET lease_owner = $1, lease_until = $2 WHERE id = $3 AND status = 'running'")
        .bind(owner)
        .bind(to_ms(until))
        .bind(run_id)
        .execute(&self.pool)
        .await
        .map_err(StoreError::Database)?;
        Ok(())
    }

    async fn runs_with_expired_lease(
        &self,
        now: OffsetDateTime,
        grace_ms: i64,
    ) -> Result<Vec<String>> {
        sqlx::query_scalar("SELECT id FROM runs WHERE status = 'running' AND GREATEST(COALESCE(lease_until, 0), updated_at + $1) < $2 ORDER BY id")
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
        // Under READ COMMITTED a concurrent second UPDATE waits for the first, then re-checks
        // its WHERE on the row the first wrote (status `failed`) and changes nothing.
        let failed_it = sqlx::query(
            "UPDATE runs SET status = 'failed', state = $1, updated_at = $2, ended_at = $3 \
             WHERE id = $4 AND status = 'running' \
             AND GREATEST(COALESCE(lease_until, 0), updated_at + $5) < $6",
        )
        .bind(self.seal_secret(&failed.state, &run_state_aad(&failed.id))?)
        .bind(to_ms(failed.updated_at))
        .bind(failed.ended_at.map(to_ms))
        .bind(&failed.id)
        .bind(grace_ms)
        .bind(to_ms(now))
        .execute(&self.pool)
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

/// The `vault_entries.state` column, read: the one place this backend turns its text into a state.
pub(crate) fn vault_state(row: &PgRow) -> Result<VaultEntryState> {
    let text: String = get(row, "state")?;
    VaultEntryState::parse(&text)
        .ok_or_else(|| StoreError::Corrupt(format!("unknown vault entry state `{text}`")))
}

fn flow_from_row(row: &PgRow) -> Result<FlowRow> {
    Ok(FlowRow {
        id: get(row, "id")?,
        version: get(row, "version")?,
        yaml: get(row, "yaml")?,
        created_at: from_ms(get(row, "created_at")?)?,
    })
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
