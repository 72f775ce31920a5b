//! The store contract: one suite of test bodies that every backend must pass.
//!
//! Each body is an `async fn(Arc<dyn Store>)` written once; `for_each_contract_test!` hands the
//! list of bodies to `contract_tests!`, which generates one `#[tokio::test]` per body and backend
//! (the idea of ripgrep's `rgtest!`), each on a fresh database. A new backend is one more line at
//! the bottom of the "backends" section. The bodies live in `contract/`, one file per area. Tests
//! that are about SQLite itself (files, key check, reopening) are in `contract/sqlite_only.rs`;
//! those about PostgreSQL (several instances, raw column contents) are in `postgres_only/`.
//!
//! PostgreSQL tests need a server: `TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`, a role that may create databases), or run
//! `scripts/start-test-postgres`. Each test creates its own database and drops it afterwards;
//! without a server they fail, they are never skipped.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers fail loudly

use std::path::Path;
use std::sync::Arc;

use base64::Engine as _;
use time::macros::datetime;
use time::{Duration, OffsetDateTime};
use tokenflow_core::{RunStatus, SecretString, VaultEntryState};
use tokenflow_store::postgres::PostgresStore;
use tokenflow_store::prelude::*;
use tokenflow_store::sqlite::{DB_FILE_NAME, SqliteStore};
use tokenflow_store::{
    ActionRecordRow, ApiKeyRow, FiringRow, FlowChange, FlowVersionRow, MasterKey, OAuthServerRow,
    PendingRow, RefreshClaim, RunFilter, RunRow, Store, StoreError, TakePending, UiSessionOwner,
    UiSessionRow, VaultEntryRow,
};

// ---------------------------------------------------------------------------------------------
// Backends and the macros
// ---------------------------------------------------------------------------------------------

mod postgres_only;

use postgres_only::TestDatabase;

/// A store on a fresh database, and whatever keeps that database alive.
struct Backend {
    store: Arc<dyn Store>,
    owned: Owned,
}

/// What a backend's database lives in, to be removed after the test.
enum Owned {
    Dir(tempfile::TempDir),
    Postgres(Arc<PostgresStore>, TestDatabase),
}

impl Backend {
    /// Removes the test's database: best effort, so it never hides the test's own outcome.
    async fn teardown(self) {
        drop(self.store);
        match self.owned {
            Owned::Dir(dir) => drop(dir),
            Owned::Postgres(store, database) => {
                // Bounded: a task the body left behind may still hold a connection; the drop
                // below forces those off anyway.
                let _ =
                    tokio::time::timeout(std::time::Duration::from_secs(5), store.close()).await;
                database.drop_database().await;
            }
        }
    }
}

fn test_key(byte: u8) -> MasterKey {
    MasterKey::from_base64(&base64::engine::general_purpose::STANDARD.encode([byte; 32])).unwrap()
}

async fn sqlite_backend() -> Backend {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path(), &test_key(1)).await.unwrap();
    Backend {
        store: Arc::new(store),
        owned: Owned::Dir(dir),
    }
}

async fn postgres_backend() -> Backend {
    let database = TestDatabase::create().await;
    let store = Arc::new(
        PostgresStore::connect(&database.url(), &test_key(1))
            .await
            .unwrap(),
    );
    Backend {
        store: store.clone(),
        owned: Owned::Postgres(store, database),
    }
}

/// Re-raises the panic of a spawned test body (after its teardown ran).
fn resume(outcome: Result<(), tokio::task::JoinError>) {
    if let Err(err) = outcome {
        match err.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(err) => panic!("the test body did not finish: {err}"),
        }
    }
}

/// `contract_tests!(backend_module => open_fn; body, body, …)`: one test per body.
macro_rules! contract_tests {
    ($backend:ident => $open:ident; $($body:ident),+ $(,)?) => {
        mod $backend {
            $(
                // Several worker threads, so the concurrency tests really run in parallel.
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $body() {
                    let backend = super::$open().await;
                    // Spawned, so that a failing body still reaches the teardown: its panic
                    // comes back as a `JoinError` and is raised again afterwards.
                    let outcome = tokio::spawn(super::$body(backend.store.clone())).await;
                    backend.teardown().await;
                    super::resume(outcome);
                }
            )+
        }
    };
}

/// The one list of contract bodies, passed to `contract_tests!` once per backend.
macro_rules! for_each_contract_test {
    ($macro:ident ! ($($args:tt)*)) => {
        $macro!($($args)*;
            the_store_answers_a_ping,
            putting_the_same_flow_yaml_again_keeps_its_version,
            twenty_concurrent_puts_of_one_flow_agree_on_its_versions,
            a_changed_flow_yaml_becomes_the_next_version_and_old_versions_stay_readable,
            going_back_to_an_older_yaml_is_still_a_new_version,
            list_flows_gives_the_newest_version_of_each_flow_ordered_by_id,
            a_created_run_reads_back_equal_and_a_second_run_with_its_id_is_a_conflict,
            a_run_created_with_its_first_records_has_them_and_a_conflict_adds_none,
            list_runs_is_newest_first_and_filters_by_flow_status_and_start_time,
            list_runs_pages_with_limit_and_offset_and_a_zero_limit_means_a_hundred,
            list_runs_caps_the_limit_at_a_thousand,
            record_action_outcome_saves_the_run_and_appends_records_in_order,
            monitor_records_are_read_a_page_at_a_time_and_counted,
            a_duplicate_monitor_record_is_a_conflict_and_leaves_the_run_unchanged,
            record_action_outcome_for_an_unknown_run_is_not_found_and_stores_no_record,
            runs_with_status_returns_exactly_the_runs_in_that_status,
            every_run_status_and_vault_entry_state_reads_back_as_itself,
            a_suspended_run_waits_and_its_pending_authorization_is_taken_only_once,
            an_unknown_state_is_reported_unknown,
            finding_a_pending_authorization_does_not_consume_it,
            an_expired_pending_authorization_is_reported_expired_once_then_already_used,
            twenty_concurrent_takers_of_one_state_get_exactly_one_taken,
            a_flows_versions_are_listed_newest_first_without_their_yaml_up_to_the_limit,
            take_expired_pending_returns_each_expired_row_once_and_never_a_taken_one,
            discarding_a_runs_pending_authorization_consumes_only_that_one,
            a_suspend_with_a_reused_state_is_a_conflict_and_leaves_the_run_unchanged,
            oauth_servers_upsert_and_return_their_secret_decrypted_until_deleted,
            api_keys_are_found_by_hash_listed_by_name_and_deleted_by_name,
            an_api_key_with_a_taken_name_or_hash_is_a_conflict,
            a_firing_is_claimed_once_and_last_firing_is_the_newest_per_flow,
            twenty_concurrent_claimers_of_one_firing_get_exactly_one_claim,
            vault_entries_roundtrip_with_versions_and_compare_and_swap,
            twenty_concurrent_vault_swaps_of_one_version_let_exactly_one_win,
            a_vault_refresh_lease_has_one_holder_until_it_is_released_or_expires,
            a_due_device_poll_is_claimed_by_one_instance_until_released_or_expired,
            running_runs_without_a_live_lease_are_found_after_it_expires,
            an_interrupted_run_is_failed_by_exactly_one_of_twenty_concurrent_claims,
            twenty_concurrent_fresh_grants_of_one_vault_entry_each_get_their_own_version,
            concurrent_run_writes_each_get_their_own_answer_when_one_of_them_conflicts,
            purging_deletes_consumed_logins_and_old_firings_but_keeps_each_flows_newest,
            a_ui_session_is_found_by_its_hash_until_it_expires_or_is_signed_out,
            a_second_ui_session_with_the_same_id_hash_is_a_conflict,
            deleting_an_api_key_ends_its_ui_sessions_and_a_session_needs_an_existing_key,
            purging_ui_sessions_deletes_expired_ones_at_most_limit_at_a_time,
            retention_by_age_deletes_ended_runs_oldest_first_a_batch_at_a_time_and_never_a_waiting_or_running_one,
            retention_by_count_keeps_the_newest_ended_runs_of_each_flow,
            the_waiting_runs_of_a_flow_are_counted,
            ended_runs_are_counted_once_per_interval_by_final_status_and_duration,
            failure_causes_are_the_last_actions_of_a_flows_newest_failed_runs,
            token_requests_and_cache_hits_are_counted_per_server,
            vault_expiries_come_soonest_first_with_their_states,
        );
    };
}

for_each_contract_test!(contract_tests!(sqlite => sqlite_backend));
for_each_contract_test!(contract_tests!(postgres => postgres_backend));

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// A fixed instant plus `seconds`: tests never read the real clock, and whole seconds survive
/// the store's millisecond precision unchanged.
fn at(seconds: i64) -> OffsetDateTime {
    datetime!(2025-06-01 12:00 UTC) + Duration::seconds(seconds)
}

fn run(id: &str, flow_id: &str, status: &str, started: i64) -> RunRow {
    RunRow {
        id: id.to_owned(),
        flow_id: flow_id.to_owned(),
        flow_version: 1,
        status: RunStatus::parse(status).unwrap(),
        state: SecretString::new(format!(
            r#"{{"run":"{id}","vars":{{"token":"secret-{id}"}}}}"#
        )),
        browser_binding: None,
        started_at: at(started),
        updated_at: at(started),
        ended_at: None,
    }
}

fn pending(state: &str, run_id: &str, created: i64, expires: i64) -> PendingRow {
    PendingRow {
        state: SecretString::new(state),
        run_id: run_id.to_owned(),
        action: "login".to_owned(),
        payload: SecretString::new(format!(r#"{{"code_verifier":"verifier-{state}"}}"#)),
        created_at: at(created),
        expires_at: at(expires),
    }
}

fn record(run_id: &str, seq: i64) -> ActionRecordRow {
    ActionRecordRow {
        run_id: run_id.to_owned(),
        seq,
        json: format!(r#"{{"seq":{seq}}}"#),
    }
}

/// A run that is suspended at a login waiting on `state`, with the pending row it was saved with.
async fn suspended(
    store: &dyn Store,
    run_id: &str,
    state: &str,
    expires: i64,
) -> (RunRow, PendingRow) {
    store
        .create_run(&run(run_id, "f", "running", 0))
        .await
        .unwrap();
    let mut waiting = run(run_id, "f", "waiting", 0);
    waiting.updated_at = at(1);
    let pending = pending(state, run_id, 1, expires);
    store.suspend_run(&waiting, &pending).await.unwrap();
    (waiting, pending)
}

fn ids(runs: &[tokenflow_store::RunSummary]) -> Vec<&str> {
    runs.iter().map(|run| run.id.as_str()).collect()
}

fn vault_entry(name: &str, access: Option<&str>, refresh: Option<&str>) -> VaultEntryRow {
    VaultEntryRow {
        name: name.into(),
        server_id: "entra".into(),
        access_token: access.map(SecretString::new),
        refresh_token: refresh.map(SecretString::new),
        expires_at: Some(at(3600)),
        granted_scopes: Some("User.Read".into()),
        state: VaultEntryState::Ok,
        last_refresh_at: None,
        last_refresh_outcome: None,
        version: 0,
        updated_at: at(0),
    }
}

// ---------------------------------------------------------------------------------------------
// Contract bodies (one file per area, in `contract/`) and the SQLite-only tests
// ---------------------------------------------------------------------------------------------

#[path = "contract/admin.rs"]
mod admin;
#[path = "contract/dashboard.rs"]
mod dashboard;
#[path = "contract/flows_runs.rs"]
mod flows_runs;
#[path = "contract/leases.rs"]
mod leases;
#[path = "contract/pending_authorizations.rs"]
mod pending_authorizations;
#[path = "contract/retention.rs"]
mod retention;
#[path = "contract/rotation.rs"]
mod rotation;
#[path = "contract/sqlite_only.rs"]
mod sqlite_only;
#[path = "contract/ui_sessions.rs"]
mod ui_sessions;
#[path = "contract/vault.rs"]
mod vault;

use admin::*;
use dashboard::*;
use flows_runs::*;
use leases::*;
use pending_authorizations::*;
use retention::*;
use ui_sessions::*;
use vault::*;
