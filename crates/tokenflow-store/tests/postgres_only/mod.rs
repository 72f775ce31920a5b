//! PostgreSQL only: the throwaway database every PostgreSQL test runs on, and the tests that are
//! about PostgreSQL itself — the key check on reconnect, several instances on one database,
//! what the columns really hold, and that the connection URL's password never shows.

use std::future::Future;
use std::sync::Arc;

use sha2::{Digest, Sha256};
use sqlx::{Connection, PgConnection, PgPool};

use super::*;

const DEFAULT_TEST_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// The server the tests create their databases on. Deliberately not a `TOKENFLOW_*` name: the
/// config loader rejects unknown keys with that prefix.
fn admin_url() -> String {
    std::env::var("TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_TEST_POSTGRES_URL.to_owned())
}

async fn connect_admin(url: &str) -> PgConnection {
    match PgConnection::connect(url).await {
        Ok(conn) => conn,
        // The URL is not shown: it may hold a password.
        Err(err) => panic!(
            "the PostgreSQL tests need a server and cannot reach it ({err}). Start one with \
             `scripts/start-test-postgres`, or point TEST_POSTGRES_URL at a server whose role may \
             create databases (default {DEFAULT_TEST_POSTGRES_URL}, TEST_POSTGRES_URL is {}).",
            if std::env::var_os("TEST_POSTGRES_URL").is_some() {
                "set"
            } else {
                "unset"
            }
        ),
    }
}

/// `url` with its database replaced by `database` (user, password, host and parameters kept).
fn with_database(url: &str, database: &str) -> String {
    let (scheme, rest) = url
        .split_once("://")
        .expect("TEST_POSTGRES_URL looks like postgres://user@host:port/database");
    let (location, query) = match rest.split_once('?') {
        Some((location, query)) => (location, Some(query)),
        None => (rest, None),
    };
    let authority = location.split_once('/').map_or(location, |(a, _)| a);
    match query {
        Some(query) => format!("{scheme}://{authority}/{database}?{query}"),
        None => format!("{scheme}://{authority}/{database}"),
    }
}

/// A database of its own for one test, `tf_test_<random hex>`, dropped by
/// [`TestDatabase::drop_database`].
pub(crate) struct TestDatabase {
    admin_url: String,
    name: String,
}

impl TestDatabase {
    pub(crate) async fn create() -> Self {
        let admin_url = admin_url();
        let mut admin = connect_admin(&admin_url).await;
        let mut random = [0u8; 8];
        getrandom::fill(&mut random).unwrap();
        let suffix: String = random.iter().map(|byte| format!("{byte:02x}")).collect();
        let name = format!("tf_test_{suffix}");
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await
            .unwrap_or_else(|err| panic!("cannot create the test database {name}: {err}"));
        let _ = admin.close().await;
        Self { admin_url, name }
    }

    pub(crate) fn url(&self) -> SecretString {
        SecretString::new(with_database(&self.admin_url, &self.name))
    }

    /// Best effort: `WITH (FORCE)` ends connections a failed test left open; a failure to drop
    /// is reported but fails nothing, so it never hides the test's own outcome.
    pub(crate) async fn drop_database(self) {
        let dropped = async {
            let mut admin = PgConnection::connect(&self.admin_url).await?;
            sqlx::query(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .execute(&mut admin)
            .await?;
            admin.close().await
        };
        if let Err(err) = dropped.await {
            eprintln!("could not drop the test database {}: {err}", self.name);
        }
    }

    /// Runs `body`, then drops the database whether or not `body` panicked.
    pub(crate) async fn run(self, body: impl Future<Output = ()> + Send + 'static) {
        let outcome = tokio::spawn(body).await;
        self.drop_database().await;
        resume(outcome);
    }
}

async fn connect(url: &SecretString, key: u8) -> PostgresStore {
    PostgresStore::connect(url, &test_key(key)).await.unwrap()
}

async fn raw_pool(url: &SecretString) -> PgPool {
    PgPool::connect(url.expose()).await.unwrap()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// The error and every cause below it, as one text.
fn error_chain(err: &StoreError) -> String {
    let mut text = format!("{err} {err:?}");
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        text.push_str(&format!(" | {cause} {cause:?}"));
        source = cause.source();
    }
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reconnecting_with_another_master_key_is_refused_and_the_right_key_still_reads_the_data() {
    let database = TestDatabase::create().await;
    let url = database.url();
    database
        .run(async move {
            let store = connect(&url, 1).await;
            let created = run("r1", "f", "running", 0);
            store.create_run(&created).await.unwrap();
            store.close().await;

            let err = PostgresStore::connect(&url, &test_key(2))
                .await
                .unwrap_err();
            assert!(matches!(err, StoreError::WrongMasterKey), "{err:?}");

            let store = connect(&url, 1).await;
            assert_eq!(store.get_run("r1").await.unwrap(), Some(created));
            store.close().await;
        })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn data_survives_close_and_reconnect() {
    let database = TestDatabase::create().await;
    let url = database.url();
    database
        .run(async move {
            let store = connect(&url, 1).await;
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

            let store = connect(&url, 1).await;
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
        })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn instances_starting_at_once_on_a_new_database_migrate_it_once_and_agree_on_the_key() {
    let database = TestDatabase::create().await;
    let url = database.url();
    database
        .run(async move {
            let barrier = Arc::new(tokio::sync::Barrier::new(6));
            let starts: Vec<_> = (0..6)
                .map(|_| {
                    let (url, barrier) = (url.clone(), barrier.clone());
                    tokio::spawn(async move {
                        barrier.wait().await;
                        PostgresStore::connect(&url, &test_key(1)).await
                    })
                })
                .collect();
            let mut stores = Vec::new();
            for start in starts {
                stores.push(start.await.unwrap().unwrap());
            }

            let raw = raw_pool(&url).await;
            let applied: Vec<i64> = sqlx::query_scalar(
                "SELECT version FROM _sqlx_migrations WHERE success ORDER BY version",
            )
            .fetch_all(&raw)
            .await
            .unwrap();
            assert_eq!(applied, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
            let checks: i64 = sqlx::query_scalar("SELECT count(*) FROM meta")
                .fetch_one(&raw)
                .await
                .unwrap();
            assert_eq!(checks, 1, "one key check, whoever wrote it");
            raw.close().await;

            // Every instance sees what another wrote.
            stores[0]
                .create_run(&run("r1", "f", "running", 0))
                .await
                .unwrap();
            for store in &stores {
                assert!(store.get_run("r1").await.unwrap().is_some());
                store.close().await;
            }
        })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_on_one_database_share_every_exactly_once_guarantee() {
    let database = TestDatabase::create().await;
    let url = database.url();
    database
        .run(async move {
            let first: Arc<dyn Store> = Arc::new(connect(&url, 1).await);
            let second: Arc<dyn Store> = Arc::new(connect(&url, 1).await);
            suspended(first.as_ref(), "r1", "shared-state", 600).await;
            let stored = first
                .put_vault_entry(&vault_entry("shared", Some("at"), Some("rt")))
                .await
                .unwrap();

            let barrier = Arc::new(tokio::sync::Barrier::new(20));
            let tasks: Vec<_> = (0..20)
                .map(|index| {
                    let store = if index % 2 == 0 {
                        first.clone()
                    } else {
                        second.clone()
                    };
                    let barrier = barrier.clone();
                    let mut entry = stored.clone();
                    entry.refresh_token = Some(SecretString::new(format!("rt-{index}")));
                    tokio::spawn(async move {
                        barrier.wait().await;
                        let taken = store
                            .take_pending_authorization(&SecretString::new("shared-state"), at(30))
                            .await
                            .unwrap();
                        let claimed = store
                            .claim_firing("nightly", 86_400, &format!("run-{index}"), at(0))
                            .await
                            .unwrap();
                        let swapped = store.update_vault_entry(&entry, 1).await.unwrap();
                        (matches!(taken, TakePending::Taken(_)), claimed, swapped)
                    })
                })
                .collect();
            let (mut taken, mut claimed, mut swapped) = (0, 0, 0);
            for task in tasks {
                let (t, c, s) = task.await.unwrap();
                taken += usize::from(t);
                claimed += usize::from(c);
                swapped += usize::from(s);
            }
            assert_eq!((taken, claimed, swapped), (1, 1, 1));
            let expired = second.take_expired_pending(at(10_000)).await.unwrap();
            assert!(expired.is_empty(), "the taken one never expires later");
        })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flow_stored_by_one_instance_is_told_to_the_others_change_feed() {
    let database = TestDatabase::create().await;
    let url = database.url();
    database
        .run(async move {
            let first: Arc<dyn Store> = Arc::new(connect(&url, 1).await);
            let second: Arc<dyn Store> = Arc::new(connect(&url, 1).await);
            let mut feed = second.flow_changes().expect("PostgreSQL has a change feed");
            let within = std::time::Duration::from_secs(10);
            let told = tokio::time::timeout(within, feed.next()).await.unwrap();
            assert_eq!(told, FlowChange::Listening);
            first.put_flow("billing", "a: 1\n", at(0)).await.unwrap();
            let told = tokio::time::timeout(within, feed.next()).await.unwrap();
            assert_eq!(told, FlowChange::Changed("billing".to_owned()));
            // The same YAML again is no new version, and nothing is told; the next one is.
            first.put_flow("billing", "a: 1\n", at(1)).await.unwrap();
            first.put_flow("other", "b: 2\n", at(2)).await.unwrap();
            let told = tokio::time::timeout(within, feed.next()).await.unwrap();
            assert_eq!(told, FlowChange::Changed("other".to_owned()));
        })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_sealed_state_copied_to_another_run_does_not_decrypt() {
    let database = TestDatabase::create().await;
    let url = database.url();
    database
        .run(async move {
            let store = connect(&url, 1).await;
            store
                .create_run(&run("victim", "f", "running", 0))
                .await
                .unwrap();
            store
                .create_run(&run("attacker", "f", "running", 0))
                .await
                .unwrap();

            // Someone with write access to the database moves one run's ciphertext into another.
            let raw = raw_pool(&url).await;
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
        })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_secret_reaches_any_column_in_clear_and_state_only_as_its_hash() {
    const RUN_SECRET: &str = "RUN-STATE-SECRET-7f3a9c1e";
    const RAW_STATE: &str = "OAUTH-STATE-RAW-b41d0c77";
    const PAYLOAD_SECRET: &str = "PKCE-VERIFIER-SECRET-e2c85a";
    const CLIENT_SECRET: &str = "CLIENT-SECRET-93ad55f1";
    const PRIVATE_KEY_BODY: &str = "PRIVATE-KEY-MATERIAL-5c0e91d2";
    const PRIVATE_KEY: &str =
        "-----BEGIN PRIVATE KEY-----\nPRIVATE-KEY-MATERIAL-5c0e91d2\n-----END PRIVATE KEY-----";
    const VAULT_ACCESS: &str = "VAULT-ACCESS-TOKEN-4be1";
    const VAULT_REFRESH: &str = "VAULT-REFRESH-TOKEN-77ac";

    let database = TestDatabase::create().await;
    let url = database.url();
    database
        .run(async move {
            let store = connect(&url, 9).await;
            let mut hygiene = run("hygiene-run", "hygiene-flow", "running", 0);
            hygiene.state = SecretString::new(format!(
                r#"{{"vars":{{"access_token":"{RUN_SECRET}"}},"pending_state":"{RAW_STATE}"}}"#
            ));
            store.create_run(&hygiene).await.unwrap();
            hygiene.status = RunStatus::Waiting;
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
                    private_key: Some(SecretString::new(PRIVATE_KEY)),
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

            let key_text = base64::engine::general_purpose::STANDARD.encode([9u8; 32]);
            let secrets = [
                RUN_SECRET,
                RAW_STATE,
                PAYLOAD_SECRET,
                CLIENT_SECRET,
                PRIVATE_KEY_BODY,
                VAULT_ACCESS,
                VAULT_REFRESH,
                key_text.as_str(),
            ];
            let raw = raw_pool(&url).await;

            // The secret columns, as the bytes PostgreSQL holds: sealed, none in clear.
            let mut sealed: Vec<Vec<u8>> = Vec::new();
            for query in [
                "SELECT state FROM runs",
                "SELECT payload FROM pending_authorizations",
                "SELECT client_secret FROM oauth_servers",
                "SELECT private_key FROM oauth_servers",
                "SELECT access_token FROM vault_entries",
                "SELECT refresh_token FROM vault_entries",
                "SELECT value FROM meta",
            ] {
                let values: Vec<Vec<u8>> = sqlx::query_scalar(query).fetch_all(&raw).await.unwrap();
                assert_eq!(values.len(), 1, "{query}");
                sealed.extend(values);
            }
            for value in &sealed {
                assert!(value.starts_with(b"v2:"), "every secret column is sealed");
                for secret in secrets {
                    assert!(!contains(value, secret.as_bytes()), "{secret} in a column");
                }
            }

            // The raw state is stored nowhere but as its SHA-256.
            let hash: String = sqlx::query_scalar("SELECT state_hash FROM pending_authorizations")
                .fetch_one(&raw)
                .await
                .unwrap();
            assert_eq!(hash, hex(&Sha256::digest(RAW_STATE.as_bytes())));

            // And every column of every table, as text (BYTEA as hex): no secret, no hex of one.
            let tables: Vec<String> = sqlx::query_scalar(
                "SELECT table_name::text FROM information_schema.tables \
                 WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'",
            )
            .fetch_all(&raw)
            .await
            .unwrap();
            assert!(tables.contains(&"pending_authorizations".to_owned()));
            let mut dump = String::new();
            for table in &tables {
                let rows: Vec<String> =
                    sqlx::query_scalar(&format!("SELECT row_to_json(t)::text FROM \"{table}\" t"))
                        .fetch_all(&raw)
                        .await
                        .unwrap();
                dump.extend(rows.into_iter().map(|row| row + "\n"));
            }
            assert!(
                dump.contains("hygiene-run")
                    && dump.contains("hygiene-server")
                    && dump.contains("hygiene-vault"),
                "the rows must be in the dump, or this test proves nothing"
            );
            for secret in secrets {
                assert!(!dump.contains(secret), "{secret} found in the database");
                assert!(
                    !dump.contains(&hex(secret.as_bytes())),
                    "{secret} found hex-encoded in the database"
                );
            }
            raw.close().await;

            // And the store still gives all of it back.
            let TakePending::Taken(taken) = store
                .take_pending_authorization(&SecretString::new(RAW_STATE), at(1))
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
            assert_eq!(server.private_key, Some(SecretString::new(PRIVATE_KEY)));
            let stored = store.get_run("hygiene-run").await.unwrap().unwrap();
            assert!(stored.state.expose().contains(RUN_SECRET));
            let entry = store
                .get_vault_entry("hygiene-vault")
                .await
                .unwrap()
                .unwrap();
            assert_eq!(entry.refresh_token, Some(SecretString::new(VAULT_REFRESH)));
            store.close().await;
        })
        .await;
}

/// The URL with a password to look for: the one it has, `PGPASSWORD` (which sqlx falls back
/// to), or else a made-up one — without a password in either, the server does not ask for one.
fn url_with_password(url: &str) -> (String, String) {
    let (scheme, rest) = url.split_once("://").unwrap();
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    if let Some((userinfo, _)) = authority.rsplit_once('@')
        && let Some((_, password)) = userinfo.split_once(':')
    {
        return (url.to_owned(), password.to_owned());
    }
    if let Ok(password) = std::env::var("PGPASSWORD") {
        return (url.to_owned(), password);
    }
    const MADE_UP: &str = "pw-NEVER-SHOWN-5c1f";
    let with = match authority.rsplit_once('@') {
        Some((user, host)) => format!("{scheme}://{user}:{MADE_UP}@{host}{tail}"),
        None => format!("{scheme}://postgres:{MADE_UP}@{authority}{tail}"),
    };
    (with, MADE_UP.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_urls_password_shows_in_no_error_and_not_in_the_stores_debug_output() {
    const PASSWORD: &str = "pw-NEVER-SHOWN-9d2e";
    // Nothing listens on port 1; a port that is no number; an unknown TLS mode.
    for url in [
        format!("postgres://tokenflow:{PASSWORD}@127.0.0.1:1/tokenflow"),
        format!("postgres://tokenflow:{PASSWORD}@127.0.0.1:port/tokenflow"),
        format!("postgres://tokenflow:{PASSWORD}@127.0.0.1:5432/tokenflow?sslmode=sometimes"),
    ] {
        let err = PostgresStore::connect(&SecretString::new(url), &test_key(1))
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Database(_)), "{err:?}");
        let shown = error_chain(&err);
        assert!(!shown.contains(PASSWORD), "{shown}");
    }

    let database = TestDatabase::create().await;
    let (url, password) = url_with_password(database.url().expose());
    database
        .run(async move {
            let store = PostgresStore::connect(&SecretString::new(url), &test_key(1))
                .await
                .unwrap();
            let shown = format!("{store:?}");
            assert!(shown.starts_with("PostgresStore"), "{shown}");
            assert!(!shown.contains(&password), "{shown}");
            store.close().await;
        })
        .await;
}
