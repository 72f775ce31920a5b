//! `tokenflow serve` as a real process: restarts with `kill -9`, schedules across restarts, and
//! secret hygiene of logs, API responses and the raw SQLite files.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use tokenflow_core::Clock;
use tokenflow_store::MasterKey;
use tokenflow_store::prelude::*;
use tokenflow_store::sqlite::SqliteStore;
use tokenflow_testkit::{Decision, Idp, sign_in, unique};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

pub(crate) const API_KEY: &str = "serve-test-api-key-42";
const WEB_SECRET: &str = "serve-web-secret-value";
const CC_SECRET: &str = "serve-cc-secret-value";
/// The credentials `http_connector`'s `auth` sends in the hygiene test, given as run inputs.
const AUTH_PASSWORD: &str = "serve-basic-pw-31d7";
const AUTH_API_KEY: &str = "serve-api-key-64a0";
const AUTH_BEARER: &str = "serve-bearer-0c5e";
/// `base64("app:" AUTH_PASSWORD)`, as the Basic header carries it.
const AUTH_BASIC: &str = "YXBwOnNlcnZlLWJhc2ljLXB3LTMxZDc=";

/// A data directory with a configuration, reused across server processes.
pub(crate) struct Site {
    pub(crate) dir: tempfile::TempDir,
    port: u16,
}

impl Site {
    pub(crate) fn new(oauth_servers: &str, flows: &[(&str, String)]) -> Site {
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        std::fs::create_dir_all(dir.path().join("flows")).unwrap();
        for (name, yaml) in flows {
            std::fs::write(dir.path().join("flows").join(name), yaml).unwrap();
        }
        std::fs::write(
            dir.path().join("tokenflow.toml"),
            format!(
                "listen = \"127.0.0.1:{port}\"\npublic_url = \"http://127.0.0.1:{port}\"\ndata_dir = \"data\"\nflows_dir = \"flows\"\napi_keys = [\"{API_KEY}\"]\n{oauth_servers}"
            ),
        )
        .unwrap();
        Site { dir, port }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub(crate) fn log(&self) -> PathBuf {
        self.dir.path().join("server.log")
    }

    /// Starts `tokenflow serve` and waits until it listens; stderr (trace logs) goes to server.log.
    pub(crate) async fn start(&self) -> Child {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log())
            .unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_tokenflow"))
            .args(["serve", "--config"])
            .arg(self.dir.path().join("tokenflow.toml"))
            .env_remove("TOKENFLOW_CONFIG")
            .env_remove("TOKENFLOW_MASTER_KEY")
            .env("TOKENFLOW_LOG", "trace")
            .env("SERVE_WEB_SECRET", WEB_SECRET)
            .env("SERVE_CC_SECRET", CC_SECRET)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let ready = tokio::time::timeout(Duration::from_secs(30), async {
            while let Ok(Some(line)) = lines.next_line().await {
                if line.starts_with("tokenflow listening on") {
                    return true;
                }
            }
            false
        })
        .await;
        assert!(
            ready == Ok(true),
            "the server did not start:\n{}",
            std::fs::read_to_string(self.log()).unwrap_or_default()
        );
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        child
    }

    async fn store(&self) -> SqliteStore {
        let key = MasterKey::load(None, &self.dir.path().join("data/master.key")).unwrap();
        SqliteStore::open(&self.dir.path().join("data"), &key)
            .await
            .unwrap()
    }
}

/// SIGTERM, then wait for the graceful exit.
pub(crate) async fn terminate(mut child: Child) {
    let pid = child.id().unwrap().to_string();
    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    let status = tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "graceful shutdown exits 0: {status:?}");
}

/// `kill -9`.
pub(crate) async fn kill9(mut child: Child) {
    child.kill().await.unwrap();
}

pub(crate) fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

fn login_flow(idp: &Idp) -> String {
    format!(
        "id: profile\nvariables:\n  token: {{}}\n  profile: {{}}\nactions:\n  login:\n    type: oauth_user_login\n    oauth_server: idp\n    input: {{ scope: \"openid profile offline_access\" }}\n    output: {{ access_token: token }}\n  me:\n    type: http_connector\n    input: {{ url: \"{}/me\", bearer_token: {{ var: token }} }}\n    output: {{ content: profile }}\nsteps:\n  - {{ from: start, to: login }}\n  - {{ from: login, to: me, when: successful }}\n  - {{ from: login, to: stop, when: not_successful }}\n  - {{ from: me, to: stop }}\n",
        idp.issuer()
    )
}

fn servers(idp: &Idp, web: &str, cc: &str) -> String {
    format!(
        "[oauth_servers.idp]\nclient_id = \"{web}\"\nclient_secret = {{ env = \"SERVE_WEB_SECRET\" }}\nissuer = \"{iss}\"\n\n[oauth_servers.svc]\nclient_id = \"{cc}\"\nclient_secret = {{ env = \"SERVE_CC_SECRET\" }}\nissuer = \"{iss}\"\nscope = \"api:read\"\n",
        iss = idp.issuer()
    )
}

/// `GET path` with the API key: the status and the body, whatever the status.
pub(crate) async fn get_status(site: &Site, path: &str) -> (u16, String) {
    let response = http()
        .get(site.url(path))
        .bearer_auth(API_KEY)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

async fn post_run(site: &Site, flow: &str) -> (u16, Value, String) {
    post_run_with(site, flow, json!({})).await
}

pub(crate) async fn post_run_with(site: &Site, flow: &str, inputs: Value) -> (u16, Value, String) {
    let response = http()
        .post(site.url(&format!("/api/flows/{flow}/runs")))
        .bearer_auth(API_KEY)
        .json(&inputs)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap(), text)
}

pub(crate) async fn get_run(site: &Site, id: &str) -> (Value, String) {
    let text = http()
        .get(site.url(&format!("/api/runs/{id}")))
        .bearer_auth(API_KEY)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    (serde_json::from_str(&text).unwrap(), text)
}

#[tokio::test]
async fn a_waiting_run_survives_kill_9_and_completes_after_the_restart() {
    let idp = Idp::start().await;
    let (web, cc) = (unique("serve-web"), unique("serve-cc"));
    let site = Site::new(
        &servers(&idp, &web, &cc),
        &[("profile.yaml", login_flow(&idp))],
    );
    idp.web_client(&web, WEB_SECRET, &site.url("/oauth-callback"), json!({}))
        .await;

    let first = site.start().await;
    let (status, run, _) = post_run(&site, "profile").await;
    assert_eq!(status, 201, "{run}");
    let id = run["id"].as_str().unwrap().to_owned();
    let url = run["authorization_url"].as_str().unwrap().to_owned();
    kill9(first).await;

    let second = site.start().await;
    assert_eq!(
        get_run(&site, &id).await.0["status"],
        "waiting",
        "the waiting run survived"
    );
    let landed = sign_in(
        &url,
        &site.url("/oauth-callback"),
        "alice",
        "alice-password",
        Decision::Allow,
    )
    .await;
    let page = http().get(landed.as_str()).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let (run, _) = get_run(&site, &id).await;
    assert_eq!(run["status"], "completed", "{run}");
    assert_eq!(
        run["actions"][1]["outputs"]["http_status_code"], 200,
        "the next action used the token"
    );
    terminate(second).await;
}

#[tokio::test]
async fn a_run_killed_mid_flight_is_marked_failed_at_the_next_start() {
    let site = Site::new("", &[]);
    let child = site.start().await;
    kill9(child).await;
    // Leave a run `running` as a crash would, directly in the store.
    let store = site.store().await;
    // Last touched an hour ago, and no instance holds its lease.
    let now = tokenflow_core::SystemClock.now() - time::Duration::hours(1);
    store
        .put_flow("f", "id: f\nsteps:\n  - { from: start, to: stop }\n", now)
        .await
        .unwrap();
    let state = tokenflow_core::SecretString::new(
        r#"{"variables":{},"next":"stop","executed":0,"waiting":null,"reason":null}"#,
    );
    store
        .create_run(&tokenflow_store::RunRow {
            id: "crashed-run".into(),
            flow_id: "f".into(),
            flow_version: 1,
            status: tokenflow_core::RunStatus::Running,
            state,
            browser_binding: None,
            started_at: now,
            updated_at: now,
            ended_at: None,
        })
        .await
        .unwrap();
    store.close().await;
    let child = site.start().await;
    let (run, _) = get_run(&site, "crashed-run").await;
    assert_eq!(run["status"], "failed");
    assert!(
        run["error"].as_str().unwrap().starts_with("interrupted"),
        "{run}"
    );
    terminate(child).await;
}

#[tokio::test]
async fn every_schedule_firing_runs_exactly_once_across_kill_9() {
    let flow = "id: ticker\nschedule: \"* * * * * *\"\nvariables:\n  v: {}\nactions:\n  tick:\n    type: extract_json\n    input: { json: \"[1]\", path: \"$[0]\" }\n    output: { value: v }\nsteps:\n  - { from: start, to: tick }\n  - { from: tick, to: stop }\n".to_owned();
    let site = Site::new("", &[("ticker.yaml", flow)]);
    let first = site.start().await;
    tokio::time::sleep(Duration::from_millis(3500)).await;
    kill9(first).await;
    let second = site.start().await;
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let schedules: Value = http()
        .get(site.url("/api/schedules"))
        .bearer_auth(API_KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(schedules["schedules"][0]["flow"], "ticker");
    assert!(schedules["schedules"][0]["next_due"].is_string());
    terminate(second).await;

    let store = site.store().await;
    let firings = store.firings("ticker", 1000).await.unwrap();
    let runs = store
        .list_runs(&tokenflow_store::RunFilter {
            flow_id: Some("ticker".into()),
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(
        firings.len() >= 4,
        "both server lives fired: {}",
        firings.len()
    );
    let dues: Vec<i64> = firings.iter().map(|f| f.due).collect();
    let mut unique_dues = dues.clone();
    unique_dues.dedup();
    assert_eq!(dues, unique_dues, "no due time fired twice");
    let mut run_ids: Vec<&str> = runs.iter().map(|r| r.id.as_str()).collect();
    run_ids.sort_unstable();
    let mut fired_ids: Vec<&str> = firings.iter().map(|f| f.run_id.as_str()).collect();
    fired_ids.sort_unstable();
    // A run killed between its claim and its first write may be missing, never doubled.
    assert!(
        runs.len() <= firings.len() && runs.len() + 1 >= firings.len(),
        "{} runs for {} firings",
        runs.len(),
        firings.len()
    );
    assert!(
        run_ids.iter().all(|id| fired_ids.binary_search(id).is_ok()),
        "every run belongs to one firing"
    );
}

#[tokio::test]
async fn no_secret_reaches_logs_api_responses_or_the_database_files() {
    let idp = Idp::start().await;
    let (web, cc) = (unique("hyg-web"), unique("hyg-cc"));
    let flows = [
        ("profile.yaml", login_flow(&idp)),
        (
            "service.yaml",
            format!(
                "id: service\nvariables:\n  token: {{}}\n  body: {{}}\nactions:\n  get:\n    type: oauth_server_login\n    oauth_server: svc\n    output: {{ access_token: token }}\n  call:\n    type: http_connector\n    input: {{ url: \"{}/api/whoami\", bearer_token: {{ var: token }} }}\n    output: {{ content: body }}\nsteps:\n  - {{ from: start, to: get }}\n  - {{ from: get, to: call }}\n  - {{ from: call, to: stop }}\n",
                idp.issuer()
            ),
        ),
        (
            "authcalls.yaml",
            format!(
                "id: authcalls\nvariables:\n  pw: {{ secret: true }}\n  key: {{ secret: true }}\n  tok: {{ secret: true }}\n  attempts: {{}}\nactions:\n  cc:\n    type: http_connector\n    input: {{ url: \"{api}\", auth: {{ oauth_server: svc }} }}\n    output: {{ attempts: attempts }}\n  vault:\n    type: http_connector\n    input: {{ url: \"{api}\", auth: {{ vault: hygiene }} }}\n  basic:\n    type: http_connector\n    input: {{ url: \"{api}\", auth: {{ basic: {{ username: app, password: {{ var: pw }} }} }} }}\n  header:\n    type: http_connector\n    input: {{ url: \"{api}\", auth: {{ api_key: {{ header: X-Api-Key, value: {{ var: key }} }} }} }}\n  query:\n    type: http_connector\n    input: {{ url: \"{api}\", auth: {{ api_key: {{ query: key, value: \"{{key}}\" }} }} }}\n  bearer:\n    type: http_connector\n    input: {{ url: \"{api}\", auth: {{ bearer: {{ var: tok }} }} }}\nsteps:\n  - {{ from: start, to: cc }}\n  - {{ from: cc, to: vault }}\n  - {{ from: vault, to: basic }}\n  - {{ from: basic, to: header }}\n  - {{ from: header, to: query }}\n  - {{ from: query, to: bearer }}\n  - {{ from: bearer, to: stop }}\n",
                api = idp.url("/api/whoami")
            ),
        ),
        (
            "vault.yaml",
            "id: vault\nvariables:\n  t: {}\n  r: {}\n  again: {}\nactions:\n  login:\n    type: oauth_user_login\n    oauth_server: idp\n    input: { scope: \"openid offline_access\" }\n    output: { access_token: t, refresh_token: r }\n  keep:\n    type: vault_store\n    oauth_server: idp\n    input: { name: hygiene, access_token: { var: t }, refresh_token: { var: r }, expires_in: 0 }\n  use:\n    type: vault_get_token\n    input: { name: hygiene }\n    output: { access_token: again }\nsteps:\n  - { from: start, to: login }\n  - { from: login, to: keep }\n  - { from: keep, to: use }\n  - { from: use, to: stop, when: successful }\n".to_owned(),
        ),
    ];
    let site = Site::new(&servers(&idp, &web, &cc), &flows);
    idp.web_client(
        &web,
        WEB_SECRET,
        &site.url("/oauth-callback"),
        json!({ "rotate_refresh_token": true }),
    )
    .await;
    idp.client_credentials_client(&cc, CC_SECRET).await;
    let child = site.start().await;

    let mut responses = String::new();
    let (_, run, text) = post_run(&site, "service").await;
    responses.push_str(&text);
    assert_eq!(run["status"], "completed", "{run}");
    let (_, run, text) = post_run(&site, "profile").await;
    responses.push_str(&text);
    let landed = sign_in(
        run["authorization_url"].as_str().unwrap(),
        &site.url("/oauth-callback"),
        "alice",
        "alice-password",
        Decision::Allow,
    )
    .await;
    responses.push_str(
        &http()
            .get(landed.as_str())
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    );
    let (done, text) = get_run(&site, run["id"].as_str().unwrap()).await;
    assert_eq!(done["status"], "completed", "{done}");
    responses.push_str(&text);

    // The vault: store a grant, then a refresh (the stored token is expired) that rotates it.
    let (_, run, text) = post_run(&site, "vault").await;
    responses.push_str(&text);
    let landed = sign_in(
        run["authorization_url"].as_str().unwrap(),
        &site.url("/oauth-callback"),
        "alice",
        "alice-password",
        Decision::Allow,
    )
    .await;
    responses.push_str(
        &http()
            .get(landed.as_str())
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    );
    let (done, text) = get_run(&site, run["id"].as_str().unwrap()).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(
        done["actions"][2]["status_code"], 0,
        "the vault refreshed: {done}"
    );
    responses.push_str(&text);

    // `http_connector` with every kind of `auth`; the cached client-credentials token is refused
    // first (the IdP forgot it), so the renewal and the second request are logged too.
    idp.revoke_grants(&cc).await;
    let (_, run, text) = post_run_with(
        &site,
        "authcalls",
        json!({ "pw": AUTH_PASSWORD, "key": AUTH_API_KEY, "tok": AUTH_BEARER }),
    )
    .await;
    responses.push_str(&text);
    assert_eq!(run["status"], "completed", "{run}");
    assert_eq!(run["variables"]["attempts"], 2, "{run}");
    assert_eq!(
        run["actions"][1]["outputs"]["http_status_code"], 200,
        "the vault token works: {run}"
    );
    for path in [
        "/api/runs",
        "/api/oauth-servers",
        "/api/flows",
        "/api/vault",
        "/metrics",
    ] {
        responses.push_str(
            &http()
                .get(site.url(path))
                .bearer_auth(API_KEY)
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap(),
        );
    }
    // Stop abruptly so the WAL is not checkpointed into the main file first.
    kill9(child).await;

    let mut secrets: Vec<String> = idp.issued_tokens(&web).await;
    secrets.extend(idp.issued_tokens(&cc).await);
    assert!(
        secrets.len() >= 4,
        "access, refresh, client-credentials tokens and the code were issued"
    );
    secrets.extend(
        [
            WEB_SECRET,
            CC_SECRET,
            API_KEY,
            AUTH_PASSWORD,
            AUTH_API_KEY,
            AUTH_BEARER,
            AUTH_BASIC,
        ]
        .map(str::to_owned),
    );
    let code = landed
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .unwrap();
    secrets.push(code);

    let log = std::fs::read_to_string(site.log()).unwrap();
    assert!(
        log.contains("TRACE") || log.contains("DEBUG") || log.contains("INFO"),
        "trace logging was on"
    );
    let mut files: Vec<(String, Vec<u8>)> = vec![
        ("server.log".into(), log.into_bytes()),
        ("responses".into(), responses.into_bytes()),
    ];
    for name in ["tokenflow.db", "tokenflow.db-wal", "tokenflow.db-shm"] {
        if let Ok(bytes) = std::fs::read(site.dir.path().join("data").join(name)) {
            files.push((name.into(), bytes));
        }
    }
    assert!(
        files.iter().any(|(name, _)| name == "tokenflow.db-wal"),
        "the WAL was checked"
    );
    for (name, bytes) in &files {
        for secret in &secrets {
            assert!(
                !contains(bytes, secret.as_bytes()),
                "a secret leaked into {name}"
            );
        }
    }
}

pub(crate) fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

#[tokio::test]
async fn migrate_creates_the_store_and_a_created_api_key_opens_the_api() {
    let site = Site::new("", &[]);
    let config = site.dir.path().join("tokenflow.toml");
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_tokenflow"))
            .arg("--config")
            .arg(&config)
            .args(args)
            .env_remove("TOKENFLOW_MASTER_KEY")
            .output()
            .unwrap()
    };
    let migrated = run(&["migrate"]);
    assert!(
        migrated.status.success(),
        "{}",
        String::from_utf8_lossy(&migrated.stderr)
    );
    assert!(site.dir.path().join("data/tokenflow.db").exists());
    let key_file = site.dir.path().join("data/master.key");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }

    let created = run(&["api-key", "create", "ci"]);
    assert!(created.status.success());
    let key = String::from_utf8(created.stdout).unwrap().trim().to_owned();
    assert!(key.starts_with("tfk_") && key.len() > 40, "{key}");
    let listed = String::from_utf8(run(&["api-key", "list"]).stdout).unwrap();
    assert_eq!(listed.trim(), "ci");
    assert!(
        !contains(
            &std::fs::read(site.dir.path().join("data/tokenflow.db")).unwrap(),
            key.as_bytes()
        ),
        "only the hash is stored"
    );

    let child = site.start().await;
    let ok = http()
        .get(site.url("/api/flows"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert!(run(&["api-key", "delete", "ci"]).status.success());
    let gone = http()
        .get(site.url("/api/flows"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), 401, "a deleted key stops working at once");
    terminate(child).await;

    // Another master key cannot open the data.
    let wrong = std::process::Command::new(env!("CARGO_BIN_EXE_tokenflow"))
        .arg("--config")
        .arg(&config)
        .arg("migrate")
        .env(
            "TOKENFLOW_MASTER_KEY",
            "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
        )
        .output()
        .unwrap();
    assert!(!wrong.status.success());
    assert!(
        String::from_utf8_lossy(&wrong.stderr)
            .contains("master key does not open the store's key check"),
        "{}",
        String::from_utf8_lossy(&wrong.stderr)
    );
}
