//! The store contract: one suite of test bodies that every backend must pass.
//!
//! Each body is an `async fn(Arc<dyn Store>)` written once; `for_each_contract_test!` hands the
//! list of bodies to `contract_tests!`, which generates one `#[tokio::test]` per body and backend
//! (the idea of ripgrep's `rgtest!`), each on a fresh database. A new backend is one more line at
//! the bottom of the "backends" section. Tests that are about SQLite itself (files, key check,
//! reopening) follow in the `sqlite_only` module; those about PostgreSQL (several instances, raw
//! column contents) are in `postgres_only/`.
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
use tokenflow_core::SecretString;
use tokenflow_store::postgres::PostgresStore;
use tokenflow_store::sqlite::{DB_FILE_NAME, SqliteStore};
use tokenflow_store::{
    ActionRecordRow, ApiKeyRow, FiringRow, MasterKey, OAuthServerRow, PendingRow, RunFilter,
    RunRow, Store, StoreError, TakePending, VaultEntryRow,
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
            list_runs_is_newest_first_and_filters_by_flow_status_and_start_time,
            list_runs_pages_with_limit_and_offset_and_a_zero_limit_means_a_hundred,
            list_runs_caps_the_limit_at_a_thousand,
            record_action_outcome_saves_the_run_and_appends_records_in_order,
            a_duplicate_monitor_record_is_a_conflict_and_leaves_the_run_unchanged,
            record_action_outcome_for_an_unknown_run_is_not_found_and_stores_no_record,
            runs_with_status_returns_exactly_the_runs_in_that_status,
            a_suspended_run_waits_and_its_pending_authorization_is_taken_only_once,
            an_unknown_state_is_reported_unknown,
            finding_a_pending_authorization_does_not_consume_it,
            an_expired_pending_authorization_is_reported_expired_once_then_already_used,
            twenty_concurrent_takers_of_one_state_get_exactly_one_taken,
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
            running_runs_without_a_live_lease_are_found_after_it_expires,
            twenty_concurrent_fresh_grants_of_one_vault_entry_each_get_their_own_version,
            concurrent_run_writes_each_get_their_own_answer_when_one_of_them_conflicts,
            purging_deletes_consumed_logins_and_old_firings_but_keeps_each_flows_newest,
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
        status: status.to_owned(),
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

// ---------------------------------------------------------------------------------------------
// Contract bodies
// ---------------------------------------------------------------------------------------------

async fn the_store_answers_a_ping(store: Arc<dyn Store>) {
    store.ping().await.unwrap();
}

// ---- flows ----

async fn putting_the_same_flow_yaml_again_keeps_its_version(store: Arc<dyn Store>) {
    let first = store
        .put_flow("hello", "actions: []\n", at(0))
        .await
        .unwrap();
    assert_eq!(first.version, 1);
    assert_eq!(first.created_at, at(0));
    let again = store
        .put_flow("hello", "actions: []\n", at(60))
        .await
        .unwrap();
    assert_eq!(again, first, "same yaml: same row, created_at unchanged");
    assert_eq!(store.get_flow("hello").await.unwrap(), Some(first));
    assert_eq!(store.get_flow_version("hello", 2).await.unwrap(), None);
}

async fn twenty_concurrent_puts_of_one_flow_agree_on_its_versions(store: Arc<dyn Store>) {
    // The same yaml from everybody: one version 1, and every caller is told about that one.
    let barrier = Arc::new(tokio::sync::Barrier::new(20));
    let same: Vec<_> = (0..20)
        .map(|index| {
            let (store, barrier) = (store.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                store.put_flow("same", "a: 1\n", at(index)).await
            })
        })
        .collect();
    let mut rows = Vec::new();
    for put in same {
        rows.push(put.await.unwrap().unwrap());
    }
    let stored = store.get_flow("same").await.unwrap().unwrap();
    assert_eq!(stored.version, 1);
    assert!(rows.iter().all(|row| *row == stored), "{rows:?}");
    assert_eq!(store.get_flow_version("same", 2).await.unwrap(), None);

    // Different yamls: twenty consecutive versions, each holding the yaml its writer was told.
    let barrier = Arc::new(tokio::sync::Barrier::new(20));
    let different: Vec<_> = (0..20)
        .map(|index| {
            let (store, barrier) = (store.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                store
                    .put_flow("many", &format!("a: {index}\n"), at(0))
                    .await
            })
        })
        .collect();
    let mut versions = Vec::new();
    for put in different {
        let row = put.await.unwrap().unwrap();
        let stored = store.get_flow_version("many", row.version).await.unwrap();
        assert_eq!(stored.as_ref(), Some(&row));
        versions.push(row.version);
    }
    versions.sort();
    assert_eq!(versions, (1..=20).collect::<Vec<i64>>());
    assert_eq!(store.get_flow("many").await.unwrap().unwrap().version, 20);
}

async fn a_changed_flow_yaml_becomes_the_next_version_and_old_versions_stay_readable(
    store: Arc<dyn Store>,
) {
    let v1 = store.put_flow("hello", "a: 1\n", at(0)).await.unwrap();
    let v2 = store.put_flow("hello", "a: 2\n", at(10)).await.unwrap();
    assert_eq!((v1.version, v2.version), (1, 2));
    assert_eq!(v2.yaml, "a: 2\n");
    assert_eq!(v2.created_at, at(10));
    assert_eq!(store.get_flow("hello").await.unwrap(), Some(v2.clone()));
    assert_eq!(store.get_flow_version("hello", 1).await.unwrap(), Some(v1));
    assert_eq!(store.get_flow_version("hello", 2).await.unwrap(), Some(v2));
    assert_eq!(store.get_flow("nope").await.unwrap(), None);
    assert_eq!(store.get_flow_version("nope", 1).await.unwrap(), None);
}

async fn going_back_to_an_older_yaml_is_still_a_new_version(store: Arc<dyn Store>) {
    store.put_flow("f", "a: 1\n", at(0)).await.unwrap();
    store.put_flow("f", "a: 2\n", at(1)).await.unwrap();
    let back = store.put_flow("f", "a: 1\n", at(2)).await.unwrap();
    assert_eq!(
        back.version, 3,
        "only the newest version counts as 'unchanged'"
    );
}

async fn list_flows_gives_the_newest_version_of_each_flow_ordered_by_id(store: Arc<dyn Store>) {
    assert!(store.list_flows().await.unwrap().is_empty());
    store.put_flow("zeta", "z: 1\n", at(0)).await.unwrap();
    store.put_flow("alpha", "a: 1\n", at(1)).await.unwrap();
    store.put_flow("alpha", "a: 2\n", at(2)).await.unwrap();
    store.put_flow("mid", "m: 1\n", at(3)).await.unwrap();
    let listed: Vec<(String, i64, String)> = store
        .list_flows()
        .await
        .unwrap()
        .into_iter()
        .map(|flow| (flow.id, flow.version, flow.yaml))
        .collect();
    assert_eq!(
        listed,
        vec![
            ("alpha".into(), 2, "a: 2\n".into()),
            ("mid".into(), 1, "m: 1\n".into()),
            ("zeta".into(), 1, "z: 1\n".into()),
        ]
    );
}

// ---- runs and the monitor ----

async fn a_created_run_reads_back_equal_and_a_second_run_with_its_id_is_a_conflict(
    store: Arc<dyn Store>,
) {
    let mut created = run("r1", "f", "running", 0);
    created.browser_binding = Some("ab".repeat(32));
    created.flow_version = 7;
    store.create_run(&created).await.unwrap();
    assert_eq!(store.get_run("r1").await.unwrap(), Some(created.clone()));
    assert_eq!(store.get_run("r2").await.unwrap(), None);

    let mut other = run("r1", "g", "completed", 5);
    other.state = SecretString::new("{}");
    let err = store.create_run(&other).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    assert_eq!(store.get_run("r1").await.unwrap(), Some(created));
}

async fn list_runs_is_newest_first_and_filters_by_flow_status_and_start_time(
    store: Arc<dyn Store>,
) {
    let mut done = run("r3", "f", "completed", 30);
    done.ended_at = Some(at(35));
    for row in [
        run("r1", "f", "running", 10),
        run("r2", "g", "waiting", 20),
        done,
        run("r4", "g", "running", 40),
        // Same start as r4: the id breaks the tie, descending.
        run("r5", "f", "failed", 40),
    ] {
        store.create_run(&row).await.unwrap();
    }
    let all = store.list_runs(&RunFilter::default()).await.unwrap();
    assert_eq!(ids(&all), ["r5", "r4", "r3", "r2", "r1"]);
    let r3 = &all[2];
    assert_eq!(
        (r3.flow_id.as_str(), r3.flow_version, r3.status.as_str()),
        ("f", 1, "completed")
    );
    assert_eq!((r3.started_at, r3.ended_at), (at(30), Some(at(35))));

    let by_flow = RunFilter {
        flow_id: Some("f".into()),
        ..RunFilter::default()
    };
    assert_eq!(
        ids(&store.list_runs(&by_flow).await.unwrap()),
        ["r5", "r3", "r1"]
    );

    let by_status = RunFilter {
        status: Some("running".into()),
        ..RunFilter::default()
    };
    assert_eq!(
        ids(&store.list_runs(&by_status).await.unwrap()),
        ["r4", "r1"]
    );

    let both = RunFilter {
        flow_id: Some("g".into()),
        status: Some("running".into()),
        ..RunFilter::default()
    };
    assert_eq!(ids(&store.list_runs(&both).await.unwrap()), ["r4"]);

    // Start-time window: `started_after` inclusive, `started_before` exclusive.
    let window = RunFilter {
        started_after: Some(at(20)),
        started_before: Some(at(40)),
        ..RunFilter::default()
    };
    assert_eq!(ids(&store.list_runs(&window).await.unwrap()), ["r3", "r2"]);

    let nothing = RunFilter {
        flow_id: Some("unknown".into()),
        ..RunFilter::default()
    };
    assert!(store.list_runs(&nothing).await.unwrap().is_empty());
}

async fn list_runs_pages_with_limit_and_offset_and_a_zero_limit_means_a_hundred(
    store: Arc<dyn Store>,
) {
    for index in 0..105 {
        store
            .create_run(&run(&format!("r{index:03}"), "f", "completed", index))
            .await
            .unwrap();
    }
    let default_page = store.list_runs(&RunFilter::default()).await.unwrap();
    assert_eq!(default_page.len(), 100);
    assert_eq!(default_page[0].id, "r104");

    let page = RunFilter {
        limit: 3,
        offset: 2,
        ..RunFilter::default()
    };
    assert_eq!(
        ids(&store.list_runs(&page).await.unwrap()),
        ["r102", "r101", "r100"]
    );
    let last = RunFilter {
        limit: 10,
        offset: 100,
        ..RunFilter::default()
    };
    assert_eq!(
        ids(&store.list_runs(&last).await.unwrap()),
        ["r004", "r003", "r002", "r001", "r000"]
    );
    let beyond = RunFilter {
        limit: 10,
        offset: 105,
        ..RunFilter::default()
    };
    assert!(store.list_runs(&beyond).await.unwrap().is_empty());
}

async fn list_runs_caps_the_limit_at_a_thousand(store: Arc<dyn Store>) {
    for index in 0..1001 {
        store
            .create_run(&run(&format!("r{index:04}"), "f", "completed", index))
            .await
            .unwrap();
    }
    let huge = RunFilter {
        limit: u32::MAX,
        ..RunFilter::default()
    };
    let listed = store.list_runs(&huge).await.unwrap();
    assert_eq!(listed.len(), 1000);
    assert_eq!(
        listed[999].id, "r0001",
        "the oldest run is the one left out"
    );
}

async fn record_action_outcome_saves_the_run_and_appends_records_in_order(store: Arc<dyn Store>) {
    store
        .create_run(&run("r1", "f", "running", 0))
        .await
        .unwrap();
    let mut next = run("r1", "f", "running", 0);
    for seq in 0..3 {
        next.state = SecretString::new(format!(r#"{{"after":{seq}}}"#));
        next.updated_at = at(seq + 1);
        store
            .record_action_outcome(&next, Some(&record("r1", seq)))
            .await
            .unwrap();
    }
    let mut finished = next.clone();
    finished.status = "completed".into();
    finished.ended_at = Some(at(9));
    finished.updated_at = at(9);
    finished.browser_binding = Some("binding".into());
    store.record_action_outcome(&finished, None).await.unwrap();

    assert_eq!(store.get_run("r1").await.unwrap(), Some(finished));
    assert_eq!(
        store.action_records("r1").await.unwrap(),
        vec![record("r1", 0), record("r1", 1), record("r1", 2)]
    );
    assert!(store.action_records("other").await.unwrap().is_empty());
}

async fn a_duplicate_monitor_record_is_a_conflict_and_leaves_the_run_unchanged(
    store: Arc<dyn Store>,
) {
    store
        .create_run(&run("r1", "f", "running", 0))
        .await
        .unwrap();
    let mut first = run("r1", "f", "running", 0);
    first.state = SecretString::new(r#"{"after":0}"#);
    first.updated_at = at(1);
    store
        .record_action_outcome(&first, Some(&record("r1", 0)))
        .await
        .unwrap();

    let mut clash = first.clone();
    clash.status = "completed".into();
    clash.state = SecretString::new(r#"{"after":"clash"}"#);
    clash.updated_at = at(2);
    clash.ended_at = Some(at(2));
    let mut duplicate = record("r1", 0);
    duplicate.json = r#"{"other":true}"#.into();
    let err = store
        .record_action_outcome(&clash, Some(&duplicate))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");

    assert_eq!(
        store.get_run("r1").await.unwrap(),
        Some(first),
        "rolled back"
    );
    assert_eq!(
        store.action_records("r1").await.unwrap(),
        vec![record("r1", 0)]
    );
}

async fn record_action_outcome_for_an_unknown_run_is_not_found_and_stores_no_record(
    store: Arc<dyn Store>,
) {
    let ghost = run("ghost", "f", "running", 0);
    let err = store
        .record_action_outcome(&ghost, Some(&record("ghost", 0)))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)), "{err:?}");
    assert!(store.action_records("ghost").await.unwrap().is_empty());
    assert_eq!(store.get_run("ghost").await.unwrap(), None);
}

async fn runs_with_status_returns_exactly_the_runs_in_that_status(store: Arc<dyn Store>) {
    let running_a = run("a", "f", "running", 1);
    let running_b = run("b", "g", "running", 2);
    store.create_run(&running_a).await.unwrap();
    store
        .create_run(&run("c", "f", "waiting", 3))
        .await
        .unwrap();
    store.create_run(&running_b).await.unwrap();
    store
        .create_run(&run("d", "f", "completed", 4))
        .await
        .unwrap();

    let mut running = store.runs_with_status("running").await.unwrap();
    running.sort_by(|x, y| x.id.cmp(&y.id));
    assert_eq!(
        running,
        vec![running_a, running_b],
        "full rows, state decrypted"
    );
    let waiting = store.runs_with_status("waiting").await.unwrap();
    assert_eq!(
        waiting.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        ["c"]
    );
    assert!(
        store
            .runs_with_status("cancelled")
            .await
            .unwrap()
            .is_empty()
    );
}

// ---- pending authorizations ----

async fn a_suspended_run_waits_and_its_pending_authorization_is_taken_only_once(
    store: Arc<dyn Store>,
) {
    let (waiting, pending) = suspended(store.as_ref(), "r1", "state-abc", 600).await;
    assert_eq!(store.get_run("r1").await.unwrap(), Some(waiting));

    let state = SecretString::new("state-abc");
    match store
        .take_pending_authorization(&state, at(30))
        .await
        .unwrap()
    {
        TakePending::Taken(taken) => assert_eq!(taken, pending),
        other => panic!("expected Taken, got {other:?}"),
    }
    assert_eq!(
        store
            .take_pending_authorization(&state, at(31))
            .await
            .unwrap(),
        TakePending::AlreadyUsed
    );
}

async fn finding_a_pending_authorization_does_not_consume_it(store: Arc<dyn Store>) {
    let (_, pending) = suspended(store.as_ref(), "r1", "state-abc", 600).await;
    let state = SecretString::new("state-abc");
    assert_eq!(
        store.find_pending_authorization(&state).await.unwrap(),
        Some(pending.clone())
    );
    assert_eq!(
        store.find_pending_authorization(&state).await.unwrap(),
        Some(pending),
        "still there"
    );
    assert_eq!(
        store
            .find_pending_authorization(&SecretString::new("other"))
            .await
            .unwrap(),
        None
    );
    assert!(matches!(
        store
            .take_pending_authorization(&state, at(30))
            .await
            .unwrap(),
        TakePending::Taken(_)
    ));
    assert_eq!(
        store.find_pending_authorization(&state).await.unwrap(),
        None,
        "consumed ones are not found"
    );
}

async fn an_unknown_state_is_reported_unknown(store: Arc<dyn Store>) {
    suspended(store.as_ref(), "r1", "state-abc", 600).await;
    let outcome = store
        .take_pending_authorization(&SecretString::new("state-xyz"), at(30))
        .await
        .unwrap();
    assert_eq!(outcome, TakePending::Unknown);
    // The real one is untouched by the failed lookup.
    let real = store
        .take_pending_authorization(&SecretString::new("state-abc"), at(30))
        .await
        .unwrap();
    assert!(matches!(real, TakePending::Taken(_)), "{real:?}");
}

async fn an_expired_pending_authorization_is_reported_expired_once_then_already_used(
    store: Arc<dyn Store>,
) {
    let (_, pending) = suspended(store.as_ref(), "r1", "state-abc", 600).await;
    let state = SecretString::new("state-abc");
    // Expiry is inclusive: at `expires_at` it is no longer valid.
    match store
        .take_pending_authorization(&state, at(600))
        .await
        .unwrap()
    {
        TakePending::Expired(expired) => assert_eq!(expired, pending),
        other => panic!("expected Expired, got {other:?}"),
    }
    assert_eq!(
        store
            .take_pending_authorization(&state, at(601))
            .await
            .unwrap(),
        TakePending::AlreadyUsed
    );
    assert!(
        store
            .take_expired_pending(at(700))
            .await
            .unwrap()
            .is_empty(),
        "the expiry was handled by the taker; the sweeper must not handle it again"
    );
}

async fn twenty_concurrent_takers_of_one_state_get_exactly_one_taken(store: Arc<dyn Store>) {
    suspended(store.as_ref(), "r1", "contended-state", 600).await;
    let barrier = Arc::new(tokio::sync::Barrier::new(20));
    let takers: Vec<_> = (0..20)
        .map(|_| {
            let store = store.clone();
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                store
                    .take_pending_authorization(&SecretString::new("contended-state"), at(30))
                    .await
            })
        })
        .collect();
    let mut taken = 0;
    let mut already_used = 0;
    for taker in takers {
        match taker.await.unwrap().unwrap() {
            TakePending::Taken(_) => taken += 1,
            TakePending::AlreadyUsed => already_used += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!((taken, already_used), (1, 19));
}

async fn take_expired_pending_returns_each_expired_row_once_and_never_a_taken_one(
    store: Arc<dyn Store>,
) {
    suspended(store.as_ref(), "early", "state-early", 100).await;
    suspended(store.as_ref(), "later", "state-later", 200).await;
    suspended(store.as_ref(), "live", "state-live", 1000).await;
    suspended(store.as_ref(), "used", "state-used", 150).await;
    let used = store
        .take_pending_authorization(&SecretString::new("state-used"), at(50))
        .await
        .unwrap();
    assert!(matches!(used, TakePending::Taken(_)), "{used:?}");

    let swept = store.take_expired_pending(at(200)).await.unwrap();
    let mut swept_runs: Vec<(&str, &str, OffsetDateTime)> = swept
        .iter()
        .map(|row| (row.run_id.as_str(), row.action.as_str(), row.expires_at))
        .collect();
    swept_runs.sort();
    assert_eq!(
        swept_runs,
        [("early", "login", at(100)), ("later", "login", at(200))]
    );
    let early = swept.iter().find(|row| row.run_id == "early").unwrap();
    assert_eq!(
        early.payload,
        pending("state-early", "early", 1, 100).payload
    );

    assert!(
        store
            .take_expired_pending(at(300))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store
            .take_pending_authorization(&SecretString::new("state-early"), at(300))
            .await
            .unwrap(),
        TakePending::AlreadyUsed
    );
    let live = store
        .take_pending_authorization(&SecretString::new("state-live"), at(300))
        .await
        .unwrap();
    assert!(matches!(live, TakePending::Taken(_)), "{live:?}");
    assert!(
        store
            .take_expired_pending(at(5000))
            .await
            .unwrap()
            .is_empty()
    );
}

async fn discarding_a_runs_pending_authorization_consumes_only_that_one(store: Arc<dyn Store>) {
    suspended(store.as_ref(), "cancelled", "state-cancel", 600).await;
    suspended(store.as_ref(), "other", "state-other", 600).await;

    assert!(store.discard_pending_for_run("cancelled").await.unwrap());
    assert!(!store.discard_pending_for_run("cancelled").await.unwrap());
    assert!(!store.discard_pending_for_run("no-such-run").await.unwrap());

    assert_eq!(
        store
            .take_pending_authorization(&SecretString::new("state-cancel"), at(10))
            .await
            .unwrap(),
        TakePending::AlreadyUsed
    );
    let other = store
        .take_pending_authorization(&SecretString::new("state-other"), at(10))
        .await
        .unwrap();
    assert!(matches!(other, TakePending::Taken(_)), "{other:?}");
    assert!(
        store
            .take_expired_pending(at(5000))
            .await
            .unwrap()
            .is_empty(),
        "a discarded authorization never expires later"
    );
}

async fn a_suspend_with_a_reused_state_is_a_conflict_and_leaves_the_run_unchanged(
    store: Arc<dyn Store>,
) {
    suspended(store.as_ref(), "r1", "same-state", 600).await;
    let before = run("r2", "f", "running", 0);
    store.create_run(&before).await.unwrap();
    let mut waiting = before.clone();
    waiting.status = "waiting".into();
    waiting.updated_at = at(5);
    let err = store
        .suspend_run(&waiting, &pending("same-state", "r2", 5, 600))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    assert_eq!(
        store.get_run("r2").await.unwrap(),
        Some(before),
        "rolled back"
    );
    assert!(!store.discard_pending_for_run("r2").await.unwrap());
}

// ---- OAuth servers ----

async fn oauth_servers_upsert_and_return_their_secret_decrypted_until_deleted(
    store: Arc<dyn Store>,
) {
    let entra = OAuthServerRow {
        id: "entra".into(),
        spec_json: r#"{"client_id":"app"}"#.into(),
        client_secret: Some(SecretString::new("s3cr3t")),
        updated_at: at(0),
    };
    let public = OAuthServerRow {
        id: "a-public".into(),
        spec_json: r#"{"client_id":"spa"}"#.into(),
        client_secret: None,
        updated_at: at(1),
    };
    store.put_oauth_server(&entra).await.unwrap();
    store.put_oauth_server(&public).await.unwrap();
    assert_eq!(
        store.get_oauth_server("entra").await.unwrap(),
        Some(entra.clone())
    );
    assert_eq!(
        store.list_oauth_servers().await.unwrap(),
        vec![public.clone(), entra.clone()],
        "ordered by id"
    );

    let rotated = OAuthServerRow {
        spec_json: r#"{"client_id":"app2"}"#.into(),
        client_secret: Some(SecretString::new("rotated")),
        updated_at: at(10),
        ..entra.clone()
    };
    store.put_oauth_server(&rotated).await.unwrap();
    assert_eq!(
        store.get_oauth_server("entra").await.unwrap(),
        Some(rotated.clone())
    );
    let without_secret = OAuthServerRow {
        client_secret: None,
        updated_at: at(20),
        ..rotated
    };
    store.put_oauth_server(&without_secret).await.unwrap();
    assert_eq!(
        store.get_oauth_server("entra").await.unwrap(),
        Some(without_secret)
    );

    assert!(store.delete_oauth_server("entra").await.unwrap());
    assert!(!store.delete_oauth_server("entra").await.unwrap());
    assert_eq!(store.get_oauth_server("entra").await.unwrap(), None);
    assert_eq!(store.list_oauth_servers().await.unwrap(), vec![public]);
}

// ---- API keys ----

fn api_key(name: &str, hash: &str) -> ApiKeyRow {
    ApiKeyRow {
        name: name.into(),
        hash: hash.into(),
        created_at: at(0),
    }
}

async fn api_keys_are_found_by_hash_listed_by_name_and_deleted_by_name(store: Arc<dyn Store>) {
    let ci = api_key("ci", &"c".repeat(64));
    let admin = api_key("admin", &"a".repeat(64));
    store.put_api_key(&ci).await.unwrap();
    store.put_api_key(&admin).await.unwrap();

    assert_eq!(
        store.find_api_key(&"c".repeat(64)).await.unwrap(),
        Some(ci.clone())
    );
    assert_eq!(store.find_api_key(&"0".repeat(64)).await.unwrap(), None);
    assert_eq!(
        store.list_api_keys().await.unwrap(),
        vec![admin.clone(), ci.clone()]
    );

    assert!(store.delete_api_key("ci").await.unwrap());
    assert!(!store.delete_api_key("ci").await.unwrap());
    assert_eq!(store.find_api_key(&"c".repeat(64)).await.unwrap(), None);
    assert_eq!(store.list_api_keys().await.unwrap(), vec![admin]);
}

async fn an_api_key_with_a_taken_name_or_hash_is_a_conflict(store: Arc<dyn Store>) {
    let original = api_key("ci", &"c".repeat(64));
    store.put_api_key(&original).await.unwrap();
    for clash in [
        api_key("ci", &"d".repeat(64)),
        api_key("other", &"c".repeat(64)),
    ] {
        let err = store.put_api_key(&clash).await.unwrap_err();
        assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
        assert!(
            !err.to_string().contains(&"c".repeat(64)),
            "no hash in messages"
        );
    }
    assert_eq!(store.list_api_keys().await.unwrap(), vec![original]);
}

// ---- schedules ----

async fn a_firing_is_claimed_once_and_last_firing_is_the_newest_per_flow(store: Arc<dyn Store>) {
    assert_eq!(store.last_firing("nightly").await.unwrap(), None);
    assert!(
        store
            .claim_firing("nightly", 1000, "run-a", at(0))
            .await
            .unwrap()
    );
    assert!(
        !store
            .claim_firing("nightly", 1000, "run-b", at(1))
            .await
            .unwrap()
    );
    assert!(
        store
            .claim_firing("hourly", 1000, "run-c", at(2))
            .await
            .unwrap()
    );
    assert!(
        store
            .claim_firing("nightly", 3000, "run-d", at(3))
            .await
            .unwrap()
    );
    // A late claim of an earlier firing does not become the "last" one.
    assert!(
        store
            .claim_firing("nightly", 2000, "run-e", at(4))
            .await
            .unwrap()
    );

    assert_eq!(
        store.last_firing("nightly").await.unwrap(),
        Some(FiringRow {
            flow_id: "nightly".into(),
            due: 3000,
            run_id: "run-d".into(),
            claimed_at: at(3),
        })
    );
    assert_eq!(
        store
            .last_firing("hourly")
            .await
            .unwrap()
            .map(|f| (f.due, f.run_id)),
        Some((1000, "run-c".into()))
    );
    let dues: Vec<(i64, String)> = store
        .firings("nightly", 100)
        .await
        .unwrap()
        .into_iter()
        .map(|f| (f.due, f.run_id))
        .collect();
    assert_eq!(
        dues,
        [
            (1000, "run-a".into()),
            (2000, "run-e".into()),
            (3000, "run-d".into())
        ]
    );
    let newest: Vec<i64> = store
        .firings("nightly", 2)
        .await
        .unwrap()
        .iter()
        .map(|f| f.due)
        .collect();
    assert_eq!(
        newest,
        [2000, 3000],
        "the limit keeps the newest, oldest first"
    );
}

async fn twenty_concurrent_claimers_of_one_firing_get_exactly_one_claim(store: Arc<dyn Store>) {
    let barrier = Arc::new(tokio::sync::Barrier::new(20));
    let claimers: Vec<_> = (0..20)
        .map(|index| {
            let store = store.clone();
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                let run_id = format!("run-{index}");
                let won = store
                    .claim_firing("nightly", 86_400, &run_id, at(0))
                    .await?;
                Ok::<_, StoreError>((won, run_id))
            })
        })
        .collect();
    let mut winners = Vec::new();
    for claimer in claimers {
        let (won, run_id) = claimer.await.unwrap().unwrap();
        if won {
            winners.push(run_id);
        }
    }
    assert_eq!(winners.len(), 1, "{winners:?}");
    let last = store.last_firing("nightly").await.unwrap().unwrap();
    assert_eq!((last.due, &last.run_id), (86_400, &winners[0]));
}

// ---------------------------------------------------------------------------------------------
// SQLite only: files, the key check, reopening
// ---------------------------------------------------------------------------------------------

mod sqlite_only {
    use super::*;

    /// Everything SQLite wrote for the database: the main file, the WAL and the shared memory.
    fn database_bytes(dir: &Path) -> Vec<u8> {
        let mut bytes = Vec::new();
        for suffix in ["", "-wal", "-shm"] {
            let path = dir.join(format!("{DB_FILE_NAME}{suffix}"));
            if path.exists() {
                bytes.extend(std::fs::read(path).unwrap());
            }
        }
        bytes
    }

    fn contains(haystack: &[u8], needle: &str) -> bool {
        haystack
            .windows(needle.len())
            .any(|window| window == needle.as_bytes())
    }

    #[tokio::test]
    async fn reopening_with_another_master_key_is_refused_and_the_right_key_still_reads_the_data() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path(), &test_key(1)).await.unwrap();
        let created = run("r1", "f", "running", 0);
        store.create_run(&created).await.unwrap();
        store.close().await;

        let err = SqliteStore::open(dir.path(), &test_key(2))
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::WrongMasterKey), "{err:?}");

        let store = SqliteStore::open(dir.path(), &test_key(1)).await.unwrap();
        assert_eq!(store.get_run("r1").await.unwrap(), Some(created));
        store.close().await;
    }

    #[tokio::test]
    async fn data_survives_close_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path(), &test_key(1)).await.unwrap();
        let flow = store.put_flow("f", "a: 1\n", at(0)).await.unwrap();
        let (waiting, pending) = suspended(&store, "r1", "state-kept", 600).await;
        store
            .record_action_outcome(&waiting, Some(&record("r1", 0)))
            .await
            .unwrap();
        assert!(store.claim_firing("f", 60, "r1", at(0)).await.unwrap());
        store.close().await;
        assert!(
            store.ping().await.is_err(),
            "a closed store answers no more"
        );

        let store = SqliteStore::open(dir.path(), &test_key(1)).await.unwrap();
        assert_eq!(store.get_flow("f").await.unwrap(), Some(flow));
        assert_eq!(store.get_run("r1").await.unwrap(), Some(waiting));
        assert_eq!(
            store.action_records("r1").await.unwrap(),
            vec![record("r1", 0)]
        );
        assert!(!store.claim_firing("f", 60, "r2", at(1)).await.unwrap());
        assert_eq!(
            store
                .take_pending_authorization(&SecretString::new("state-kept"), at(10))
                .await
                .unwrap(),
            TakePending::Taken(pending)
        );
        store.close().await;
    }

    #[tokio::test]
    async fn the_data_directory_is_created_private_and_the_database_uses_a_wal() {
        let parent = tempfile::tempdir().unwrap();
        let data_dir = parent.path().join("nested").join("data");
        let store = SqliteStore::open(&data_dir, &test_key(1)).await.unwrap();
        store
            .create_run(&run("r1", "f", "running", 0))
            .await
            .unwrap();
        assert_eq!(store.path(), data_dir.join(DB_FILE_NAME));
        assert!(data_dir.join(DB_FILE_NAME).is_file());
        assert!(data_dir.join(format!("{DB_FILE_NAME}-wal")).is_file());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&data_dir).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o700);
        }
        store.close().await;
    }

    #[tokio::test]
    async fn a_sealed_state_copied_to_another_run_does_not_decrypt() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path(), &test_key(1)).await.unwrap();
        store
            .create_run(&run("victim", "f", "running", 0))
            .await
            .unwrap();
        store
            .create_run(&run("attacker", "f", "running", 0))
            .await
            .unwrap();

        // Someone with write access to the file moves one run's ciphertext into another row.
        let raw = sqlx::sqlite::SqlitePool::connect_with(
            sqlx::sqlite::SqliteConnectOptions::new().filename(store.path()),
        )
        .await
        .unwrap();
        sqlx::query(
            "UPDATE runs SET state = (SELECT state FROM runs WHERE id = 'victim') \
             WHERE id = 'attacker'",
        )
        .execute(&raw)
        .await
        .unwrap();
        raw.close().await;

        let err = store.get_run("attacker").await.unwrap_err();
        assert!(matches!(err, StoreError::Decrypt(_)), "{err:?}");
        assert!(store.get_run("victim").await.unwrap().is_some());
        store.close().await;
    }

    #[tokio::test]
    async fn no_secret_reaches_the_database_files_in_clear() {
        const RUN_SECRET: &str = "RUN-STATE-SECRET-7f3a9c1e";
        const RAW_STATE: &str = "OAUTH-STATE-RAW-b41d0c77";
        const PAYLOAD_SECRET: &str = "PKCE-VERIFIER-SECRET-e2c85a";
        const CLIENT_SECRET: &str = "CLIENT-SECRET-93ad55f1";
        const VAULT_ACCESS: &str = "VAULT-ACCESS-TOKEN-4be1";
        const VAULT_REFRESH: &str = "VAULT-REFRESH-TOKEN-77ac";

        let dir = tempfile::tempdir().unwrap();
        let key = test_key(9);
        let store = SqliteStore::open(dir.path(), &key).await.unwrap();

        let mut hygiene = run("hygiene-run", "hygiene-flow", "running", 0);
        hygiene.state = SecretString::new(format!(
            r#"{{"vars":{{"access_token":"{RUN_SECRET}"}},"pending_state":"{RAW_STATE}"}}"#
        ));
        store.create_run(&hygiene).await.unwrap();
        hygiene.status = "waiting".into();
        store
            .suspend_run(
                &hygiene,
                &PendingRow {
                    state: SecretString::new(RAW_STATE),
                    run_id: "hygiene-run".into(),
                    action: "login".into(),
                    payload: SecretString::new(format!(
                        r#"{{"code_verifier":"{PAYLOAD_SECRET}","state":"{RAW_STATE}"}}"#
                    )),
                    created_at: at(0),
                    expires_at: at(600),
                },
            )
            .await
            .unwrap();
        store
            .put_oauth_server(&OAuthServerRow {
                id: "hygiene-server".into(),
                spec_json: r#"{"client_id":"app"}"#.into(),
                client_secret: Some(SecretString::new(CLIENT_SECRET)),
                updated_at: at(0),
            })
            .await
            .unwrap();

        store
            .put_vault_entry(&vault_entry(
                "hygiene-vault",
                Some(VAULT_ACCESS),
                Some(VAULT_REFRESH),
            ))
            .await
            .unwrap();

        // Read while the store is open and without a checkpoint, so the WAL is what is checked.
        let bytes = database_bytes(dir.path());
        assert!(
            contains(&bytes, "hygiene-run")
                && contains(&bytes, "hygiene-server")
                && contains(&bytes, "hygiene-vault"),
            "the rows must be in the files read, or this test proves nothing"
        );
        let key_text = base64::engine::general_purpose::STANDARD.encode([9u8; 32]);
        for secret in [
            RUN_SECRET,
            RAW_STATE,
            PAYLOAD_SECRET,
            CLIENT_SECRET,
            VAULT_ACCESS,
            VAULT_REFRESH,
            &key_text,
        ] {
            assert!(
                !contains(&bytes, secret),
                "{secret} found in the database files"
            );
        }

        // And the store still gives all of it back.
        let state = SecretString::new(RAW_STATE);
        let TakePending::Taken(taken) = store
            .take_pending_authorization(&state, at(1))
            .await
            .unwrap()
        else {
            panic!("expected Taken");
        };
        assert!(taken.payload.expose().contains(PAYLOAD_SECRET));
        let server = store
            .get_oauth_server("hygiene-server")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(server.client_secret, Some(SecretString::new(CLIENT_SECRET)));
        let stored = store.get_run("hygiene-run").await.unwrap().unwrap();
        assert!(stored.state.expose().contains(RUN_SECRET));
        store.close().await;
    }
}

fn vault_entry(name: &str, access: Option<&str>, refresh: Option<&str>) -> VaultEntryRow {
    VaultEntryRow {
        name: name.into(),
        server_id: "entra".into(),
        access_token: access.map(SecretString::new),
        refresh_token: refresh.map(SecretString::new),
        expires_at: Some(at(3600)),
        granted_scopes: Some("User.Read".into()),
        state: "ok".into(),
        last_refresh_at: None,
        last_refresh_outcome: None,
        version: 0,
        updated_at: at(0),
    }
}

async fn vault_entries_roundtrip_with_versions_and_compare_and_swap(store: Arc<dyn Store>) {
    assert_eq!(store.get_vault_entry("alice").await.unwrap(), None);
    let stored = store
        .put_vault_entry(&vault_entry("alice", Some("at-1"), Some("rt-1")))
        .await
        .unwrap();
    assert_eq!(stored.version, 1);
    assert_eq!(
        stored.refresh_token.as_ref().map(SecretString::expose),
        Some("rt-1")
    );
    let read = store.get_vault_entry("alice").await.unwrap().unwrap();
    assert_eq!(read, stored);

    let mut rotated = read.clone();
    rotated.refresh_token = Some(SecretString::new("rt-2"));
    rotated.last_refresh_at = Some(at(10));
    rotated.last_refresh_outcome = Some("ok".into());
    assert!(store.update_vault_entry(&rotated, 1).await.unwrap());
    let after = store.get_vault_entry("alice").await.unwrap().unwrap();
    assert_eq!(after.version, 2);
    assert_eq!(
        after.refresh_token.as_ref().map(SecretString::expose),
        Some("rt-2")
    );
    assert_eq!(after.last_refresh_at, Some(at(10)));

    let mut stale = read.clone();
    stale.refresh_token = Some(SecretString::new("rt-stale"));
    assert!(
        !store.update_vault_entry(&stale, 1).await.unwrap(),
        "a stale version loses"
    );
    assert_eq!(
        store
            .get_vault_entry("alice")
            .await
            .unwrap()
            .unwrap()
            .refresh_token
            .as_ref()
            .map(SecretString::expose),
        Some("rt-2"),
        "the rotated token survived"
    );

    let replaced = store
        .put_vault_entry(&vault_entry("alice", Some("at-9"), None))
        .await
        .unwrap();
    assert_eq!(
        replaced.version, 3,
        "a fresh grant replaces the entry and bumps the version"
    );
    assert_eq!(replaced.refresh_token, None);
    store
        .put_vault_entry(&vault_entry("bob", None, Some("rt-b")))
        .await
        .unwrap();
    let names: Vec<String> = store
        .list_vault_entries()
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(names, ["alice", "bob"]);
    assert!(store.delete_vault_entry("alice").await.unwrap());
    assert!(!store.delete_vault_entry("alice").await.unwrap());
    assert_eq!(store.get_vault_entry("alice").await.unwrap(), None);
}

async fn twenty_concurrent_vault_swaps_of_one_version_let_exactly_one_win(store: Arc<dyn Store>) {
    let stored = store
        .put_vault_entry(&vault_entry("shared", Some("at"), Some("rt")))
        .await
        .unwrap();
    let barrier = Arc::new(tokio::sync::Barrier::new(20));
    let mut tasks = Vec::new();
    for i in 0..20 {
        let (store, barrier, mut entry) = (store.clone(), barrier.clone(), stored.clone());
        entry.refresh_token = Some(SecretString::new(format!("rt-{i}")));
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            store.update_vault_entry(&entry, 1).await.unwrap()
        }));
    }
    let mut wins = 0;
    for task in tasks {
        if task.await.unwrap() {
            wins += 1;
        }
    }
    assert_eq!(wins, 1);
    assert_eq!(
        store
            .get_vault_entry("shared")
            .await
            .unwrap()
            .unwrap()
            .version,
        2
    );
}

async fn twenty_concurrent_fresh_grants_of_one_vault_entry_each_get_their_own_version(
    store: Arc<dyn Store>,
) {
    let barrier = Arc::new(tokio::sync::Barrier::new(20));
    let grants: Vec<_> = (0..20)
        .map(|index| {
            let (store, barrier) = (store.clone(), barrier.clone());
            let entry = vault_entry("shared", Some(&format!("at-{index}")), None);
            tokio::spawn(async move {
                barrier.wait().await;
                store.put_vault_entry(&entry).await
            })
        })
        .collect();
    let mut versions = Vec::new();
    for grant in grants {
        versions.push(grant.await.unwrap().unwrap().version);
    }
    versions.sort();
    assert_eq!(versions, (1..=20).collect::<Vec<i64>>(), "no lost update");
    let stored = store.get_vault_entry("shared").await.unwrap().unwrap();
    assert_eq!(stored.version, 20);
}

async fn a_vault_refresh_lease_has_one_holder_until_it_is_released_or_expires(
    store: Arc<dyn Store>,
) {
    store
        .put_vault_entry(&vault_entry("leased", Some("at"), Some("rt")))
        .await
        .unwrap();
    assert!(
        store
            .claim_vault_refresh("leased", "a", at(30), at(0))
            .await
            .unwrap()
    );
    assert!(
        !store
            .claim_vault_refresh("leased", "b", at(30), at(1))
            .await
            .unwrap(),
        "held by a"
    );
    assert!(
        store
            .claim_vault_refresh("leased", "a", at(40), at(2))
            .await
            .unwrap(),
        "the holder renews"
    );
    store.release_vault_refresh("leased", "b").await.unwrap();
    assert!(
        !store
            .claim_vault_refresh("leased", "b", at(30), at(3))
            .await
            .unwrap(),
        "only the holder releases"
    );
    store.release_vault_refresh("leased", "a").await.unwrap();
    assert!(
        store
            .claim_vault_refresh("leased", "b", at(30), at(4))
            .await
            .unwrap()
    );
    assert!(
        store
            .claim_vault_refresh("leased", "c", at(90), at(31))
            .await
            .unwrap(),
        "an expired lease is taken over"
    );
    assert!(
        !store
            .claim_vault_refresh("missing", "a", at(30), at(0))
            .await
            .unwrap()
    );

    let barrier = Arc::new(tokio::sync::Barrier::new(20));
    store
        .put_vault_entry(&vault_entry("race", Some("at"), Some("rt")))
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for i in 0..20 {
        let (store, barrier) = (store.clone(), barrier.clone());
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            store
                .claim_vault_refresh("race", &format!("owner-{i}"), at(30), at(0))
                .await
                .unwrap()
        }));
    }
    let mut holders = 0;
    for task in tasks {
        if task.await.unwrap() {
            holders += 1;
        }
    }
    assert_eq!(holders, 1);
}

async fn running_runs_without_a_live_lease_are_found_after_it_expires(store: Arc<dyn Store>) {
    store
        .create_run(&run("leased-run", "f", "running", 0))
        .await
        .unwrap();
    store
        .create_run(&run("done-run", "f", "completed", 0))
        .await
        .unwrap();
    assert!(
        store
            .runs_with_expired_lease(at(10), 30_000)
            .await
            .unwrap()
            .is_empty(),
        "a fresh run has a grace period"
    );
    assert_eq!(
        store.runs_with_expired_lease(at(31), 30_000).await.unwrap(),
        ["leased-run"]
    );
    store
        .renew_run_lease("leased-run", "instance-a", at(100))
        .await
        .unwrap();
    assert!(
        store
            .runs_with_expired_lease(at(50), 30_000)
            .await
            .unwrap()
            .is_empty(),
        "its instance renews the lease"
    );
    assert_eq!(
        store
            .runs_with_expired_lease(at(101), 30_000)
            .await
            .unwrap(),
        ["leased-run"]
    );
    // Any write of the run's state proves its instance alive for the grace period too.
    store
        .record_action_outcome(&run("leased-run", "f", "running", 120), None)
        .await
        .unwrap();
    assert!(
        store
            .runs_with_expired_lease(at(149), 30_000)
            .await
            .unwrap()
            .is_empty(),
        "a write after the lease renews it"
    );
    assert_eq!(
        store
            .runs_with_expired_lease(at(151), 30_000)
            .await
            .unwrap(),
        ["leased-run"]
    );
    store
        .renew_run_lease("done-run", "instance-a", at(100))
        .await
        .unwrap();
    assert!(
        !store
            .runs_with_expired_lease(at(1000), 30_000)
            .await
            .unwrap()
            .contains(&"done-run".to_owned())
    );
}

/// Writes of many runs at once (SQLite commits them in shared transactions): one conflicting or
/// missing run gets its own error and changes nothing; every other write lands.
async fn concurrent_run_writes_each_get_their_own_answer_when_one_of_them_conflicts(
    store: Arc<dyn Store>,
) {
    for i in 0..40 {
        store
            .create_run(&run(&format!("batch-{i}"), "f", "running", 0))
            .await
            .unwrap();
        store
            .record_action_outcome(
                &run(&format!("batch-{i}"), "f", "running", 1),
                Some(&record(&format!("batch-{i}"), 0)),
            )
            .await
            .unwrap();
    }
    let barrier = Arc::new(tokio::sync::Barrier::new(42));
    let mut tasks = Vec::new();
    for i in 0..42 {
        let (store, barrier) = (store.clone(), barrier.clone());
        tasks.push(tokio::spawn(async move {
            // 0..40: each run's next record; 40: a record batch-7 has already; 41: no such run.
            let (target, seq) = match i {
                40 => ("batch-7".to_owned(), 0),
                41 => ("batch-missing".to_owned(), 1),
                _ => (format!("batch-{i}"), 1),
            };
            let mut row = run(&target, "f", "running", 2);
            row.state = SecretString::new(format!(r#"{{"write":{i}}}"#));
            barrier.wait().await;
            (
                i,
                store
                    .record_action_outcome(&row, Some(&record(&target, seq)))
                    .await,
            )
        }));
    }
    for task in tasks {
        let (i, result) = task.await.unwrap();
        match i {
            40 => assert!(matches!(result, Err(StoreError::Conflict(_))), "{result:?}"),
            41 => assert!(matches!(result, Err(StoreError::NotFound(_))), "{result:?}"),
            _ => result.unwrap(),
        }
    }
    for i in 0..40 {
        let id = format!("batch-{i}");
        let records = store.action_records(&id).await.unwrap();
        assert_eq!(records.len(), 2, "{id} has both records");
        assert_eq!(
            store.get_run(&id).await.unwrap().unwrap().state.expose(),
            format!(r#"{{"write":{i}}}"#),
            "the conflicting write did not change {id}"
        );
    }
    assert!(store.get_run("batch-missing").await.unwrap().is_none());
    assert!(
        store
            .action_records("batch-missing")
            .await
            .unwrap()
            .is_empty()
    );
}

async fn purging_deletes_consumed_logins_and_old_firings_but_keeps_each_flows_newest(
    store: Arc<dyn Store>,
) {
    suspended(&*store, "purge-used", "state-used", 1000).await;
    suspended(&*store, "purge-open", "state-open", 1000).await;
    let used = SecretString::new("state-used");
    assert!(matches!(
        store
            .take_pending_authorization(&used, at(5))
            .await
            .unwrap(),
        TakePending::Taken(_)
    ));
    for (flow, due, claimed) in [("a", 10, 10), ("a", 20, 20), ("a", 30, 30), ("b", 10, 10)] {
        assert!(
            store
                .claim_firing(flow, due, &format!("run-{flow}-{due}"), at(claimed))
                .await
                .unwrap()
        );
    }
    assert_eq!(
        store.purge_consumed(at(5)).await.unwrap(),
        0,
        "nothing is old enough"
    );
    assert!(matches!(
        store
            .take_pending_authorization(&used, at(6))
            .await
            .unwrap(),
        TakePending::AlreadyUsed
    ));

    assert_eq!(store.purge_consumed(at(100)).await.unwrap(), 3);
    assert!(matches!(
        store
            .take_pending_authorization(&used, at(101))
            .await
            .unwrap(),
        TakePending::Unknown
    ));
    assert!(
        store
            .find_pending_authorization(&SecretString::new("state-open"))
            .await
            .unwrap()
            .is_some(),
        "a login still waiting is kept"
    );
    let a: Vec<i64> = store
        .firings("a", 10)
        .await
        .unwrap()
        .iter()
        .map(|f| f.due)
        .collect();
    assert_eq!(a, [30], "each flow keeps its newest firing");
    assert_eq!(store.firings("b", 10).await.unwrap().len(), 1);
    assert_eq!(store.last_firing("a").await.unwrap().unwrap().due, 30);
}
