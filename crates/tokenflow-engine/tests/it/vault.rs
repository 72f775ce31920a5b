//! The token vault against the real IdP with refresh-token rotation on (reusing a rotated refresh
//! token revokes the whole grant there), on a real SQLite store.

use std::sync::Arc;

use serde_json::json;
use tokenflow_connectors::oauth::authorize::UserLoginInput;
use tokenflow_connectors::oauth::{CallbackParams, ConnectorStatus};
use tokenflow_connectors::status::VaultGetStatus;
use tokenflow_core::{Clock, ManualClock, SecretString, SystemClock, VaultEntryState};
use tokenflow_engine::vault::{StoreInput, StoreVault};
use tokenflow_engine::{Engine, Progress, RunStatus};
use tokenflow_store::sqlite::SqliteStore;
use tokenflow_store::{MasterKey, Store};
use tokenflow_testkit::{Decision, FaultProxy, Idp, sign_in, unique};

use crate::support::{REDIRECT_URI, engine_with_clock, flow, server};

pub(crate) struct World {
    pub(crate) idp: Idp,
    /// In front of the IdP's token endpoint, when made by [`world_behind_proxy`].
    pub(crate) proxy: Option<FaultProxy>,
    pub(crate) client: String,
    pub(crate) engine: Engine,
    pub(crate) store: Arc<dyn Store>,
    pub(crate) clock: Arc<ManualClock>,
    _dir: tempfile::TempDir,
}

async fn world() -> World {
    world_with(json!({ "rotate_refresh_token": true }), false).await
}

/// A world whose OAuth server sends token requests through a [`FaultProxy`] (1 s timeout).
pub(crate) async fn world_behind_proxy() -> World {
    world_with(json!({ "rotate_refresh_token": true }), true).await
}

/// A world whose IdP client has these `options` (`POST /_test/clients`), its token requests
/// through a [`FaultProxy`] when `proxied`.
async fn world_with(options: serde_json::Value, proxied: bool) -> World {
    let idp = Idp::start().await;
    let proxy = match proxied {
        true => Some(FaultProxy::start(&idp.issuer()).await),
        false => None,
    };
    let client = unique("vault-web");
    idp.web_client(&client, "vault-secret", REDIRECT_URI, options)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let key = MasterKey::from_base64("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=").unwrap();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.path(), &key).await.unwrap());
    let clock = Arc::new(ManualClock::new(SystemClock.now()));
    let mut fields = json!({ "client_id": client, "client_secret": "vault-secret", "issuer": idp.issuer(), "scope": "openid profile offline_access" });
    if let Some(proxy) = &proxy {
        fields["token_url"] = json!(proxy.url("/token"));
        fields["timeout"] = json!("1s");
    }
    let server = server("idp", fields);
    let engine = engine_with_clock(vec![server], clock.clone()).with_vault(store.clone());
    World {
        idp,
        proxy,
        client,
        engine,
        store,
        clock,
        _dir: dir,
    }
}

impl World {
    pub(crate) fn vault(&self) -> &StoreVault {
        self.engine.vault().unwrap()
    }

    /// Signs alice in and stores the grant under `name`, already expired.
    pub(crate) async fn grant(&self, name: &str) {
        let server = self.engine.servers().get("idp").unwrap();
        let request = self
            .engine
            .oauth()
            .start_user_login(
                "idp",
                Some(&server),
                &UserLoginInput::default(),
                self.engine.redirect(),
            )
            .await
            .unwrap();
        let landed = sign_in(
            request.url.as_str(),
            REDIRECT_URI,
            "alice",
            "alice-password",
            Decision::Allow,
        )
        .await;
        let out = self
            .engine
            .oauth()
            .finish_user_login(
                Some(&server),
                &request.pending,
                &CallbackParams::from_url(&landed),
            )
            .await;
        assert!(out.status.is_success(), "{out:?}");
        let stored = self
            .vault()
            .store_tokens(StoreInput {
                name: name.into(),
                server_id: Some("idp".into()),
                access_token: out.access_token,
                refresh_token: out.refresh_token,
                expires_in: Some(0),
                granted_scopes: out.granted_scopes,
            })
            .await;
        assert_eq!(stored.status.code(), 0, "{stored:?}");
    }

    pub(crate) async fn refreshes(&self) -> usize {
        self.idp
            .token_requests(&self.client)
            .await
            .iter()
            .filter(|r| r.grant_type.as_deref() == Some("refresh_token"))
            .count()
    }

    pub(crate) async fn token_works(&self, token: &SecretString) -> bool {
        self.idp.userinfo(token.expose()).await.0 == 200
    }
}

pub(crate) async fn concurrent_gets(w: &World, name: &str, callers: usize) -> Vec<SecretString> {
    let vault = w.engine.clone();
    let mut tasks = Vec::new();
    for _ in 0..callers {
        let (engine, name) = (vault.clone(), name.to_owned());
        tasks.push(tokio::spawn(async move {
            engine.vault().unwrap().get_token(&name).await
        }));
    }
    let mut tokens = Vec::new();
    for task in tasks {
        let out = task.await.unwrap();
        assert_eq!(out.status, VaultGetStatus::Successful, "{out:?}");
        tokens.push(out.access_token.unwrap());
    }
    tokens
}

#[tokio::test]
async fn two_hundred_concurrent_callers_on_an_expired_entry_cause_exactly_one_refresh() {
    let w = world().await;
    w.grant("alice").await;
    let tokens = concurrent_gets(&w, "alice", 200).await;
    assert_eq!(
        w.refreshes().await,
        1,
        "exactly one refresh reached the IdP"
    );
    assert!(
        tokens.iter().all(|t| *t == tokens[0]),
        "all 200 got the same token"
    );
    assert!(w.token_works(&tokens[0]).await);
    let entry = w.store.get_vault_entry("alice").await.unwrap().unwrap();
    assert_eq!(entry.last_refresh_outcome.as_deref(), Some("ok"));
    assert_eq!(entry.state, VaultEntryState::Ok);
}

#[tokio::test]
async fn a_sixty_second_token_is_handed_out_for_half_its_life_not_refreshed_on_every_call() {
    // The default skew (60 s) is as long as the token lives: without the half-life cap every
    // call would refresh.
    let w = world_with(
        json!({ "rotate_refresh_token": true, "access_token_ttl": 60 }),
        false,
    )
    .await;
    w.grant("short").await;
    let first = concurrent_gets(&w, "short", 1).await;
    assert_eq!(
        w.refreshes().await,
        1,
        "the expired grant is refreshed once"
    );
    w.clock.advance(time::Duration::seconds(29));
    let same = concurrent_gets(&w, "short", 20).await;
    assert!(same.iter().all(|t| *t == first[0]), "served from the vault");
    assert_eq!(w.refreshes().await, 1, "no refresh within the first half");
    w.clock.advance(time::Duration::seconds(2));
    let next = concurrent_gets(&w, "short", 20).await;
    assert!(next.iter().all(|t| *t == next[0] && *t != first[0]));
    assert_eq!(w.refreshes().await, 2, "one refresh past half its life");
    assert!(w.token_works(&next[0]).await);
}

#[tokio::test]
async fn a_thousand_calls_over_ten_expiry_periods_never_lose_a_rotated_refresh_token() {
    let w = world().await;
    w.grant("alice").await;
    let mut previous: Option<SecretString> = None;
    for period in 0..10 {
        let tokens = concurrent_gets(&w, "alice", 100).await;
        assert!(
            tokens.iter().all(|t| *t == tokens[0]),
            "period {period}: one token"
        );
        assert_ne!(
            Some(&tokens[0]),
            previous.as_ref(),
            "period {period}: a fresh token"
        );
        assert!(
            w.token_works(&tokens[0]).await,
            "period {period}: the token works"
        );
        previous = Some(tokens[0].clone());
        // The IdP issues 1-hour access tokens; move past expiry minus skew.
        w.clock.advance(time::Duration::seconds(3600));
    }
    assert_eq!(
        w.refreshes().await,
        10,
        "exactly one refresh per expiry period"
    );
    let errors: Vec<_> = w
        .idp
        .token_requests(&w.client)
        .await
        .into_iter()
        .filter(|r| r.error.is_some())
        .collect();
    assert!(errors.is_empty(), "no invalid_grant ever: {errors:?}");
}

#[tokio::test]
async fn a_revoked_grant_is_minus_four_and_the_example_flow_signs_in_again() {
    let w = world().await;
    w.grant("alice").await;
    assert!(w.idp.revoke_grants(&w.client).await >= 1);
    let out = w.vault().get_token("alice").await;
    assert_eq!(out.status, VaultGetStatus::GrantGone);
    assert_eq!(out.status.code(), -4);
    assert_eq!(
        w.store
            .get_vault_entry("alice")
            .await
            .unwrap()
            .unwrap()
            .state,
        VaultEntryState::NeedsLogin
    );
    assert_eq!(
        w.vault().get_token("alice").await.status.code(),
        -4,
        "stays gone without a login"
    );

    // The example flow itself, pointed at this test's IdP and vault entry.
    let example = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/flows/vault_refresh_or_login.yaml"
    ))
    .unwrap();
    let flow = flow(
        &example
            .replace("demo-web", "idp")
            .replace("demo/alice", "alice"),
    );
    let api = serde_json::Map::from_iter([("api_url".to_owned(), json!(w.idp.url("/api/whoami")))]);
    let mut run = w.engine.start(&flow, api).unwrap();
    assert_eq!(
        w.engine.run_until_blocked(&flow, &mut run).await,
        Progress::Suspended
    );
    assert_eq!(run.records[0].status_code, Some(-4));
    let url = run.waiting.as_ref().unwrap().authorization_url.clone();
    let landed = sign_in(
        &url,
        REDIRECT_URI,
        "alice",
        "alice-password",
        Decision::Allow,
    )
    .await;
    w.engine
        .resume(&flow, &mut run, &CallbackParams::from_url(&landed))
        .await;
    w.engine.run_until_blocked(&flow, &mut run).await;
    assert_eq!(run.status, RunStatus::Completed, "{:?}", run.reason);
    let trail: Vec<(&str, Option<i32>)> = run
        .records
        .iter()
        .map(|r| (r.action.as_str(), r.status_code))
        .collect();
    assert_eq!(
        trail,
        [
            ("get_token", Some(-4)),
            ("login", Some(0)),
            ("keep", Some(0)),
            ("get_token", Some(0)),
            ("call_api", Some(0))
        ],
        "-4 routed to the sign-in, the fresh grant stored, then used: {:?}",
        run.records.last().unwrap().error
    );
    assert_eq!(
        run.variables.get("http_status").unwrap().expose(),
        json!(200)
    );
    let entry = w.store.get_vault_entry("alice").await.unwrap().unwrap();
    assert_eq!(
        entry.state,
        VaultEntryState::Ok,
        "a fresh grant makes the entry usable again"
    );
    let out = w.vault().get_token("alice").await;
    assert_eq!(out.status, VaultGetStatus::Successful, "{out:?}");
    assert!(w.token_works(out.access_token.as_ref().unwrap()).await);
    let shown = run.to_json(&flow).to_string();
    assert!(!shown.contains(out.access_token.unwrap().expose()));
}

/// A provider that answers a used or revoked refresh token with 400 and an empty body (no
/// `error` member, against RFC 6749 §5.2): a real IdP in the suite cannot be made to do that.
#[tokio::test]
async fn a_refresh_refused_with_an_empty_400_marks_the_entry_needs_login_and_returns_minus_four() {
    use wiremock::matchers::{method, path};
    let mock = wiremock::MockServer::start().await;
    wiremock::Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(wiremock::ResponseTemplate::new(400))
        .mount(&mock)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let key = MasterKey::from_base64("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=").unwrap();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.path(), &key).await.unwrap());
    let clock = Arc::new(ManualClock::new(SystemClock.now()));
    let server = server(
        "bent",
        json!({ "client_id": "app", "client_secret": "bent-secret", "token_url": format!("{}/token", mock.uri()), "scope": "api:read" }),
    );
    let engine = engine_with_clock(vec![server], clock).with_vault(store.clone());
    let vault = engine.vault().unwrap();
    let stored = vault
        .store_tokens(StoreInput {
            name: "carol".into(),
            server_id: Some("bent".into()),
            access_token: Some(SecretString::new("old-access-token")),
            refresh_token: Some(SecretString::new("used-refresh-token")),
            expires_in: Some(0),
            granted_scopes: None,
        })
        .await;
    assert_eq!(stored.status.code(), 0, "{stored:?}");

    let out = vault.get_token("carol").await;
    assert_eq!(out.status, VaultGetStatus::GrantGone, "{out:?}");
    assert_eq!(out.status.code(), -4);
    assert_eq!(out.error.as_deref(), Some("invalid_grant"));
    assert!(
        out.warnings.iter().any(|w| w.code == "error_missing"
            && w.message
                == "the provider answered 400 without an error code; treated as invalid_grant (RFC 6749 §5.2 requires `error`)"),
        "{:?}",
        out.warnings
    );
    let entry = store.get_vault_entry("carol").await.unwrap().unwrap();
    assert_eq!(entry.state, VaultEntryState::NeedsLogin);
    assert_eq!(entry.last_refresh_outcome.as_deref(), Some("invalid_grant"));
    assert_eq!(vault.get_token("carol").await.status.code(), -4);
    assert_eq!(
        mock.received_requests().await.unwrap().len(),
        1,
        "a gone grant is not refreshed again"
    );
}

#[tokio::test]
async fn missing_entries_and_servers_have_their_own_codes() {
    let w = world().await;
    assert_eq!(w.vault().get_token("nobody").await.status.code(), -3);
    let stored = w
        .vault()
        .store_tokens(StoreInput {
            name: "x".into(),
            server_id: Some("ghost".into()),
            access_token: Some(SecretString::new("a")),
            ..StoreInput::default()
        })
        .await;
    assert_eq!(stored.status.code(), -2);
    let stored = w
        .vault()
        .store_tokens(StoreInput {
            name: "x".into(),
            server_id: Some("idp".into()),
            ..StoreInput::default()
        })
        .await;
    assert_eq!(stored.status.code(), -3, "no token given");
    let _ = SystemClock.now();
}

#[tokio::test]
async fn keep_alive_refreshes_idle_entries_and_records_failures() {
    let idp = Idp::start().await;
    let client = unique("keepalive");
    idp.web_client(
        &client,
        "ka-secret",
        REDIRECT_URI,
        json!({ "rotate_refresh_token": true }),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let key = MasterKey::from_base64("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=").unwrap();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.path(), &key).await.unwrap());
    let clock = Arc::new(ManualClock::new(SystemClock.now()));
    let server = server(
        "idp",
        json!({ "client_id": client, "client_secret": "ka-secret", "issuer": idp.issuer(),
                "scope": "openid offline_access", "vault_keep_alive": "1h" }),
    );
    let engine = engine_with_clock(vec![server], clock.clone()).with_vault(store.clone());
    let w = World {
        idp,
        proxy: None,
        client,
        engine,
        store,
        clock,
        _dir: dir,
    };
    w.grant("alice").await;
    // Stored just now: nothing to keep alive yet (the expired access token is not the point).
    assert_eq!(w.vault().keep_alive_once().await, 0);
    assert_eq!(w.refreshes().await, 0);
    w.clock.advance(time::Duration::minutes(61));
    assert_eq!(w.vault().keep_alive_once().await, 1);
    assert_eq!(w.refreshes().await, 1);
    let entry = w.store.get_vault_entry("alice").await.unwrap().unwrap();
    assert_eq!(entry.last_refresh_outcome.as_deref(), Some("ok"));
    assert_eq!(
        entry.last_refresh_at,
        Some(w.clock.now()).map(|t| t
            .replace_nanosecond(t.nanosecond() / 1_000_000 * 1_000_000)
            .unwrap())
    );
    assert_eq!(w.vault().keep_alive_once().await, 0, "refreshed just now");

    assert!(w.idp.revoke_grants(&w.client).await >= 1);
    w.clock.advance(time::Duration::minutes(61));
    assert_eq!(w.vault().keep_alive_once().await, 0);
    let entry = w.store.get_vault_entry("alice").await.unwrap().unwrap();
    assert_eq!(
        entry.state,
        VaultEntryState::NeedsLogin,
        "the failure is recorded and visible"
    );
    assert_eq!(entry.last_refresh_outcome.as_deref(), Some("invalid_grant"));
}

/// A fresh PostgreSQL database for this test (dropped at the end).
struct PgDatabase {
    name: String,
    server: String,
}

impl PgDatabase {
    fn create() -> PgDatabase {
        let server = std::env::var("TEST_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
        let name = format!("tf_vault_{}", unique("db").replace('-', "_"));
        let ok = std::process::Command::new("psql")
            .args([&server, "-q", "-c", &format!("CREATE DATABASE {name}")])
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            ok,
            "cannot create a database on {server} (see scripts/start-test-postgres)"
        );
        PgDatabase { name, server }
    }

    fn url(&self) -> SecretString {
        let root = self
            .server
            .rsplit_once('/')
            .map_or(self.server.as_str(), |(root, _)| root);
        SecretString::new(format!("{root}/{}", self.name))
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let _ = std::process::Command::new("psql")
            .args([
                &self.server,
                "-q",
                "-c",
                &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
            ])
            .status();
    }
}

#[tokio::test]
async fn three_instances_on_postgres_refresh_once_per_expiry_period_and_never_lose_the_grant() {
    let idp = Idp::start().await;
    let client = unique("vault-pg");
    idp.web_client(
        &client,
        "pg-secret",
        REDIRECT_URI,
        json!({ "rotate_refresh_token": true }),
    )
    .await;
    let db = PgDatabase::create();
    let key = MasterKey::from_base64("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=").unwrap();
    let clock = Arc::new(ManualClock::new(SystemClock.now()));
    let server_config = json!({ "client_id": client, "client_secret": "pg-secret", "issuer": idp.issuer(), "scope": "openid offline_access" });
    // Three "instances": separate pools, separate in-process locks, one database.
    let mut engines = Vec::new();
    for _ in 0..3 {
        let store: Arc<dyn Store> = Arc::new(
            tokenflow_store::postgres::PostgresStore::connect(&db.url(), &key)
                .await
                .unwrap(),
        );
        engines.push(
            engine_with_clock(vec![server("idp", server_config.clone())], clock.clone())
                .with_vault(store),
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let w = World {
        idp,
        proxy: None,
        client,
        engine: engines[0].clone(),
        store: Arc::new(SqliteStore::open(dir.path(), &key).await.unwrap()),
        clock,
        _dir: dir,
    };
    w.grant("alice").await; // stored through instance 0's vault, on PostgreSQL
    for period in 0..4 {
        let mut tasks = Vec::new();
        for i in 0..300 {
            let engine = engines[i % 3].clone();
            tasks.push(tokio::spawn(async move {
                engine.vault().unwrap().get_token("alice").await
            }));
        }
        let mut tokens = Vec::new();
        for task in tasks {
            let out = task.await.unwrap();
            assert_eq!(
                out.status,
                VaultGetStatus::Successful,
                "period {period}: {out:?}"
            );
            tokens.push(out.access_token.unwrap());
        }
        assert!(
            tokens.iter().all(|t| *t == tokens[0]),
            "period {period}: one token across instances"
        );
        assert!(w.token_works(&tokens[0]).await, "period {period}");
        w.clock.advance(time::Duration::seconds(3600));
    }
    assert_eq!(
        w.refreshes().await,
        4,
        "exactly one refresh per expiry period across three instances"
    );
    let errors: Vec<_> = w
        .idp
        .token_requests(&w.client)
        .await
        .into_iter()
        .filter(|r| r.error.is_some())
        .collect();
    assert!(errors.is_empty(), "no invalid_grant: {errors:?}");
}
