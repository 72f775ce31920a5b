//! Benchmark 2: the system flow `oauth_server_login` (cached) → `http_connector` (stub API) →
//! `extract_json` → `stop`, started through `POST /api/flows/{id}/runs` with every monitor record
//! persisted in SQLite, against the bare axum reference and the same flow in Node-RED and in n8n,
//! with the same load generator, in the same run. At each concurrency level the targets take turns, one
//! measurement each per repetition, so drift of the machine hits all of them alike.

use std::sync::Arc;

use anyhow::bail;
use serde_json::Value;

use super::{CC_CLIENT, CC_SCOPE, CC_SECRET, Ctx};
use crate::load::{self, Check, Load, MakeRequest, Outcome};
use crate::procs::{API_KEY, N8n, N8nSetup, NodeRed, Tokenflow, TokenflowSetup, spawn_self};
use crate::servers::EXPECTED_NAME;
use crate::stats;

pub const TARGETS: [&str; 4] = ["tokenflow", "bare axum (limit)", "Node-RED", "n8n"];
/// The index of n8n in [`TARGETS`] (the last one: it may be missing).
const N8N: usize = 3;

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
    /// The same for n8n's OAuth2 credential, and how long n8n took from `n8n start` to its
    /// webhook's first right answer.
    pub n8n_token_requests: usize,
    pub n8n_runs: u64,
    pub n8n_ready_after: Option<std::time::Duration>,
    /// Why n8n was not measured, when it could not be started.
    pub n8n_missing: Option<String>,
}

pub async fn run(ctx: &Ctx) -> anyhow::Result<Throughput> {
    let tokenflow = Tokenflow::start(&ctx.tokenflow, &setup(ctx)).await?;
    let bare = spawn_self_bare(ctx).await?;
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

    let tokenflow_url = tokenflow.url("/api/flows/bench_call/runs");
    let make_tokenflow: MakeRequest = Arc::new(move |client| {
        client
            .post(&tokenflow_url)
            .bearer_auth(API_KEY)
            .header("content-type", "application/json")
            .body("{}")
    });
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
    let red_url = format!("{}/run", node_red.process.url);
    let make_red: MakeRequest = Arc::new(move |client| client.post(&red_url));
    let mut targets = vec![
        (make_tokenflow, check_tokenflow),
        (make_bare, check_name.clone()),
        (make_red, check_name.clone()),
    ];
    if let Some(n8n) = &n8n {
        let n8n_url = format!("{}/webhook/run", n8n.process.url);
        let make_n8n: MakeRequest = Arc::new(move |client| client.post(&n8n_url));
        targets.push((make_n8n, check_name));
    }

    let before = ctx.idp.token_requests(node_red_client).await.len();
    let mut red_runs = 0;
    // The readiness check's run is one of n8n's runs.
    let mut n8n_runs = u64::from(n8n.is_some());
    let mut result = Throughput {
        levels: Vec::new(),
        node_red_token_requests: 0,
        node_red_runs: 0,
        n8n_token_requests: 0,
        n8n_runs: 0,
        n8n_ready_after: n8n.as_ref().map(|n8n| n8n.ready_after),
        n8n_missing,
    };
    for &concurrency in &ctx.plan.levels {
        let client = load::client(concurrency)?;
        let mut figures = vec![Figures::default(); TARGETS.len()];
        for repeat in 0..ctx.plan.repeats {
            for k in 0..TARGETS.len() {
                // Rotate the order per repetition so no target always runs first.
                let t = (k + repeat) % TARGETS.len();
                let Some((make, check)) = targets.get(t) else {
                    continue;
                };
                let warm = Load {
                    concurrency,
                    requests: u64::MAX,
                    duration: ctx.plan.warmup,
                };
                let warmed = load::run(&client, make, check, warm).await;
                let measured = load::run(
                    &client,
                    make,
                    check,
                    Load {
                        duration: ctx.plan.measure,
                        ..warm
                    },
                )
                .await;
                if t == 2 {
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
    drop((tokenflow, bare, node_red, n8n));
    Ok(result)
}

async fn spawn_self_bare(ctx: &Ctx) -> anyhow::Result<crate::procs::Process> {
    // The secret travels in the child's environment, never on its command line.
    let token_url = ctx.idp.token_url();
    let stub = ctx.stub.url.clone();
    spawn_self(
        &[
            "bare",
            "--token-url",
            &token_url,
            "--client-id",
            CC_CLIENT,
            "--scope",
            CC_SCOPE,
            "--stub-url",
            &stub,
        ],
        &[("BENCH_CLIENT_SECRET", CC_SECRET)],
        "the bare reference",
    )
    .await
}
