//! `http_connector` with `auth` (docs/connectors.md, "Authentication"): tokens from the shared
//! client-credentials cache and from the vault against the real test IdP and its protected API,
//! one new token and one more request after a 401, and every credential kind sent as the API
//! expects and never shown.

use std::sync::Arc;

use serde_json::{Value, json};
use tokenflow_connectors::oauth::authorize::UserLoginInput;
use tokenflow_connectors::oauth::{CallbackParams, ConnectorStatus};
use tokenflow_core::Clock;
use tokenflow_core::flow::Flow;
use tokenflow_core::{ManualClock, SecretString, SystemClock};
use tokenflow_engine::http::RETRIED;
use tokenflow_engine::vault::StoreInput;
use tokenflow_engine::{Engine, Run, RunStatus};
use tokenflow_store::sqlite::SqliteStore;
use tokenflow_store::{MasterKey, Store};
use tokenflow_testkit::{Decision, Idp, TestClient, sign_in, unique};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::{REDIRECT_URI, engine, engine_with_clock, flow, inputs, server};

/// A flow of one `http_connector` call with `auth`, writing `code` and `attempts`.
fn call_flow(url: &str, auth: &str) -> Flow {
    flow(&format!(
        "id: call\nvariables:\n  code: {{}}\n  attempts: {{}}\nactions:\n  call:\n    type: http_connector\n    input: {{ url: \"{url}\", auth: {auth} }}\n    output: {{ http_status_code: code, attempts: attempts }}\nsteps:\n  - {{ from: start, to: call }}\n  - {{ from: call, to: stop }}\n"
    ))
}

async fn run(engine: &Engine, flow: &Flow) -> Run {
    let mut run = engine.start(flow, Default::default()).unwrap();
    engine.run_until_blocked(flow, &mut run).await;
    assert_eq!(run.status, RunStatus::Completed, "{:?}", run.reason);
    run
}

fn var(run: &Run, name: &str) -> Value {
    run.variables.get(name).map_or(Value::Null, |v| v.expose())
}

fn assert_hidden(shown: &str, secrets: &[String]) {
    assert!(!secrets.is_empty());
    for secret in secrets {
        assert!(
            !shown.contains(secret.as_str()),
            "a secret is shown: {shown}"
        );
    }
}

async fn client_credentials(idp: &Idp) -> (TestClient, Engine) {
    let client = idp
        .client_credentials_client(&unique("auth-cc"), "auth-cc-secret")
        .await;
    let engine = engine(vec![server(
        "svc",
        json!({ "client_id": client.id, "client_secret": "auth-cc-secret", "token_url": idp.token_url(), "scope": "api:read" }),
    )]);
    (client, engine)
}

#[tokio::test]
async fn a_refused_client_credentials_token_is_replaced_once_and_the_request_sent_again() {
    let idp = Idp::start().await;
    let (client, engine) = client_credentials(&idp).await;
    let flow = call_flow(&idp.url("/api/whoami"), "{ oauth_server: svc }");

    let first = run(&engine, &flow).await;
    assert_eq!(var(&first, "code"), json!(200));
    assert_eq!(var(&first, "attempts"), json!(1));
    assert_eq!(idp.token_requests(&client.id).await.len(), 1);

    // The IdP forgets the token that tokenflow still has cached: the API now refuses it.
    idp.revoke_grants(&client.id).await;
    let second = run(&engine, &flow).await;
    assert_eq!(var(&second, "code"), json!(200), "{:?}", second.records);
    assert_eq!(var(&second, "attempts"), json!(2));
    assert_eq!(
        idp.token_requests(&client.id).await.len(),
        2,
        "one new token for the refused one"
    );
    let record = &second.records[0];
    assert_eq!(record.status_code, Some(0));
    assert_eq!(
        record.warnings,
        [format!(
            "401 from the API: {RETRIED} (first attempt: HTTP 401, second attempt: HTTP 200)"
        )]
    );
    assert_eq!(
        record.response.get("attempt_http_status_codes"),
        Some(&json!([401, 200]))
    );
    assert_eq!(record.inputs["auth"], json!({ "oauth_server": "svc" }));

    let third = run(&engine, &flow).await;
    assert_eq!(var(&third, "attempts"), json!(1), "the new token is cached");
    assert_eq!(idp.token_requests(&client.id).await.len(), 2);

    let tokens = idp.issued_tokens(&client.id).await;
    assert_eq!(tokens.len(), 2);
    for run in [&first, &second, &third] {
        assert_hidden(&run.to_json(&flow).to_string(), &tokens);
    }
}

#[tokio::test]
async fn a_second_401_is_handed_to_the_flow_as_it_is() {
    let idp = Idp::start().await;
    let (client, engine) = client_credentials(&idp).await;
    let api = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(401).set_body_string("no"))
        .mount(&api)
        .await;
    let flow = call_flow(&format!("{}/v1/things", api.uri()), "{ oauth_server: svc }");
    let done = run(&engine, &flow).await;
    assert_eq!(
        done.records[0].status_code,
        Some(0),
        "a response is status 0"
    );
    assert_eq!(var(&done, "code"), json!(401));
    assert_eq!(var(&done, "attempts"), json!(2));
    assert_eq!(
        done.records[0].response.get("attempt_http_status_codes"),
        Some(&json!([401, 401]))
    );
    let requests = api.received_requests().await.unwrap();
    assert_eq!(requests.len(), 2, "sent twice, not more");
    let bearer = |i: usize| {
        requests[i]
            .headers
            .get("authorization")
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned()
    };
    assert_ne!(
        bearer(0),
        bearer(1),
        "the second attempt carried a new token"
    );
    assert_eq!(idp.token_requests(&client.id).await.len(), 2);
    assert_hidden(
        &done.to_json(&flow).to_string(),
        &idp.issued_tokens(&client.id).await,
    );
}

/// A vault whose entry `alice` holds a fresh grant of the IdP's web client (not yet expired).
async fn vault_world(
    idp: &Idp,
) -> (
    TestClient,
    Engine,
    Arc<dyn Store>,
    tempfile::TempDir,
    SecretString,
) {
    vault_world_with(idp, json!({})).await
}

/// [`vault_world`] with more fields of the OAuth server `idp` (e.g. `reauth_on_status`).
pub(crate) async fn vault_world_with(
    idp: &Idp,
    more: Value,
) -> (
    TestClient,
    Engine,
    Arc<dyn Store>,
    tempfile::TempDir,
    SecretString,
) {
    let client = idp
        .web_client(
            &unique("auth-web"),
            "auth-web-secret",
            REDIRECT_URI,
            json!({ "rotate_refresh_token": true }),
        )
        .await;
    let dir = tempfile::tempdir().unwrap();
    let key = MasterKey::from_base64("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=").unwrap();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.path(), &key).await.unwrap());
    let clock = Arc::new(ManualClock::new(SystemClock.now()));
    let mut fields = json!({ "client_id": client.id, "client_secret": "auth-web-secret", "issuer": idp.issuer(), "scope": "openid offline_access" });
    if let (Some(fields), Some(more)) = (fields.as_object_mut(), more.as_object()) {
        fields.extend(more.clone());
    }
    let engine = engine_with_clock(vec![server("idp", fields)], clock).with_vault(store.clone());
    let config = engine.servers().get("idp").unwrap();
    let request = engine
        .oauth()
        .start_user_login(
            "idp",
            Some(&config),
            &UserLoginInput::default(),
            engine.redirect(),
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
    let out = engine
        .oauth()
        .finish_user_login(
            Some(&config),
            &request.pending,
            &CallbackParams::from_url(&landed),
        )
        .await;
    assert!(out.status.is_success(), "{out:?}");
    let access = out.access_token.clone().unwrap();
    let stored = engine
        .vault()
        .unwrap()
        .store_tokens(StoreInput {
            name: "alice".into(),
            server_id: Some("idp".into()),
            access_token: out.access_token,
            refresh_token: out.refresh_token,
            expires_in: Some(3600),
            granted_scopes: out.granted_scopes,
        })
        .await;
    assert_eq!(stored.status.code(), 0, "{stored:?}");
    (client, engine, store, dir, access)
}

#[tokio::test]
async fn sixteen_runs_refused_with_one_vault_token_cause_exactly_one_refresh() {
    let idp = Idp::start().await;
    let (client, engine, store, _dir, access) = vault_world(&idp).await;
    let flow = Arc::new(call_flow(&idp.url("/api/whoami"), "{ vault: alice }"));
    let refreshes = || async {
        idp.token_requests(&client.id)
            .await
            .iter()
            .filter(|r| r.grant_type.as_deref() == Some("refresh_token"))
            .count()
    };

    let before = run(&engine, &flow).await;
    assert_eq!(var(&before, "code"), json!(200));
    assert_eq!(var(&before, "attempts"), json!(1));

    // The access token dies at the IdP before it expires; its grant lives on.
    idp.revoke_access_token(&client, access.expose()).await;
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let (engine, flow) = (engine.clone(), flow.clone());
        tasks.push(tokio::spawn(async move { run(&engine, &flow).await }));
    }
    let mut runs = Vec::new();
    for task in tasks {
        runs.push(task.await.unwrap());
    }
    for done in &runs {
        assert_eq!(var(done, "code"), json!(200), "{:?}", done.records);
        assert_eq!(var(done, "attempts"), json!(2));
        assert!(done.records[0].warnings[0].starts_with(&format!("401 from the API: {RETRIED}")));
    }
    assert_eq!(refreshes().await, 1, "sixteen 401s, one refresh");
    let entry = store.get_vault_entry("alice").await.unwrap().unwrap();
    assert_ne!(entry.access_token.as_ref(), Some(&access));

    let mut secrets = idp.issued_tokens(&client.id).await;
    secrets.push("auth-web-secret".to_owned());
    for done in &runs {
        assert_hidden(&done.to_json(&flow).to_string(), &secrets);
    }
}

/// A refresh answered without `refresh_token` (the provider does not rotate) keeps the stored
/// one: the real IdP always sends one back, so a local token endpoint plays that provider.
#[tokio::test]
async fn a_refresh_without_a_refresh_token_keeps_the_stored_one() {
    let provider = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "access_token": "renewed-access-5d2e", "token_type": "Bearer", "expires_in": 3600
        })))
        .mount(&provider)
        .await;
    Mock::given(method("GET"))
        .and(header("authorization", "Bearer renewed-access-5d2e"))
        .respond_with(ResponseTemplate::new(200).set_body_string("ok"))
        .with_priority(1)
        .mount(&provider)
        .await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(401))
        .mount(&provider)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let key = MasterKey::from_base64("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=").unwrap();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.path(), &key).await.unwrap());
    let engine = engine(vec![server(
        "plain",
        json!({ "client_id": "app", "client_secret": "plain-secret", "token_url": format!("{}/token", provider.uri()), "scope": "api" }),
    )])
    .with_vault(store.clone());
    let stored = engine
        .vault()
        .unwrap()
        .store_tokens(StoreInput {
            name: "carol".into(),
            server_id: Some("plain".into()),
            access_token: Some(SecretString::new("refused-access-1b7a")),
            refresh_token: Some(SecretString::new("kept-refresh-9f3c")),
            expires_in: Some(3600),
            granted_scopes: None,
        })
        .await;
    assert_eq!(stored.status.code(), 0);
    let flow = call_flow(&format!("{}/api", provider.uri()), "{ vault: carol }");
    let done = run(&engine, &flow).await;
    assert_eq!(var(&done, "code"), json!(200), "{:?}", done.records);
    assert_eq!(var(&done, "attempts"), json!(2));
    let entry = store.get_vault_entry("carol").await.unwrap().unwrap();
    assert_eq!(
        entry.refresh_token.as_ref().map(SecretString::expose),
        Some("kept-refresh-9f3c")
    );
    assert_eq!(
        entry.access_token.as_ref().map(SecretString::expose),
        Some("renewed-access-5d2e")
    );
    assert_hidden(
        &done.to_json(&flow).to_string(),
        &[
            "refused-access-1b7a",
            "kept-refresh-9f3c",
            "renewed-access-5d2e",
        ]
        .map(str::to_owned),
    );
}

#[tokio::test]
async fn basic_api_keys_and_bearer_are_sent_as_given_and_never_shown() {
    let api = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_string("{}"))
        .mount(&api)
        .await;
    let flow = flow(&format!(
        "id: kinds\nvariables:\n  pw: {{ secret: true }}\n  key: {{ secret: true }}\n  tok: {{ secret: true }}\nactions:\n  basic:\n    type: http_connector\n    input: {{ url: \"{u}/basic\", auth: {{ basic: {{ username: app, password: {{ var: pw }} }} }} }}\n  header:\n    type: http_connector\n    input: {{ url: \"{u}/header\", headers: {{ X-Api-Key: overridden }}, auth: {{ api_key: {{ header: X-Api-Key, value: {{ var: key }} }} }} }}\n  query:\n    type: http_connector\n    input: {{ url: \"{u}/query?a=1\", auth: {{ api_key: {{ query: api-key, value: \"{{key}}\" }} }} }}\n  bearer:\n    type: http_connector\n    input: {{ url: \"{u}/bearer\", auth: {{ bearer: \"{{tok}}\" }} }}\nsteps:\n  - {{ from: start, to: basic }}\n  - {{ from: basic, to: header }}\n  - {{ from: header, to: query }}\n  - {{ from: query, to: bearer }}\n  - {{ from: bearer, to: stop }}\n",
        u = api.uri()
    ));
    let engine = engine(Vec::new());
    let given =
        inputs(json!({ "pw": "basic-pw-8c1f", "key": "api-key-7e4a", "tok": "bearer-tok-2b9d" }));
    let mut run = engine.start(&flow, given).unwrap();
    engine.run_until_blocked(&flow, &mut run).await;
    assert_eq!(run.status, RunStatus::Completed, "{:?}", run.reason);
    assert!(
        run.records.iter().all(|r| r.status_code == Some(0)),
        "{:?}",
        run.records
    );

    let requests = api.received_requests().await.unwrap();
    let got = |at: &str, name: &str| {
        let request = requests.iter().find(|r| r.url.path() == at).unwrap();
        request
            .headers
            .get_all(name)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        got("/basic", "authorization"),
        ["Basic YXBwOmJhc2ljLXB3LThjMWY="]
    );
    assert_eq!(
        got("/header", "x-api-key"),
        ["api-key-7e4a"],
        "replaces the header"
    );
    let query = requests.iter().find(|r| r.url.path() == "/query").unwrap();
    assert_eq!(query.url.query(), Some("a=1&api-key=api-key-7e4a"));
    assert_eq!(got("/bearer", "authorization"), ["Bearer bearer-tok-2b9d"]);
    assert_eq!(
        run.records[1].warnings,
        ["auth replaced the x-api-key header given in headers"]
    );

    let shown = run.to_json(&flow).to_string();
    assert_hidden(
        &shown,
        &[
            "basic-pw-8c1f",
            "api-key-7e4a",
            "bearer-tok-2b9d",
            "YXBwOmJhc2ljLXB3LThjMWY=",
        ]
        .map(str::to_owned),
    );
    let basic = &run.records[0].inputs["auth"]["basic"];
    assert_eq!(
        basic["username"], "app",
        "what is not secret stays readable"
    );
    assert!(
        basic["password"].as_str().unwrap().starts_with("sha256:"),
        "{basic}"
    );
    assert_eq!(
        run.records[1].inputs["auth"]["api_key"]["header"],
        "X-Api-Key"
    );
}

#[tokio::test]
async fn auth_problems_at_run_time_are_minus_four_before_anything_is_sent() {
    let api = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&api)
        .await;
    let flow = flow(&format!(
        "id: bad\nvariables:\n  a: {{ secret: true }}\n  tok: {{ secret: true }}\n  e1: {{}}\n  e2: {{}}\n  e3: {{}}\nactions:\n  both:\n    type: http_connector\n    input: {{ url: \"{u}/x\", bearer_token: {{ var: tok }}, auth: {{ bearer: {{ var: tok }} }} }}\n    output: {{ error: e1 }}\n  ghost:\n    type: http_connector\n    input: {{ url: \"{u}/x\", auth: {{ oauth_server: ghost }} }}\n    output: {{ error: e2 }}\n  shape:\n    type: http_connector\n    input: {{ url: \"{u}/x\", auth: {{ var: a }} }}\n    output: {{ error: e3 }}\nsteps:\n  - {{ from: start, to: both }}\n  - {{ from: both, to: ghost }}\n  - {{ from: ghost, to: shape }}\n  - {{ from: shape, to: stop }}\n",
        u = api.uri()
    ));
    let engine = engine(Vec::new());
    let given = inputs(json!({ "tok": "tok-4411", "a": { "token": "tok-5522" } }));
    let mut run = engine.start(&flow, given).unwrap();
    engine.run_until_blocked(&flow, &mut run).await;
    assert_eq!(run.status, RunStatus::Completed, "{:?}", run.reason);
    let codes: Vec<_> = run.records.iter().map(|r| r.status_code).collect();
    assert_eq!(codes, [Some(-4), Some(-4), Some(-4)]);
    assert_eq!(var(&run, "e1"), json!("invalid_auth"));
    assert_eq!(var(&run, "e2"), json!("no_configuration"));
    assert_eq!(var(&run, "e3"), json!("invalid_auth"));
    assert_eq!(
        run.records[1].error.as_deref(),
        Some("no_configuration: auth.oauth_server: OAuth server `ghost` is not configured")
    );
    assert!(api.received_requests().await.unwrap().is_empty());
    let shown = run.to_json(&flow).to_string();
    assert_hidden(&shown, &["tok-4411", "tok-5522"].map(str::to_owned));
}
