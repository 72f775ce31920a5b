//! Several `tokenflow serve` processes on one PostgreSQL database: a callback may land
//! on any instance, and schedules still fire once.

use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use tokenflow_testkit::{Decision, Idp, sign_in, unique};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

pub(crate) const API_KEY: &str = "multi-instance-key-7";
const MASTER_KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

fn server_url() -> String {
    std::env::var("TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// A fresh database on the test PostgreSQL server, dropped when this is dropped.
pub(crate) struct Database {
    name: String,
}

impl Database {
    pub(crate) fn create() -> Database {
        let name = format!("tf_multi_{}", unique("db").replace('-', "_"));
        let ok = std::process::Command::new("psql")
            .args([
                &server_url(),
                "-q",
                "-c",
                &format!("CREATE DATABASE {name}"),
            ])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(
            ok,
            "cannot create a database on {} (PostgreSQL must run: see scripts/start-test-postgres)",
            server_url()
        );
        Database { name }
    }

    fn url(&self) -> String {
        let base = server_url();
        let root = base
            .rsplit_once('/')
            .map_or(base.as_str(), |(root, _)| root)
            .to_owned();
        format!("{root}/{}", self.name)
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        let _ = std::process::Command::new("psql")
            .args([
                &server_url(),
                "-q",
                "-c",
                &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

pub(crate) struct Instance {
    pub(crate) url: String,
    _dir: tempfile::TempDir,
    pub(crate) child: Child,
}

pub(crate) async fn instance(
    db: &Database,
    public_url: Option<&str>,
    extra: &str,
    flows: &[(&str, String)],
) -> Instance {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    std::fs::create_dir_all(dir.path().join("flows")).unwrap();
    for (name, yaml) in flows {
        std::fs::write(dir.path().join("flows").join(name), yaml).unwrap();
    }
    std::fs::write(
        dir.path().join("tokenflow.toml"),
        format!(
            "listen = \"127.0.0.1:{port}\"\npublic_url = \"{}\"\ndatabase_url = \"{}\"\nflows_dir = \"flows\"\napi_keys = [\"{API_KEY}\"]\n{extra}",
            public_url.unwrap_or(&url),
            db.url()
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_tokenflow"))
        .args(["serve", "--config"])
        .arg(dir.path().join("tokenflow.toml"))
        .env_remove("TOKENFLOW_CONFIG")
        .env("TOKENFLOW_MASTER_KEY", MASTER_KEY)
        .env("MULTI_WEB_SECRET", "multi-web-secret")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let ready = tokio::time::timeout(Duration::from_secs(60), async {
        while let Ok(Some(line)) = lines.next_line().await {
            if line.starts_with("tokenflow listening on") {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(ready, Ok(true), "an instance did not start");
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Instance {
        url,
        _dir: dir,
        child,
    }
}

pub(crate) fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

pub(crate) async fn get_json(base: &str, path: &str) -> Value {
    http()
        .get(format!("{base}{path}"))
        .bearer_auth(API_KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Starts a run of `flow` on the instance at `base`; the run's JSON.
pub(crate) async fn start_run(base: &str, flow: &str) -> Value {
    http()
        .post(format!("{base}/api/flows/{flow}/runs"))
        .bearer_auth(API_KEY)
        .json(&json!({}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_login_started_on_a_completes_by_a_callback_to_b_and_shows_on_c() {
    let idp = Idp::start().await;
    let web = unique("multi-web");
    let db = Database::create();
    let flow = format!(
        "id: profile\nvariables:\n  token: {{}}\n  body: {{}}\nactions:\n  login:\n    type: oauth_user_login\n    oauth_server: idp\n    input: {{ scope: \"openid profile\" }}\n    output: {{ access_token: token }}\n  me:\n    type: http_connector\n    input: {{ url: \"{}/me\", bearer_token: {{ var: token }} }}\n    output: {{ content: body }}\nsteps:\n  - {{ from: start, to: login }}\n  - {{ from: login, to: me, when: successful }}\n  - {{ from: me, to: stop }}\n",
        idp.issuer()
    );
    let servers = format!(
        "[oauth_servers.idp]\nclient_id = \"{web}\"\nclient_secret = {{ env = \"MULTI_WEB_SECRET\" }}\nissuer = \"{}\"\n",
        idp.issuer()
    );
    // The load balancer's address: every instance uses it for the redirect URI.
    let public = "http://127.0.0.1:9/";
    let a = instance(&db, Some(public), &servers, &[("profile.yaml", flow)]).await;
    let b = instance(&db, Some(public), &servers, &[]).await;
    let c = instance(&db, Some(public), &servers, &[]).await;
    idp.web_client(
        &web,
        "multi-web-secret",
        "http://127.0.0.1:9/oauth-callback",
        json!({}),
    )
    .await;

    let started = start_run(&a.url, "profile").await;
    assert_eq!(started["status"], "waiting", "{started}");
    let landed = sign_in(
        started["authorization_url"].as_str().unwrap(),
        "http://127.0.0.1:9/oauth-callback",
        "alice",
        "alice-password",
        Decision::Allow,
    )
    .await;
    // The load balancer sends the callback to B.
    let on_b = format!("{}/oauth-callback?{}", b.url, landed.query().unwrap());
    assert_eq!(http().get(on_b).send().await.unwrap().status(), 200);
    let run = get_json(
        &c.url,
        &format!("/api/runs/{}", started["id"].as_str().unwrap()),
    )
    .await;
    assert_eq!(run["status"], "completed", "{run}");
    assert_eq!(run["actions"][1]["outputs"]["http_status_code"], 200);
    drop((a.child, b.child, c.child));
}

#[tokio::test]
async fn a_schedule_every_second_on_three_instances_fires_once_per_second() {
    let db = Database::create();
    let a = instance(&db, None, "", &[]).await;
    let b = instance(&db, None, "", &[]).await;
    let c = instance(&db, None, "", &[]).await;
    // Loaded once all three run, so no instance's start-up overlaps a firing.
    let flow = "id: tick\nschedule: \"* * * * * *\"\nvariables:\n  v: {}\nactions:\n  one:\n    type: extract_json\n    input: { json: \"[1]\", path: \"$[0]\" }\n    output: { value: v }\nsteps:\n  - { from: start, to: one }\n  - { from: one, to: stop }\n";
    let put = http()
        .put(format!("{}/api/flows/tick", a.url))
        .bearer_auth(API_KEY)
        .header("content-type", "application/yaml")
        .body(flow)
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 201);
    // Wait for 30 firings.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let runs = loop {
        let runs = get_json(&b.url, "/api/runs?flow=tick&limit=1000").await;
        let count = runs["runs"].as_array().unwrap().len();
        if count >= 30 {
            break runs;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "only {count} runs after 60 s"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    drop((a.child, b.child, c.child));
    assert!(
        runs["runs"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["status"] == "completed")
    );

    // The store's view: one claimed firing per due second, one run per firing.
    let key = tokenflow_store::MasterKey::from_base64(MASTER_KEY).unwrap();
    let store = tokenflow_store::postgres::PostgresStore::connect(
        &tokenflow_core::SecretString::new(db.url()),
        &key,
    )
    .await
    .unwrap();
    use tokenflow_store::prelude::*;
    let firings = store.firings("tick", 10_000).await.unwrap();
    let all_runs = store
        .list_runs(&tokenflow_store::RunFilter {
            flow_id: Some("tick".into()),
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap();
    store.close().await;
    assert!(firings.len() >= 30);
    let mut fired: Vec<&str> = firings.iter().map(|f| f.run_id.as_str()).collect();
    fired.sort_unstable();
    assert!(
        all_runs
            .iter()
            .all(|r| fired.binary_search(&r.id.as_str()).is_ok()),
        "every run belongs to a firing"
    );
    // Instances stopped between a claim and its run's first write may leave a firing without a run,
    // never a firing with two.
    assert!(
        all_runs.len() <= firings.len() && firings.len() - all_runs.len() <= 3,
        "{} runs for {} firings",
        all_runs.len(),
        firings.len()
    );
}

/// The flow `pick`: the `index`-th element of `[10, 20]` into `v`.
fn pick_flow(index: usize) -> String {
    format!(
        "id: pick\nvariables:\n  v: {{}}\nactions:\n  one:\n    type: extract_json\n    input: {{ json: \"[10, 20]\", path: \"$[{index}]\" }}\n    output: {{ value: v }}\nsteps:\n  - {{ from: start, to: one }}\n  - {{ from: one, to: stop }}\n"
    )
}

async fn start_pick(instance: &Instance) -> Value {
    let answer = http()
        .post(format!("{}/api/flows/pick/runs", instance.url))
        .bearer_auth(API_KEY)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    // A run that ended answers 200.
    assert_eq!(answer.status(), 200);
    answer.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flow_version_saved_on_one_instance_is_what_the_next_runs_on_another_run() {
    let db = Database::create();
    let a = instance(&db, None, "", &[("pick.yaml", pick_flow(0))]).await;
    let b = instance(&db, None, "", &[]).await;
    // B runs version 1, which it now keeps in memory.
    for _ in 0..3 {
        let run = start_pick(&b).await;
        assert_eq!(
            (run["flow_version"].clone(), run["variables"]["v"].clone()),
            (json!(1), json!(10))
        );
    }
    let put = http()
        .put(format!("{}/api/flows/pick", a.url))
        .bearer_auth(API_KEY)
        .header("content-type", "application/yaml")
        .body(pick_flow(1))
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 201);
    // PostgreSQL tells B of the new version when A's write commits: B's next runs use it.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let run = start_pick(&b).await;
        if run["flow_version"] == json!(2) {
            assert_eq!(run["variables"]["v"], json!(20));
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "B still runs version {} 10 s after A stored version 2",
            run["flow_version"]
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // And only that one from then on.
    for _ in 0..3 {
        assert_eq!(start_pick(&b).await["flow_version"], json!(2));
    }
}

#[tokio::test]
async fn a_run_on_an_instance_killed_mid_action_is_failed_by_another_within_the_lease() {
    let db = Database::create();
    // An API that accepts connections and never answers: the action runs until we kill A.
    let hang = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hang_port = hang.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = hang.accept().await {
            held.push(socket);
        }
    });
    let flow = format!(
        "id: slow\nvariables:\n  code: {{}}\nactions:\n  call:\n    type: http_connector\n    input: {{ url: \"http://127.0.0.1:{hang_port}/\", timeout: 100000 }}\n    output: {{ http_status_code: code }}\nsteps:\n  - {{ from: start, to: call }}\n  - {{ from: call, to: stop }}\n"
    );
    let a = instance(&db, None, "run_lease = 2\n", &[("slow.yaml", flow)]).await;
    let b = instance(&db, None, "run_lease = 2\n", &[]).await;
    let a_url = a.url.clone();
    tokio::spawn(async move {
        let _ = http()
            .post(format!("{a_url}/api/flows/slow/runs"))
            .bearer_auth(API_KEY)
            .json(&json!({}))
            .send()
            .await;
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let id = loop {
        let runs = get_json(&b.url, "/api/runs?flow=slow&status=running").await;
        if let Some(id) = runs["runs"][0]["id"].as_str() {
            break id.to_owned();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the run never started"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // Longer than the lease: A's heartbeat keeps the run alive, B leaves it alone.
    tokio::time::sleep(Duration::from_secs(7)).await;
    assert_eq!(
        get_json(&b.url, &format!("/api/runs/{id}")).await["status"],
        "running"
    );

    let mut a_child = a.child;
    a_child.kill().await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let run = loop {
        let run = get_json(&b.url, &format!("/api/runs/{id}")).await;
        if run["status"] != "running" {
            break run;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the run stayed running after its instance died"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(run["status"], "failed");
    assert!(
        run["error"].as_str().unwrap().starts_with("interrupted"),
        "{run}"
    );
    drop(b.child);
}

/// The number of runs ended with `status` over the metrics of `states`.
fn runs_ended(states: &[tokenflow_server::AppState], flow: &str, status: &str) -> u64 {
    let series = format!("tokenflow_runs_total{{flow=\"{flow}\",status=\"{status}\"}} ");
    states
        .iter()
        .map(|state| {
            state
                .metrics
                .encode()
                .lines()
                .find_map(|line| line.strip_prefix(&series))
                .map_or(0, |count| count.trim().parse::<u64>().unwrap())
        })
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_instances_sweeping_a_hundred_interrupted_runs_at_once_fail_each_exactly_once() {
    use std::sync::Arc;
    use tokenflow_core::{Clock, ManualClock, SecretString, SystemClock};

    let db = Database::create();
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("flows")).unwrap();
    std::fs::write(
        dir.path().join("flows").join("work.yaml"),
        "id: work\nvariables:\n  v: {}\nactions:\n  one:\n    type: extract_json\n    input: { json: \"[1]\", path: \"$[0]\" }\n    output: { value: v }\nsteps:\n  - { from: start, to: one }\n  - { from: one, to: stop }\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("tokenflow.toml"), "flows_dir = \"flows\"\n").unwrap();
    let config = tokenflow_config::load(&tokenflow_config::Sources {
        file: Some(&dir.path().join("tokenflow.toml")),
        env: vec![],
    })
    .unwrap();
    let key = tokenflow_store::MasterKey::from_base64(MASTER_KEY).unwrap();
    // One moment for all three, so that their sweeps see the same expired leases.
    let clock = Arc::new(ManualClock::new(SystemClock.now()));
    let (mut states, mut stores) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        let store = Arc::new(
            tokenflow_store::postgres::PostgresStore::connect(&SecretString::new(db.url()), &key)
                .await
                .unwrap(),
        );
        stores.push(store.clone());
        let startup = tokenflow_server::startup::build(
            &config,
            store,
            clock.clone(),
            tokenflow_server::startup::Timing::default(),
            *key.derive("web ui sessions"),
        )
        .await
        .unwrap();
        states.push(startup.state);
    }

    // A hundred runs left `running` by an instance that died before its first write.
    let (flow, version) = states[0].catalog.current("work").await.unwrap().unwrap();
    let mut ids = Vec::new();
    for _ in 0..100 {
        let run = states[0]
            .runner
            .engine()
            .start(&flow, serde_json::Map::new())
            .unwrap();
        states[0]
            .store
            .create_run(&tokenflow_store::RunRow {
                id: run.id.clone(),
                flow_id: run.flow_id.clone(),
                flow_version: version,
                status: tokenflow_core::RunStatus::Running,
                state: run.state_json(),
                browser_binding: None,
                started_at: clock.now(),
                updated_at: clock.now(),
                ended_at: None,
            })
            .await
            .unwrap();
        ids.push(run.id);
    }
    clock.advance(time::Duration::seconds(31));

    let barrier = Arc::new(tokio::sync::Barrier::new(3));
    let sweeps: Vec<_> = states
        .iter()
        .map(|state| {
            let (state, barrier) = (state.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                state.runner.recover_interrupted().await.unwrap()
            })
        })
        .collect();
    let mut failed = 0;
    for sweep in sweeps {
        failed += sweep.await.unwrap();
    }
    assert_eq!(failed, 100, "each run is failed by one instance");
    assert_eq!(runs_ended(&states, "work", "failed"), 100);
    let mut ended = Vec::new();
    for id in &ids {
        let run = states[1].store.get_run(id).await.unwrap().unwrap();
        assert_eq!(run.status, tokenflow_core::RunStatus::Failed);
        ended.push(run.ended_at.unwrap());
    }

    // Later sweeps anywhere find nothing more to fail and change nothing.
    clock.advance(time::Duration::seconds(60));
    for state in &states {
        state.runner.sweep_once().await.unwrap();
    }
    assert_eq!(runs_ended(&states, "work", "failed"), 100);
    for (id, ended_at) in ids.iter().zip(&ended) {
        let run = states[2].store.get_run(id).await.unwrap().unwrap();
        assert_eq!(run.ended_at.as_ref(), Some(ended_at), "ended_at of {id}");
    }
    let shown = get_run_json(&states[2], &ids[0]).await;
    assert!(
        shown["error"].as_str().unwrap().starts_with("interrupted"),
        "{shown}"
    );
    for store in stores {
        store.close().await;
    }
}

async fn get_run_json(state: &tokenflow_server::AppState, id: &str) -> Value {
    state
        .runner
        .load(id)
        .await
        .unwrap()
        .unwrap()
        .to_json(state.runner.engine().limits().monitor_value)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_processes_with_a_hundred_vault_callers_each_refresh_an_expired_entry_once() {
    let idp = Idp::start().await;
    let web = unique("multi-vault");
    let db = Database::create();
    let servers = format!(
        "[oauth_servers.idp]\nclient_id = \"{web}\"\nclient_secret = {{ env = \"MULTI_WEB_SECRET\" }}\nissuer = \"{}\"\n",
        idp.issuer()
    );
    // Signs in and stores the grant already expired, so the next use must refresh it.
    let keep = "id: keep\nvariables:\n  t: {}\n  r: {}\nactions:\n  login:\n    type: oauth_user_login\n    oauth_server: idp\n    input: { scope: \"openid offline_access\" }\n    output: { access_token: t, refresh_token: r }\n  store:\n    type: vault_store\n    oauth_server: idp\n    input: { name: shared, access_token: { var: t }, refresh_token: { var: r }, expires_in: 0 }\nsteps:\n  - { from: start, to: login }\n  - { from: login, to: store }\n  - { from: store, to: stop }\n".to_owned();
    let use_it = format!(
        "id: use\nvariables:\n  t: {{}}\n  code: {{}}\nactions:\n  get:\n    type: vault_get_token\n    input: {{ name: shared }}\n    output: {{ access_token: t }}\n  call:\n    type: http_connector\n    input: {{ url: \"{}/api/whoami\", bearer_token: {{ var: t }} }}\n    output: {{ http_status_code: code }}\nsteps:\n  - {{ from: start, to: get }}\n  - {{ from: get, to: call, when: successful }}\n  - {{ from: call, to: stop }}\n",
        idp.issuer()
    );
    let public = "http://127.0.0.1:9/";
    let a = instance(
        &db,
        Some(public),
        &servers,
        &[("keep.yaml", keep), ("use.yaml", use_it)],
    )
    .await;
    let b = instance(&db, Some(public), &servers, &[]).await;
    let c = instance(&db, Some(public), &servers, &[]).await;
    idp.web_client(
        &web,
        "multi-web-secret",
        "http://127.0.0.1:9/oauth-callback",
        json!({ "rotate_refresh_token": true }),
    )
    .await;

    let started: Value = http()
        .post(format!("{}/api/flows/keep/runs", a.url))
        .bearer_auth(API_KEY)
        .json(&json!({}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let landed = sign_in(
        started["authorization_url"].as_str().unwrap(),
        "http://127.0.0.1:9/oauth-callback",
        "alice",
        "alice-password",
        Decision::Allow,
    )
    .await;
    assert_eq!(
        http()
            .get(format!(
                "{}/oauth-callback?{}",
                b.url,
                landed.query().unwrap()
            ))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    // One client for all 300 callers: building a client per caller (each loads its TLS roots)
    // on the test's thread could hold connections that are already open without their request
    // head for longer than the servers' `header_read_timeout` on a loaded machine, and the
    // servers rightly close those.
    let client = http();
    let mut tasks = Vec::new();
    for i in 0..300 {
        let base = [&a.url, &b.url, &c.url][i % 3].clone();
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            let run: Value = client
                .post(format!("{base}/api/flows/use/runs"))
                .bearer_auth(API_KEY)
                .json(&json!({}))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            run
        }));
    }
    for task in tasks {
        let run = task.await.unwrap();
        assert_eq!(run["status"], "completed", "{run}");
        assert_eq!(run["variables"]["code"], 200, "the token works: {run}");
    }
    let requests = idp.token_requests(&web).await;
    let refreshes = requests
        .iter()
        .filter(|r| r.grant_type.as_deref() == Some("refresh_token"))
        .count();
    assert_eq!(
        refreshes, 1,
        "one refresh across three processes and 300 callers"
    );
    assert!(
        requests.iter().all(|r| r.error.is_none()),
        "no invalid_grant: {requests:?}"
    );
    drop((a.child, b.child, c.child));
}

#[test]
fn migrate_works_on_postgresql_and_refuses_another_master_key() {
    let db = Database::create();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("tokenflow.toml");
    std::fs::write(&config, format!("database_url = \"{}\"\n", db.url())).unwrap();
    let migrate = |key: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_tokenflow"))
            .arg("--config")
            .arg(&config)
            .arg("migrate")
            .env_remove("TOKENFLOW_CONFIG")
            .env("TOKENFLOW_MASTER_KEY", key)
            .output()
            .unwrap()
    };
    let first = migrate(MASTER_KEY);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert!(String::from_utf8_lossy(&first.stdout).contains("PostgreSQL"));
    assert!(
        migrate(MASTER_KEY).status.success(),
        "migrating twice is harmless"
    );
    let wrong = migrate("AQECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=");
    assert!(!wrong.status.success());
    let stderr = String::from_utf8_lossy(&wrong.stderr);
    assert!(
        stderr.contains("master key does not open the store's key check"),
        "{stderr}"
    );
    assert!(
        !stderr.contains(&db.url()),
        "the database URL is not printed"
    );
}
