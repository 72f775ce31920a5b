//! The two small servers the suite starts as its own subprocesses (`tokenflow-bench stub|bare`):
//!
//! - the **stub API**: `GET /data` (needs a bearer token) answers a fixed JSON document;
//!   `POST /token` answers a token response at once (the token endpoint of the waiting-run
//!   benchmark, so that a callback measures tokenflow and not an identity provider's signing).
//! - the **bare reference**: what a developer would hand-write instead of a flow, an axum handler
//!   `POST /run` that keeps one client-credentials token in memory, calls the stub with it and
//!   answers the one field the flow extracts. It is the limit tokenflow is measured against.
//!
//! Both print `READY http://127.0.0.1:<port>` and exit when their stdin closes.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use std::io::Write as _;

/// The document `GET /data` answers; the flows extract `$.user.name`.
pub fn data_document() -> Value {
    json!({ "user": { "id": 42, "name": "Bench User", "roles": ["reader"] }, "items": [1, 2, 3] })
}

/// The value every target must answer.
pub const EXPECTED_NAME: &str = "Bench User";

async fn listen_and_announce(app: axum::Router) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "READY http://{address}")?;
    stdout.flush()?;
    drop(stdout);
    // Exit when the suite goes away (its end of our stdin closes).
    std::thread::spawn(|| {
        let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
        std::process::exit(0);
    });
    axum::serve(listener, app).await?;
    Ok(())
}

pub async fn stub() -> anyhow::Result<()> {
    let issued = Arc::new(AtomicU64::new(0));
    let app = axum::Router::new()
        .route("/data", get(data))
        .route("/token", post(token))
        .with_state(issued);
    listen_and_announce(app).await
}

async fn data(headers: HeaderMap) -> Response {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .is_some_and(|token| !token.trim().is_empty());
    if bearer {
        Json(data_document()).into_response()
    } else {
        (StatusCode::UNAUTHORIZED, "a bearer token is required").into_response()
    }
}

async fn token(State(issued): State<Arc<AtomicU64>>) -> Json<Value> {
    let n = issued.fetch_add(1, Ordering::Relaxed);
    Json(json!({
        "access_token": format!("stub-access-token-{n}"),
        "token_type": "Bearer",
        "expires_in": 3600,
    }))
}

/// Where the bare reference gets its token and calls the stub.
#[derive(Debug, Clone, clap::Args)]
pub struct BareArgs {
    #[arg(long)]
    pub token_url: String,
    #[arg(long)]
    pub client_id: String,
    /// Read from the environment so it never shows in `ps`.
    #[arg(long, env = "BENCH_CLIENT_SECRET", hide_env_values = true)]
    pub client_secret: String,
    #[arg(long)]
    pub scope: String,
    #[arg(long)]
    pub stub_url: String,
}

struct Bare {
    args: BareArgs,
    http: reqwest::Client,
    token: tokio::sync::Mutex<Option<(String, Instant)>>,
}

pub async fn bare(args: BareArgs) -> anyhow::Result<()> {
    // The same client settings as tokenflow's (rustls, no redirects, timeouts).
    let http = tokenflow_connectors::http::build_client(Duration::from_secs(30))?;
    let state = Arc::new(Bare {
        args,
        http,
        token: tokio::sync::Mutex::new(None),
    });
    let app = axum::Router::new()
        .route("/run", post(bare_run))
        .with_state(state);
    listen_and_announce(app).await
}

impl Bare {
    /// The cached client-credentials token, fetched again a minute before it expires.
    async fn token(&self) -> anyhow::Result<String> {
        let mut slot = self.token.lock().await;
        if let Some((token, until)) = slot.as_ref()
            && Instant::now() < *until
        {
            return Ok(token.clone());
        }
        let answer: Value = self
            .http
            .post(&self.args.token_url)
            .basic_auth(&self.args.client_id, Some(&self.args.client_secret))
            .form(&[
                ("grant_type", "client_credentials"),
                ("scope", &self.args.scope),
            ])
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let token = answer["access_token"]
            .as_str()
            .context("no access_token")?
            .to_owned();
        let lifetime = answer["expires_in"]
            .as_u64()
            .unwrap_or(0)
            .saturating_sub(60);
        *slot = Some((
            token.clone(),
            Instant::now() + Duration::from_secs(lifetime),
        ));
        Ok(token)
    }

    async fn call(&self) -> anyhow::Result<Value> {
        let token = self.token().await?;
        let body: Value = self
            .http
            .get(format!("{}/data", self.args.stub_url))
            .bearer_auth(token)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let name = body
            .pointer("/user/name")
            .cloned()
            .context("no user.name")?;
        Ok(json!({ "name": name }))
    }
}

async fn bare_run(State(bare): State<Arc<Bare>>) -> Response {
    match bare.call().await {
        Ok(body) => Json(body).into_response(),
        Err(err) => (StatusCode::BAD_GATEWAY, err.to_string()).into_response(),
    }
}
