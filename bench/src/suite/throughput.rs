//! Benchmark 2: the system flow `oauth_server_login` (cached) → `http_connector` (stub API) →
//! `extract_json` → `stop`, started through `POST /api/flows/{id}/runs` with every monitor record
//! persisted in SQLite, against the bare axum reference, the durable reference (the bare one
//! plus one SQLite write per request) and the same flow in Node-RED and in n8n, with the same load
//! generator, in the same run; and tokenflow on PostgreSQL, one instance and three sharing one
//! database (a fresh database per measurement). At each concurrency level the targets take
//! turns, one measurement each per repetition, so drift of the machine hits all of them alike.
//! In the first repetition `perf` profiles tokenflow's (SQLite) server during its measurement.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use anyhow::{Context as _, bail};
use serde_json::Value;
use sqlx::Connection as _;

use super::{CC_CLIENT, CC_SCOPE, CC_SECRET, Ctx};
use crate::load::{self, Check, Load, MakeRequest, Outcome};
use crate::procs::{
    API_KEY, N8n, N8nSetup, NodeRed, Process, Tokenflow, TokenflowSetup, spawn_self,
};
use crate::profile::{self, Profile};
use crate::servers::EXPECTED_NAME;
use crate::stats;

pub const TARGETS: [&str; 7] = [
    "tokenflow",
    "bare axum (limit)",
    "Node-RED",
    "durable reference",
    "tokenflow, PostgreSQL",
    "tokenflow, PostgreSQL, 3 instances",
    "n8n",
];
/// Indexes into [`TARGETS`].
pub const TOKENFLOW: usize = 0;
pub const BARE: usize = 1;
pub const NODE_RED: usize = 2;
pub const DURABLE: usize = 3;
pub const POSTGRES: usize = 4;
pub const POSTGRES_3: usize = 5;
/// n8n, the last one: it may be missing.
pub const N8N: usize = 6;

/// The flow under test, calling the stub at `stub_url`.
pub fn flow(stub_url: &str) -> String {
    format!(
        r#"id: bench_call
description: Client credentials (cached), the stub API, one field of its answer.
variables:
  token: {{}}
  http_status: {{}}
  body: {{}}
  name: {{}}
actions:
  get_token:
    type: oauth_server_login
    oauth_server: bench-service
    output: {{ access_token: token }}
  call_api:
    type: http_connector
    input: {{ url: "{stub_url}/data", bearer_token: {{ var: token }} }}
    output: {{ http_status_code: http_status, content: body }}
  read_name:
    type: extract_json
    input: {{ json: {{ var: body }}, path: "$.user.name" }}
    output: {{ value: name }}
  failed: {{ type: stop }}
steps:
  - {{ from: start, to: get_token }}
  - {{ from: get_token, to: call_api, when: successful }}
  - {{ from: get_token, to: failed, when: not_successful }}
  - {{ from: call_api, to: read_name, when: "http_status == 200" }}
  - {{ from: call_api, to: failed }}
  - {{ from: read_name, to: stop }}
"#
    )
}

/// The tokenflow set-up shared with the footprint benchmark.
pub fn setup(ctx: &Ctx) -> TokenflowSetup {
    TokenflowSetup {
        servers: format!(
            "[oauth_servers.bench-service]\nclient_id = \"{CC_CLIENT}\"\nclient_secret = {{ env = \"BENCH_SERVICE_SECRET\" }}\ntoken_url = \"{}\"\nscope = \"{CC_SCOPE}\"\n",
            ctx.idp.token_url()
        ),
        flows: vec![("bench_call.yaml".to_owned(), flow(&ctx.stub.url))],
        env: vec![("BENCH_SERVICE_SECRET".to_owned(), CC_SECRET.to_owned())],
        database_url: None,
    }
}

/// Per concurrency level, per target: the repetitions' figures.
#[derive(Debug, Clone, Default)]
pub struct Figures {
    pub throughput: Vec<f64>,
    pub p50_ms: Vec<f64>,
    pub p99_ms: Vec<f64>,
    pub requests: u64,
    pub errors: u64,
    pub first_error: Option<String>,
}

impl Figures {
    fn add(&mut self, outcome: &Outcome) {
        self.throughput.push(outcome.throughput());
        self.p50_ms.push(stats::ms(outcome.p50()));
        self.p99_ms.push(stats::ms(outcome.p99()));
        self.requests += outcome.latencies.len() as u64;
        self.errors += outcome.errors;
        if self.first_error.is_none() {
            self.first_error.clone_from(&outcome.first_error);
        }
    }
}

#[derive(Debug, Clone)]
pub struct Throughput {
    /// `(concurrency, [figures per target, in TARGETS order])`.
    pub levels: Vec<(usize, Vec<Figures>)>,
    /// Token requests the IdP saw from Node-RED's client during the benchmark, and its runs.
    pub node_red_token_requests: usize,
    pub node_red_runs: u64,
    /// The size of the benchmark flow's encrypted run state in tokenflow's SQLite database
    /// (bytes), measured after one run: the row size of the durable reference.
    pub state_bytes: usize,
    /// Whether the PostgreSQL rows were measured.
    pub postgres: bool,
    /// The same for n8n's OAuth2 credential, and how long n8n took from `n8n start` to its
    /// webhook's first right answer.
    pub n8n_token_requests: usize,
    pub n8n_runs: u64,
    pub n8n_ready_after: Option<std::time::Duration>,
    /// Why n8n was not measured, when it could not be started.
    pub n8n_missing: Option<String>,
    /// Per concurrency level: a CPU profile of the tokenflow (SQLite) server during its
    /// measurement in the first repetition, or why there is none.
    pub profiles: Vec<(usize, Result<Profile, String>)>,
}

pub async fn run(ctx: &Ctx) -> anyhow::Result<Throughput> {
    let tokenflow = Tokenflow::start(&ctx.tokenflow, &setup(ctx)).await?;
    let tokenflow_url = tokenflow.url("/api/flows/bench_call/runs");
    let state_bytes = measure_state(&tokenflow, &tokenflow_url).await?;
    let bare = spawn_self_bare(ctx, None).await?;
    let durable_db = tempfile::tempdir()?;
    let durable = spawn_self_bare(
        ctx,
        Some((&durable_db.path().join("durable.db"), state_bytes)),
    )
    .await?;
    let node_red_client = "bench-node-red";
    ctx.idp
        .client_credentials_client(node_red_client, CC_SECRET)
        .await;
    let node_red = NodeRed::start(
        &ctx.peers,
        &[
            ("IDP_TOKEN_URL", ctx.idp.token_url()),
            ("CLIENT_ID", node_red_client.to_owned()),
            ("CLIENT_SECRET", CC_SECRET.to_owned()),
            ("SCOPE", CC_SCOPE.to_owned()),
            ("STUB_URL", ctx.stub.url.clone()),
        ],
    )
    .await?;
    let n8n_client = "bench-n8n";
    ctx.idp
        .client_credentials_client(n8n_client, CC_SECRET)
        .await;
    // Counted from here: the token n8n fetches for its first (readiness) run is included.
    let n8n_before = ctx.idp.token_requests(n8n_client).await.len();
    let n8n_setup = N8nSetup {
        token_url: ctx.idp.token_url(),
        client_id: n8n_client.to_owned(),
        client_secret: CC_SECRET.to_owned(),
        scope: CC_SCOPE.to_owned(),
        stub_url: ctx.stub.url.clone(),
    };
    eprintln!("    (importing the n8n workflow and starting n8n)");
    // n8n is measured when it runs here; when it does not (not installed, a Node.js it refuses),
    // the report says why instead of dropping the other targets' figures.
    let (n8n, n8n_missing) = match N8n::start(&ctx.peers, &n8n_setup).await {
        Ok(n8n) => (Some(n8n), None),
        Err(err) => {
            eprintln!("warning: n8n is not measured: {err:#}");
            (None, Some(format!("{err:#}")))
        }
    };

    let make_tokenflow = tokenflow_requests(vec![tokenflow_url]);
    let check_tokenflow: Check = Arc::new(|status, body| {
        status == 200
            && serde_json::from_slice::<Value>(body).is_ok_and(|run| {
                run["status"] == "completed" && run["variables"]["name"] == EXPECTED_NAME
            })
    });
    let check_name: Check = Arc::new(|status, body| {
        status == 200
            && serde_json::from_slice::<Value>(body).is_ok_and(|v| v["name"] == EXPECTED_NAME)
    });
    let bare_url = format!("{}/run", bare.url);
    let make_bare: MakeRequest = Arc::new(move |client| client.post(&bare_url));
    let durable_url = format!("{}/run", durable.url);
    let make_durable: MakeRequest = Arc::new(move |client| client.post(&durable_url));
    let red_url = format!("{}/run", node_red.process.url);
    let make_red: MakeRequest = Arc::new(move |client| client.post(&red_url));
    let mut targets = vec![
        Target::Running(make_tokenflow, check_tokenflow.clone()),
        Target::Running(make_bare, check_name.clone()),
        Target::Running(make_red, check_name.clone()),
        Target::Running(make_durable, check_name.clone()),
        Target::Postgres(1),
        Target::Postgres(3),
    ];
    if let Some(n8n) = &n8n {
        let n8n_url = format!("{}/webhook/run", n8n.process.url);
        let make_n8n: MakeRequest = Arc::new(move |client| client.post(&n8n_url));
        targets.push(Target::Running(make_n8n, check_name));
    }
    let postgres = ctx.postgres.as_deref();

    let before = ctx.idp.token_requests(node_red_client).await.len();
    let mut red_runs = 0;
    // The readiness check's run is one of n8n's runs.
    let mut n8n_runs = u64::from(n8n.is_some());
    let mut result = Throughput {
        levels: Vec::new(),
        node_red_token_requests: 0,
        node_red_runs: 0,
        state_bytes,
        postgres: postgres.is_some(),
        n8n_token_requests: 0,
        n8n_runs: 0,
        n8n_ready_after: n8n.as_ref().map(|n8n| n8n.ready_after),
        n8n_missing,
        profiles: Vec::new(),
    };
    for &concurrency in &ctx.plan.levels {
        let client = load::client(concurrency)?;
        let mut figures = vec![Figures::default(); TARGETS.len()];
        for repeat in 0..ctx.plan.repeats {
            for k in 0..TARGETS.len() {
                // Rotate the order per repetition so no target always runs first.
                let t = (k + repeat) % TARGETS.len();
                let Some(target) = targets.get(t) else {
                    continue;
                };
                let warm = Load {
                    concurrency,
                    requests: u64::MAX,
                    duration: ctx.plan.warmup,
                };
                let measure = Load {
                    duration: ctx.plan.measure,
                    ..warm
                };
                let (warmed, measured) = match target {
                    Target::Running(make, check) if t == TOKENFLOW && repeat == 0 => {
                        let warmed = load::run(&client, make, check, warm).await;
                        // The profile covers this measurement only: it ends before the next
                        // target's turn.
                        let recording = profile::record(tokenflow.process.pid()?, measure.duration);
                        let measured = load::run(&client, make, check, measure).await;
                        let profile = match recording {
                            Ok(recording) => recording.finish().await,
                            Err(why) => Err(why),
                        };
                        if let Err(why) = &profile {
                            eprintln!("warning: no profile at concurrency {concurrency}: {why}");
                        }
                        result.profiles.push((concurrency, profile));
                        (warmed, measured)
                    }
                    Target::Running(make, check) => {
                        let warmed = load::run(&client, make, check, warm).await;
                        (warmed, load::run(&client, make, check, measure).await)
                    }
                    Target::Postgres(instances) => {
                        let Some(server) = postgres else { continue };
                        let cluster = PostgresCluster::start(ctx, server, *instances)
                            .await
                            .with_context(|| {
                                format!("{} at concurrency {concurrency}", TARGETS[t])
                            })?;
                        let make = tokenflow_requests(cluster.urls());
                        let warmed = load::run(&client, &make, &check_tokenflow, warm).await;
                        let measured = load::run(&client, &make, &check_tokenflow, measure).await;
                        cluster.stop().await?;
                        (warmed, measured)
                    }
                };
                if t == NODE_RED {
                    red_runs += warmed.latencies.len() as u64 + measured.latencies.len() as u64;
                }
                if t == N8N {
                    n8n_runs += warmed.latencies.len() as u64 + measured.latencies.len() as u64;
                }
                if measured.latencies.is_empty() {
                    bail!(
                        "{} answered nothing right at concurrency {concurrency}: {}",
                        TARGETS[t],
                        measured.first_error.unwrap_or_default()
                    );
                }
                figures[t].add(&measured);
            }
        }
        result.levels.push((concurrency, figures));
    }
    result.node_red_token_requests = ctx.idp.token_requests(node_red_client).await.len() - before;
    result.node_red_runs = red_runs;
    result.n8n_token_requests = ctx.idp.token_requests(n8n_client).await.len() - n8n_before;
    result.n8n_runs = n8n_runs;
    drop((tokenflow, bare, durable, node_red, durable_db, n8n));
    Ok(result)
}

/// A target the suite keeps running, or tokenflow on PostgreSQL with this many instances,
/// started on a fresh database for each measurement.
enum Target {
    Running(MakeRequest, Check),
    Postgres(usize),
}

/// Starts of the benchmark flow, round-robin over `urls` (one per instance).
pub(crate) fn tokenflow_requests(urls: Vec<String>) -> MakeRequest {
    let next = AtomicUsize::new(0);
    Arc::new(move |client| {
        let url = &urls[next.fetch_add(1, Ordering::Relaxed) % urls.len()];
        client
            .post(url)
            .bearer_auth(API_KEY)
            .header("content-type", "application/json")
            .body("{}")
    })
}

/// Runs the flow once and reads the size of its stored (encrypted) state from tokenflow's SQLite
/// database: the durable reference writes rows of this size.
async fn measure_state(tokenflow: &Tokenflow, url: &str) -> anyhow::Result<usize> {
    let answer: Value = load::client(1)?
        .post(url)
        .bearer_auth(API_KEY)
        .json(&serde_json::json!({}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let id = answer["id"]
        .as_str()
        .context("the run's answer has no id")?
        .to_owned();
    let db = tokenflow.data_dir().join("tokenflow.db");
    let mut connection =
        sqlx::SqliteConnection::connect(&format!("sqlite://{}?mode=ro", db.display()))
            .await
            .with_context(|| format!("cannot open {}", db.display()))?;
    let bytes: i64 = sqlx::query_scalar("SELECT length(state) FROM runs WHERE id = ?")
        .bind(&id)
        .fetch_one(&mut connection)
        .await
        .context("cannot read the run's state size")?;
    connection.close().await?;
    Ok(usize::try_from(bytes)?)
}

/// A fresh PostgreSQL database and `tokenflow serve` instances on it sharing one master key.
struct PostgresCluster {
    instances: Vec<Tokenflow>,
    server: String,
    database: String,
}

static DATABASES: AtomicU64 = AtomicU64::new(0);

impl PostgresCluster {
    async fn start(ctx: &Ctx, server: &str, instances: usize) -> anyhow::Result<PostgresCluster> {
        let database = format!(
            "tokenflow_bench_{}_{}",
            std::process::id(),
            DATABASES.fetch_add(1, Ordering::Relaxed)
        );
        let mut admin = sqlx::PgConnection::connect(server)
            .await
            .context("PostgreSQL does not answer at --postgres (TEST_POSTGRES_URL)")?;
        sqlx::query(&format!("CREATE DATABASE {database}"))
            .execute(&mut admin)
            .await
            .with_context(|| format!("cannot create the database {database}"))?;
        admin.close().await?;
        let mut cluster = PostgresCluster {
            instances: Vec::new(),
            server: server.to_owned(),
            database,
        };
        let mut url = url::Url::parse(server)?;
        url.set_path(&cluster.database);
        let mut setup = setup(ctx);
        setup.database_url = Some(url.to_string());
        // One after the other: the first migrates the database and creates the master key, the
        // others share that key (it encrypts what they all read).
        for _ in 0..instances {
            let started = Tokenflow::start(&ctx.tokenflow, &setup).await;
            let instance = match started {
                Ok(instance) => instance,
                Err(err) => {
                    cluster.stop().await?;
                    return Err(err);
                }
            };
            if cluster.instances.is_empty() {
                let key = std::fs::read_to_string(instance.data_dir().join("master.key"))
                    .context("cannot read the first instance's master key")?;
                setup
                    .env
                    .push(("TOKENFLOW_MASTER_KEY".to_owned(), key.trim().to_owned()));
            }
            cluster.instances.push(instance);
        }
        Ok(cluster)
    }

    fn urls(&self) -> Vec<String> {
        self.instances
            .iter()
            .map(|instance| instance.url("/api/flows/bench_call/runs"))
            .collect()
    }

    /// Stops the instances and drops the database.
    async fn stop(mut self) -> anyhow::Result<()> {
        for mut instance in self.instances.drain(..) {
            let _ = instance.process.child.kill().await;
        }
        let mut admin = sqlx::PgConnection::connect(&self.server).await?;
        sqlx::query(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.database
        ))
        .execute(&mut admin)
        .await
        .with_context(|| format!("cannot drop the database {}", self.database))?;
        admin.close().await?;
        Ok(())
    }
}

/// The bare reference, or with `durable` (its database, the row size) the durable one.
async fn spawn_self_bare(
    ctx: &Ctx,
    durable: Option<(&std::path::Path, usize)>,
) -> anyhow::Result<Process> {
    // The secret travels in the child's environment, never on its command line.
    let token_url = ctx.idp.token_url();
    let stub = ctx.stub.url.clone();
    let mut args = vec![
        if durable.is_some() { "durable" } else { "bare" }.to_owned(),
        "--token-url".to_owned(),
        token_url,
        "--client-id".to_owned(),
        CC_CLIENT.to_owned(),
        "--scope".to_owned(),
        CC_SCOPE.to_owned(),
        "--stub-url".to_owned(),
        stub,
    ];
    if let Some((db, state_bytes)) = durable {
        args.extend([
            "--db".to_owned(),
            db.display().to_string(),
            "--state-bytes".to_owned(),
            state_bytes.to_string(),
        ]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    spawn_self(
        &args,
        &[("BENCH_CLIENT_SECRET", CC_SECRET)],
        if durable.is_some() {
            "the durable reference"
        } else {
            "the bare reference"
        },
    )
    .await
}
