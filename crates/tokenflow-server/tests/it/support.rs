use std::sync::Arc;
use std::time::Duration;

use reqwest::{Method, RequestBuilder};
use serde_json::Value;
use tokenflow_core::{Clock, ManualClock, SystemClock};
use tokenflow_server::AppState;
use tokenflow_server::startup::{Timing, build};
use tokenflow_store::MasterKey;
use tokenflow_store::sqlite::SqliteStore;
use tokenflow_testkit::{Idp, unique};

pub const API_KEY: &str = "test-api-key-0123456789";

/// A running server with its own data directory.
pub struct TestApp {
    pub url: String,
    pub state: AppState,
    pub _dir: tempfile::TempDir,
    pub http: reqwest::Client,
    pub clock: Option<Arc<ManualClock>>,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

/// Options for [`spawn_app`].
#[derive(Default)]
pub struct Options<'a> {
    /// Extra TOML appended to the configuration (OAuth servers…).
    pub config: String,
    /// Flow files: (file name, YAML).
    pub flows: Vec<(&'a str, String)>,
    /// Use a manual clock starting now.
    pub manual_clock: bool,
    /// Shortens how long a UI event stream lives.
    pub event_stream_max: Option<Duration>,
}

/// A server's state on its own data directory, with the listener it is to be served on; nothing
/// runs yet (no background tasks), so a test can drive the scheduler or the sweeper itself.
pub struct BuiltApp {
    pub url: String,
    pub state: AppState,
    pub dir: tempfile::TempDir,
    pub clock: Option<Arc<ManualClock>>,
    pub listener: tokio::net::TcpListener,
}

pub async fn spawn_app(options: Options<'_>) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let built = build_in(dir.path(), options).await;
    serve_built(built, dir)
}

/// A second instance of `app`: the same configuration and data directory, but its own store
/// connections, state and port, as another process would have.
pub async fn another_instance(app: &TestApp) -> TestApp {
    let built = build_in(app._dir.path(), Options::default()).await;
    let mut instance = serve_built(built, tempfile::tempdir().unwrap());
    instance.http = app.http.clone();
    instance
}

/// Stops `app` (its server and background tasks) and starts a new instance on its configuration
/// and data, as a restarted process would be: the old one answers no more before the new one
/// is built.
pub async fn restart(app: TestApp) -> TestApp {
    let TestApp {
        url,
        _dir: dir,
        _shutdown: shutdown,
        ..
    } = app;
    drop(shutdown);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while reqwest::get(format!("{url}/healthz")).await.is_ok() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the old instance still answers"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let built = build_in(dir.path(), Options::default()).await;
    serve_built(built, dir)
}

fn serve_built(built: BuiltParts, dir: tempfile::TempDir) -> TestApp {
    let BuiltParts {
        url,
        state,
        clock,
        listener,
    } = built;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let serve_state = state.clone();
    tokio::spawn(async move {
        tokenflow_server::serve(listener, serve_state, async {
            let _ = rx.await;
        })
        .await
        .unwrap();
    });
    TestApp {
        url,
        state,
        _dir: dir,
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        clock,
        _shutdown: tx,
    }
}

pub async fn build_app(options: Options<'_>) -> BuiltApp {
    let dir = tempfile::tempdir().unwrap();
    let BuiltParts {
        url,
        state,
        clock,
        listener,
    } = build_in(dir.path(), options).await;
    BuiltApp {
        url,
        state,
        dir,
        clock,
        listener,
    }
}

struct BuiltParts {
    url: String,
    state: AppState,
    clock: Option<Arc<ManualClock>>,
    listener: tokio::net::TcpListener,
}

/// Builds an app whose configuration and data live in `dir` (written by the first call, read
/// again by later ones); nothing is served yet.
async fn build_in(dir: &std::path::Path, options: Options<'_>) -> BuiltParts {
    let flows_dir = dir.join("flows");
    std::fs::create_dir_all(&flows_dir).unwrap();
    for (name, yaml) in &options.flows {
        std::fs::write(flows_dir.join(name), yaml).unwrap();
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let url = format!("http://127.0.0.1:{port}");
    let config_path = dir.join("tokenflow.toml");
    if !config_path.exists() {
        std::fs::write(
            &config_path,
            format!(
                "listen = \"127.0.0.1:{port}\"\npublic_url = \"{url}\"\ndata_dir = \"data\"\nflows_dir = \"flows\"\napi_keys = [\"{API_KEY}\"]\n{}",
                options.config
            ),
        )
        .unwrap();
    }
    let config = tokenflow_config::load(&tokenflow_config::Sources {
        file: Some(&config_path),
        env: vec![],
    })
    .unwrap();
    let key = MasterKey::from_base64("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=").unwrap();
    let store = Arc::new(SqliteStore::open(&config.data_dir, &key).await.unwrap());
    let manual = options
        .manual_clock
        .then(|| Arc::new(ManualClock::new(SystemClock.now())));
    let clock: Arc<dyn Clock> = match &manual {
        Some(clock) => clock.clone(),
        None => Arc::new(SystemClock),
    };
    let defaults = Timing::default();
    let timing = Timing {
        sweep_interval: Duration::from_secs(3600),
        schedule_tick: Duration::from_millis(100),
        event_stream_max: options
            .event_stream_max
            .unwrap_or(defaults.event_stream_max),
        ..defaults
    };
    let startup = build(
        &config,
        store,
        clock,
        timing,
        *key.derive("web ui sessions"),
    )
    .await
    .unwrap_or_else(|err| panic!("{err}"));
    BuiltParts {
        url,
        state: startup.state,
        clock: manual,
        listener,
    }
}

impl TestApp {
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(API_KEY)
    }

    pub async fn get_json(&self, path: &str) -> (u16, Value) {
        let response = self.request(Method::GET, path).send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    pub async fn post_json(&self, path: &str, body: Value) -> (u16, Value, Option<String>) {
        let response = self
            .request(Method::POST, path)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let location = response
            .headers()
            .get("location")
            .map(|v| v.to_str().unwrap().to_owned());
        (
            status,
            response.json().await.unwrap_or(Value::Null),
            location,
        )
    }
}

/// A flow with a user login at `server`, then the IdP's userinfo with the token.
pub fn login_flow(idp: &Idp) -> String {
    format!(
        r#"id: profile
variables:
  token: {{}}
  status: {{}}
  profile: {{}}
  name: {{}}
actions:
  login:
    type: oauth_user_login
    oauth_server: idp
    input: {{ scope: "openid profile" }}
    output: {{ access_token: token, status_code: status }}
  me:
    type: http_connector
    input: {{ url: "{}/me", bearer_token: {{ var: token }} }}
    output: {{ content: profile }}
  pick:
    type: extract_json
    input: {{ json: {{ var: profile }}, path: "$.name" }}
    output: {{ value: name }}
  denied: {{ type: stop }}
steps:
  - {{ from: start, to: login }}
  - {{ from: login, to: me, when: successful }}
  - {{ from: login, to: denied, when: not_successful }}
  - {{ from: me, to: pick }}
  - {{ from: pick, to: stop }}
"#,
        idp.issuer()
    )
}

pub const PURE_FLOW: &str = r#"id: pure
variables:
  doc: { default: "{\"a\": 7}" }
  a: {}
actions:
  read:
    type: extract_json
    input: { json: { var: doc }, path: "$.a" }
    output: { value: a }
steps:
  - { from: start, to: read }
  - { from: read, to: stop }
"#;

/// A test world: an IdP with a web client whose redirect URI is the app's callback.
pub struct World {
    pub idp: Idp,
    pub app: TestApp,
    pub client: String,
}

pub async fn world(manual_clock: bool) -> World {
    let idp = Idp::start().await;
    let client = unique("srv-web");
    // The redirect URI is only known once the app is bound; register after spawning.
    let config = format!(
        "[oauth_servers.idp]\nclient_id = \"{client}\"\nclient_secret = \"srv-web-secret\"\nissuer = \"{}\"\n",
        idp.issuer()
    );
    let app = spawn_app(Options {
        config,
        flows: vec![
            ("profile.yaml", login_flow(&idp)),
            ("pure.yaml", PURE_FLOW.to_owned()),
        ],
        manual_clock,
        ..Options::default()
    })
    .await;
    idp.web_client(
        &client,
        "srv-web-secret",
        &format!("{}/oauth-callback", app.url),
        serde_json::json!({}),
    )
    .await;
    World { idp, app, client }
}

/// A listener that records every request it gets and answers each with `400 invalid_client`:
/// the address a caller would like a client secret sent to.
pub struct Capture {
    pub url: String,
    requests: Arc<std::sync::Mutex<Vec<String>>>,
}

impl Capture {
    pub async fn start() -> Capture {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = requests.clone();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let seen = seen.clone();
                tokio::spawn(async move {
                    // Reads the head, then as much body as Content-Length says.
                    let mut data = Vec::new();
                    let mut buf = [0u8; 4096];
                    while let Ok(n) = socket.read(&mut buf).await {
                        if n == 0 {
                            break;
                        }
                        data.extend_from_slice(&buf[..n]);
                        let text = String::from_utf8_lossy(&data).to_string();
                        if let Some(end) = text.find("\r\n\r\n") {
                            let length = text[..end]
                                .lines()
                                .filter_map(|l| l.split_once(':'))
                                .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
                                .and_then(|(_, v)| v.trim().parse::<usize>().ok())
                                .unwrap_or(0);
                            if data.len() >= end + 4 + length {
                                break;
                            }
                        }
                    }
                    seen.lock()
                        .unwrap()
                        .push(String::from_utf8_lossy(&data).to_string());
                    let body = r#"{"error":"invalid_client"}"#;
                    let answer = format!(
                        "HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = socket.write_all(answer.as_bytes()).await;
                });
            }
        });
        Capture { url, requests }
    }

    /// Every request received so far, as text.
    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}
