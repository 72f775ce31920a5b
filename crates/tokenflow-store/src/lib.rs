//! tokenflow's durable store (docs/flows.md, docs/api.md, docs/security.md): flows (versioned), runs and their monitor records,
//! pending authorizations, OAuth servers, API keys, schedule firings and web UI sessions.
//!
//! - [`Store`]: one trait per concern ([`FlowStore`], [`RunStore`], [`PendingStore`],
//!   [`OAuthServerStore`], [`ApiKeyStore`], [`ScheduleStore`], [`VaultStore`], [`SessionStore`],
//!   [`Housekeeping`], [`Health`], [`DevicePollStore`], [`DashboardStats`]) with intent-named methods, and [`Store`] which is all of them;
//!   every backend implements each with its own SQL, one file per concern, and one contract test
//!   suite runs against each backend.
//! - [`crypto`]: XChaCha20-Poly1305 encryption at rest with the master key; every secret column is
//!   sealed by the store itself, so no caller can forget to.
//! - [`sqlite`]: the embedded default backend (one file under the data directory, WAL).
//! - [`postgres`]: the PostgreSQL backend, for several instances sharing one database.
//! - [`rotation`]: master key rotation, online and resumable, behind a key fence in the database.
//! - `StoreTesting` (feature `testing`): reads that only tests make.
//!
//! The backend is chosen once, at start-up ([`sqlite::SqliteStore::open`] or
//! [`postgres::PostgresStore::connect`]); nothing else branches on it.

mod at_rest;
pub mod crypto;
pub mod dashboard;
mod dashboard_queries;
mod migrations;
pub mod postgres;
mod retention;
pub mod rotation;
pub mod sqlite;
mod types;

pub use crypto::{Cipher, MasterKey};
pub use dashboard::{
    CountWindow, DashboardStats, DurationClassCount, FailureCause, FlowDurations, FlowFailures,
    ServerTokenCounts, StatusCount, VaultExpiry,
};
pub use types::*;

use async_trait::async_trait;
use time::OffsetDateTime;
use tokenflow_core::SecretString;

/// What can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error")]
    Database(#[source] sqlx::Error),
    /// A failure of the SQLite store's writer connection (shared by the writes of one commit).
    #[error("database error")]
    Sqlite(#[source] std::sync::Arc<rusqlite::Error>),
    /// The store was closed (the process is stopping).
    #[error("the store is closed")]
    Closed,
    /// The SQLite store's writer thread has ended: no run can be written until tokenflow
    /// restarts (`/readyz` reports it).
    #[error("the SQLite writer thread has stopped")]
    WriterStopped,
    #[error("cannot apply migrations")]
    Migration(#[source] sqlx::migrate::MigrateError),
    #[error("cannot prepare the data directory {path}")]
    DataDir {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the master key does not open the store's key check (meta.key_check): it is not the key this data was encrypted with, or one a master key rotation replaced (check TOKENFLOW_MASTER_KEY or the key file)"
    )]
    WrongMasterKey,
    /// A master key rotation began and has not finished: no instance may start until it has.
    #[error(
        "a master key rotation has not finished; run `tokenflow master-key rotate` again to complete it (docs/operations.md)"
    )]
    RotationUnfinished,
    #[error("invalid master key: {0}")]
    InvalidMasterKey(String),
    #[error("stored data could not be decrypted ({0})")]
    Decrypt(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("{0} not found")]
    NotFound(String),
    #[error("conflict: {0}")]
    Conflict(String),
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// A store failure that is the database's condition rather than anything the caller did or any
/// stored value: it passes when the operator fixes the database (docs/operations.md, "When the
/// database fails"), so callers answer "try again later" and the runner waits it out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outage {
    /// The database does not answer (PostgreSQL stopped, restarting or unreachable).
    Unavailable,
    /// The disk under the database is full (`SQLITE_FULL`, PostgreSQL `53100`).
    DiskFull,
    /// The database or its folder is read-only (`SQLITE_READONLY`, PostgreSQL `25006`).
    ReadOnly,
    /// The storage under the database fails to read or write (`SQLITE_IOERR`; a file system
    /// the kernel turned read-only under an open database shows as this).
    Io,
}

impl StoreError {
    /// The outage this failure is, if it is one.
    pub fn outage(&self) -> Option<Outage> {
        match self {
            StoreError::Database(err) => sqlx_outage(err),
            StoreError::Sqlite(err) => sqlite_outage(err),
            StoreError::Closed
            | StoreError::Migration(_)
            | StoreError::DataDir { .. }
            | StoreError::WriterStopped
            | StoreError::WrongMasterKey
            | StoreError::RotationUnfinished
            | StoreError::InvalidMasterKey(_)
            | StoreError::Decrypt(_)
            | StoreError::Corrupt(_)
            | StoreError::NotFound(_)
            | StoreError::Conflict(_) => None,
        }
    }
}

fn sqlx_outage(err: &sqlx::Error) -> Option<Outage> {
    match err {
        // A connection that broke, or none to be had before the acquire timeout.
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut => Some(Outage::Unavailable),
        sqlx::Error::Database(db) => {
            let code = db.code()?;
            if let Ok(sqlite) = code.parse::<i32>() {
                return sqlite_code_outage(sqlite);
            }
            match code.as_ref() {
                // Class 08 (connection exception); 57P01-57P03: the server is shutting down,
                // crashed or is starting (PostgreSQL, Appendix A).
                "57P01" | "57P02" | "57P03" => Some(Outage::Unavailable),
                code if code.starts_with("08") => Some(Outage::Unavailable),
                "53100" => Some(Outage::DiskFull),
                "25006" => Some(Outage::ReadOnly),
                _ => None,
            }
        }
        _ => None,
    }
}

fn sqlite_outage(err: &rusqlite::Error) -> Option<Outage> {
    match err {
        rusqlite::Error::SqliteFailure(failure, _) => sqlite_code_outage(failure.extended_code),
        _ => None,
    }
}

/// An SQLite result code (primary or extended: the primary is its low byte).
fn sqlite_code_outage(code: i32) -> Option<Outage> {
    match code & 0xff {
        rusqlite::ffi::SQLITE_FULL => Some(Outage::DiskFull),
        rusqlite::ffi::SQLITE_READONLY => Some(Outage::ReadOnly),
        rusqlite::ffi::SQLITE_IOERR | rusqlite::ffi::SQLITE_CANTOPEN => Some(Outage::Io),
        _ => None,
    }
}

/// Whether the database answers.
#[async_trait]
pub trait Health: Send + Sync {
    /// Checks that the database answers (for `/readyz`).
    async fn ping(&self) -> Result<()>;
}

/// Flows, versioned.
#[async_trait]
pub trait FlowStore: Send + Sync {
    /// Stores `yaml` as the newest version of flow `id` unless it equals the newest version;
    /// returns the version that is now current.
    async fn put_flow(&self, id: &str, yaml: &str, now: OffsetDateTime) -> Result<FlowRow>;
    /// The newest version of a flow.
    async fn get_flow(&self, id: &str) -> Result<Option<FlowRow>>;
    /// One version of a flow.
    async fn get_flow_version(&self, id: &str, version: i64) -> Result<Option<FlowRow>>;
    /// A flow's versions, newest first, at most `limit` of them (no YAML): an empty list for an
    /// unknown flow.
    async fn list_flow_versions(&self, id: &str, limit: u32) -> Result<Vec<FlowVersionRow>>;
    /// The newest version of every flow, by id.
    async fn list_flows(&self) -> Result<Vec<FlowRow>>;
    /// Where this process learns of flow versions other processes store, so that it can keep
    /// each flow's newest version in memory: `None` when no other process writes this database's
    /// flows (SQLite), a feed of changes otherwise (PostgreSQL: `LISTEN`/`NOTIFY`).
    fn flow_changes(&self) -> Option<Box<dyn FlowChanges>> {
        None
    }
}

/// What [`FlowChanges::next`] tells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FlowChange {
    /// The feed is listening: every flow version stored from now on will be told.
    Listening,
    /// Another process (or this one) stored a new version of flow `id`.
    Changed(String),
    /// Changes may have been missed (the connection was lost); the feed reconnects and says
    /// [`FlowChange::Listening`] again.
    Lost,
}

/// A feed of flow changes ([`FlowStore::flow_changes`]).
#[async_trait]
pub trait FlowChanges: Send {
    /// Waits for the next change.
    async fn next(&mut self) -> FlowChange;
}

/// Runs, their monitor records and the leases of running runs.
#[async_trait]
pub trait RunStore: Send + Sync {
    /// Inserts a new run.
    async fn create_run(&self, run: &RunRow) -> Result<()> {
        self.create_run_with_records(run, &[]).await
    }
    /// Inserts a new run with its first monitor records (in order), in one transaction: a run
    /// whose first actions ran before it was first written (ARCHITECTURE.md, "Durable runs").
    async fn create_run_with_records(
        &self,
        run: &RunRow,
        records: &[ActionRecordRow],
    ) -> Result<()>;
    /// Saves the run's new state and appends `records` (in order) — in one transaction, so a
    /// record never exists without the state that followed it.
    async fn record_action_outcomes(&self, run: &RunRow, records: &[ActionRecordRow])
    -> Result<()>;
    /// [`RunStore::record_action_outcomes`] with one record or none.
    async fn record_action_outcome(
        &self,
        run: &RunRow,
        record: Option<&ActionRecordRow>,
    ) -> Result<()> {
        self.record_action_outcomes(run, record.map_or(&[][..], std::slice::from_ref))
            .await
    }
    /// Saves a run that suspended at a user login together with its pending authorization.
    async fn suspend_run(&self, run: &RunRow, pending: &PendingRow) -> Result<()>;
    async fn get_run(&self, id: &str) -> Result<Option<RunRow>>;
    /// Newest first.
    async fn list_runs(&self, filter: &RunFilter) -> Result<Vec<RunSummary>>;
    /// At most `limit` of a run's monitor records (0 means 100; capped at 1000), in execution
    /// order, starting at sequence number `offset`.
    async fn action_records_page(
        &self,
        run_id: &str,
        offset: u64,
        limit: u32,
    ) -> Result<Vec<ActionRecordRow>>;
    /// How many monitor records a run has (0 for an unknown run).
    async fn action_record_count(&self, run_id: &str) -> Result<u64>;
    /// How many runs of `flow_id` wait for a sign-in (`max_waiting_runs_per_flow`); an index
    /// of waiting runs answers it (migration 9).
    async fn count_waiting_runs(&self, flow_id: &str) -> Result<u64>;
    /// Extends the lease of a running run held by `owner` (the executing instance) to `until`.
    async fn renew_run_lease(&self, run_id: &str, owner: &str, until: OffsetDateTime)
    -> Result<()>;
    /// Running runs whose instance died: both their lease and `grace_ms` after their last update
    /// (every write of a run's state is made by its instance, so it proves that instance alive)
    /// are before `now`.
    async fn runs_with_expired_lease(
        &self,
        now: OffsetDateTime,
        grace_ms: i64,
    ) -> Result<Vec<String>>;
    /// Fails a run whose instance died, once across all instances: one conditional write that
    /// sets the status to `failed` with `failed`'s state, `updated_at` and `ended_at`, only while
    /// the run is still `running` and its lease expired at `now` by the rule of
    /// [`RunStore::runs_with_expired_lease`]. True for the one caller whose write landed; false when
    /// another instance failed it first, or its instance wrote it after all (it is alive).
    async fn fail_interrupted_run(
        &self,
        failed: &RunRow,
        now: OffsetDateTime,
        grace_ms: i64,
    ) -> Result<bool>;
}

/// Pending authorizations of user logins, each consumed once.
#[async_trait]
pub trait PendingStore: Send + Sync {
    /// The unconsumed pending authorization of `state`, without consuming it (expired or not), so
    /// a caller can check a request before it spends the single use.
    async fn find_pending_authorization(&self, state: &SecretString) -> Result<Option<PendingRow>>;
    /// Consumes the pending authorization of `state` atomically: only one caller ever gets
    /// [`TakePending::Taken`] for a state; a used or expired one is reported as such.
    async fn take_pending_authorization(
        &self,
        state: &SecretString,
        now: OffsetDateTime,
    ) -> Result<TakePending>;
    /// Pending authorizations that expired unconsumed, consuming them (for the expiry sweeper).
    /// Each is returned once, ever. Their `state` is empty: only its hash is stored.
    async fn take_expired_pending(&self, now: OffsetDateTime) -> Result<Vec<PendingRow>>;
    /// Removes a run's unconsumed pending authorization (cancel); returns whether one existed.
    async fn discard_pending_for_run(&self, run_id: &str) -> Result<bool>;
}

/// The polling schedules of waiting device logins, each polled by one instance at a time.
#[async_trait]
pub trait DevicePollStore: Send + Sync {
    /// Creates (or replaces) a run's polling schedule, unclaimed.
    async fn schedule_device_poll(&self, poll: &DevicePollRow) -> Result<()>;
    /// Claims at most `limit` schedules that are due at `now` and not claimed (or whose claim
    /// expired), for `owner` until `until`, soonest first: each due schedule is returned to one
    /// caller only, across instances, until its claim is released or expires.
    async fn claim_device_polls(
        &self,
        owner: &str,
        now: OffsetDateTime,
        until: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<DevicePollRow>>;
    /// Gives `owner`'s claim back with the next poll's time and interval; false (nothing
    /// changed) when the claim is not `owner`'s any more or the schedule is gone.
    async fn release_device_poll(
        &self,
        run_id: &str,
        owner: &str,
        interval_ms: i64,
        next_poll_at: OffsetDateTime,
    ) -> Result<bool>;
    /// Removes a run's schedule (its device login ended); returns whether it existed.
    async fn delete_device_poll(&self, run_id: &str) -> Result<bool>;
}

/// OAuth servers created through the API (the client secret is write-only).
#[async_trait]
pub trait OAuthServerStore: Send + Sync {
    async fn put_oauth_server(&self, server: &OAuthServerRow) -> Result<()>;
    async fn get_oauth_server(&self, id: &str) -> Result<Option<OAuthServerRow>>;
    async fn list_oauth_servers(&self) -> Result<Vec<OAuthServerRow>>;
    async fn delete_oauth_server(&self, id: &str) -> Result<bool>;
}

/// API keys, stored hashed.
#[async_trait]
pub trait ApiKeyStore: Send + Sync {
    async fn put_api_key(&self, key: &ApiKeyRow) -> Result<()>;
    /// The key whose SHA-256 is `hash`, if any.
    async fn find_api_key(&self, hash: &str) -> Result<Option<ApiKeyRow>>;
    async fn list_api_keys(&self) -> Result<Vec<ApiKeyRow>>;
    async fn delete_api_key(&self, name: &str) -> Result<bool>;
}

/// Schedule firings, each claimed once across instances.
#[async_trait]
pub trait ScheduleStore: Send + Sync {
    /// Claims the firing of `flow_id` at `due` (unix seconds): true for exactly one caller, ever.
    async fn claim_firing(
        &self,
        flow_id: &str,
        due: i64,
        run_id: &str,
        now: OffsetDateTime,
    ) -> Result<bool>;
    /// The claimed firings of a flow, oldest first (at most `limit`, newest ones kept).
    async fn firings(&self, flow_id: &str, limit: u32) -> Result<Vec<FiringRow>>;
    /// The newest claimed firing of a flow.
    async fn last_firing(&self, flow_id: &str) -> Result<Option<FiringRow>>;
}

/// Deleting what is no longer needed.
#[async_trait]
pub trait Housekeeping: Send + Sync {
    /// Housekeeping: deletes the pending authorizations consumed before `before` (until then a
    /// replayed `state` is answered "already used", afterwards "unknown") and the schedule firings
    /// claimed before `before`, except each flow's newest (where its schedule goes on from).
    /// Returns how many rows were deleted.
    async fn purge_consumed(&self, before: OffsetDateTime) -> Result<u64>;
    /// Retention: deletes at most `limit` ended runs (`completed`, `failed`, `cancelled` — never
    /// a waiting or running one) that `rule` no longer keeps, with their monitor records,
    /// pending authorizations and device polls, in one transaction; returns how many runs. The
    /// runs are chosen by reads beforehand, so the write transaction holds only the deletes.
    async fn purge_ended_runs(&self, rule: &RetentionRule, limit: u32) -> Result<u64>;
}

/// Which ended runs are kept (docs/operations.md, "Retention"); a run goes when either part
/// lets it go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RetentionRule {
    /// Ended runs that ended before this instant go.
    pub ended_before: Option<OffsetDateTime>,
    /// Of each flow's ended runs, only the newest (by end) this many stay.
    pub keep_per_flow: Option<u64>,
}

/// The token vault (docs/connectors.md).
#[async_trait]
pub trait VaultStore: Send + Sync {
    /// A vault entry, tokens decrypted.
    async fn get_vault_entry(&self, name: &str) -> Result<Option<VaultEntryRow>>;
    /// Creates or replaces an entry (a fresh grant): its version becomes the old one plus one.
    async fn put_vault_entry(&self, entry: &VaultEntryRow) -> Result<VaultEntryRow>;
    /// Compare-and-swap: writes `entry` as version `expected_version + 1` only if the stored
    /// version is still `expected_version`; false when somebody else changed it first.
    async fn update_vault_entry(
        &self,
        entry: &VaultEntryRow,
        expected_version: i64,
    ) -> Result<bool>;
    /// Every entry, by name (tokens included: callers show metadata only).
    async fn list_vault_entries(&self) -> Result<Vec<VaultEntryRow>>;
    async fn delete_vault_entry(&self, name: &str) -> Result<bool>;
    /// Claims the right to refresh entry `name` until `until` (a lease): held by one caller at a
    /// time, across instances; an expired lease of another owner is taken over, and says so.
    async fn claim_vault_refresh(
        &self,
        name: &str,
        owner: &str,
        until: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<RefreshClaim>;
    /// Gives a lease back (only the owner's).
    async fn release_vault_refresh(&self, name: &str, owner: &str) -> Result<()>;
}

/// Web UI sessions.
#[async_trait]
pub trait SessionStore: Send + Sync {
    /// Opens a session. `NotFound` when it belongs to a stored API key that does not exist (any
    /// more), `Conflict` when a session with that id hash exists.
    async fn create_ui_session(&self, session: &UiSessionRow) -> Result<()>;
    /// The session whose id hashes to `id_hash`, if it has not expired at `now`, was not deleted,
    /// and (for a stored API key) its key still exists.
    async fn find_ui_session(
        &self,
        id_hash: &str,
        now: OffsetDateTime,
    ) -> Result<Option<UiSessionRow>>;
    /// Ends a session (sign-out); returns whether it existed.
    async fn delete_ui_session(&self, id_hash: &str) -> Result<bool>;
    /// Housekeeping: deletes at most `limit` sessions that expired at or before `now`; returns how
    /// many. Bounded so that one call never holds the database for long.
    async fn purge_expired_ui_sessions(&self, now: OffsetDateTime, limit: u32) -> Result<u64>;
}

/// The durable store: every concern's trait, implemented by each backend with its own SQL. All
/// methods are atomic; secrets given as [`SecretString`] are encrypted before they reach the
/// database. Callers hold an `Arc<dyn Store>` and bring the concern traits they call into scope
/// (`use tokenflow_store::prelude::*`).
pub trait Store:
    Health
    + FlowStore
    + RunStore
    + PendingStore
    + OAuthServerStore
    + ApiKeyStore
    + ScheduleStore
    + Housekeeping
    + VaultStore
    + SessionStore
    + DevicePollStore
    + DashboardStats
    + TestReads
    + Send
    + Sync
    + std::fmt::Debug
{
}

impl<T> Store for T where
    T: Health
        + FlowStore
        + RunStore
        + PendingStore
        + OAuthServerStore
        + ApiKeyStore
        + ScheduleStore
        + Housekeeping
        + VaultStore
        + SessionStore
        + DevicePollStore
        + DashboardStats
        + TestReads
        + Send
        + Sync
        + std::fmt::Debug
{
}

/// [`StoreTesting`] with the `testing` feature, nothing without it: so a [`Store`] offers the
/// test-only reads exactly in test builds.
#[cfg(feature = "testing")]
pub trait TestReads: StoreTesting {}
#[cfg(feature = "testing")]
impl<T: StoreTesting> TestReads for T {}
/// [`StoreTesting`] with the `testing` feature, nothing without it.
#[cfg(not(feature = "testing"))]
pub trait TestReads {}
#[cfg(not(feature = "testing"))]
impl<T> TestReads for T {}

/// Reads that only tests make, so production code cannot come to depend on them: a run's whole
/// monitor history (the server reads it a page at a time) and every run in one status. Behind the
/// `testing` feature, which the store's own tests and other crates' dev-dependencies turn on.
#[cfg(feature = "testing")]
#[async_trait]
pub trait StoreTesting: Send + Sync {
    /// A run's monitor records in execution order (all of them: for tests and tools; the
    /// server reads them a page at a time with [`Store::action_records_page`]).
    async fn action_records(&self, run_id: &str) -> Result<Vec<ActionRecordRow>>;
    /// Runs whose status is `running` (left behind by a crash or kill).
    async fn runs_with_status(&self, status: tokenflow_core::RunStatus) -> Result<Vec<RunRow>>;
}

/// The store's traits, for callers of an `Arc<dyn Store>`: `use tokenflow_store::prelude::*;`.
pub mod prelude {
    #[cfg(feature = "testing")]
    pub use crate::StoreTesting;
    pub use crate::{
        ApiKeyStore, DashboardStats, DevicePollStore, FlowStore, Health, Housekeeping,
        OAuthServerStore, PendingStore, RunStore, ScheduleStore, SessionStore, Store, VaultStore,
    };
}
