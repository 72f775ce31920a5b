//! Benchmark 3: many runs waiting at a user login in the SQLite store. Measures the server's RSS,
//! the latency of `/oauth-callback` (which finds the waiting run by `state`, exchanges the code
//! and finishes the run) and of starting one more run, at a small and a large number of waiting
//! runs. The token endpoint is the stub API's, which answers at once: the callback's figure is
//! tokenflow's own work, not an identity provider's.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::Value;

use super::Ctx;
use crate::load::{self, Check, Load, MakeRequest};
use crate::procs::{API_KEY, Tokenflow, TokenflowSetup};
use crate::stats;

const FLOW: &str = r#"id: bench_wait
description: Waits at a user login until the callback, then stops.
variables:
  token: {}
actions:
  login:
    type: oauth_user_login
    oauth_server: bench-web
    input: { scope: "profile" }
    output: { access_token: token }
steps:
  - { from: start, to: login }
  - { from: login, to: stop }
"#;

/// Figures at one number of waiting runs.
#[derive(Debug, Clone, Default)]
pub struct Level {
    pub waiting: u64,
    pub rss_mib: f64,
    pub start_p50_ms: Vec<f64>,
    pub start_p99_ms: Vec<f64>,
    pub callback_p50_ms: Vec<f64>,
    pub callback_p99_ms: Vec<f64>,
}

#[derive(Debug, Clone)]
pub struct Waiting {
    pub levels: Vec<Level>,
    /// Runs started per second while filling (concurrency 16), per fill.
    pub fill_rate: Vec<f64>,
    pub samples: u64,
}

/// The `state` parameter of a waiting run's authorization URL.
fn state_of(body: &[u8]) -> Option<String> {
    let run: Value = serde_json::from_slice(body).ok()?;
    if run["status"] != "waiting" {
        return None;
    }
    let url = url::Url::parse(run["authorization_url"].as_str()?).ok()?;
    url.query_pairs()
        .find(|(k, _)| k == "state")
        .map(|(_, v)| v.into_owned())
}

struct Server {
    tokenflow: Tokenflow,
    client: reqwest::Client,
    start_url: String,
    /// States of runs that still wait.
    states: Arc<Mutex<Vec<String>>>,
}

impl Server {
    fn start_request(&self) -> (MakeRequest, Check) {
        let url = self.start_url.clone();
        let make: MakeRequest = Arc::new(move |client| {
            client
                .post(&url)
                .bearer_auth(API_KEY)
                .header("content-type", "application/json")
                .body("{}")
        });
        let states = self.states.clone();
        let check: Check = Arc::new(move |status, body| {
            status == 201
                && state_of(body).is_some_and(|state| {
                    if let Ok(mut states) = states.lock() {
                        states.push(state);
                    }
                    true
                })
        });
        (make, check)
    }

    /// Starts `count` more waiting runs with 16 workers; returns runs per second.
    async fn fill(&self, count: u64) -> anyhow::Result<f64> {
        let (make, check) = self.start_request();
        let outcome = load::run(
            &self.client,
            &make,
            &check,
            Load {
                concurrency: 16,
                requests: count,
                duration: Duration::from_secs(3600),
            },
        )
        .await;
        if outcome.errors > 0 {
            bail!(
                "{} run starts failed: {}",
                outcome.errors,
                outcome.first_error.unwrap_or_default()
            );
        }
        Ok(outcome.throughput())
    }

    fn waiting(&self) -> u64 {
        self.states.lock().map_or(0, |s| s.len() as u64)
    }

    /// Takes `n` states spread over all waiting runs (old and new alike).
    fn take_states(&self, n: u64) -> Vec<String> {
        let Ok(mut states) = self.states.lock() else {
            return Vec::new();
        };
        let mut taken = Vec::new();
        let n = (n as usize).min(states.len());
        for i in 0..n {
            let index = (i * 7919 + 13) % states.len();
            taken.push(states.swap_remove(index));
        }
        taken
    }
}

pub async fn run(ctx: &Ctx) -> anyhow::Result<Waiting> {
    let setup = TokenflowSetup {
        servers: format!(
            "[oauth_servers.bench-web]\nclient_id = \"bench-web\"\nclient_secret = {{ env = \"BENCH_WEB_SECRET\" }}\nauthorization_url = \"{stub}/authorize\"\ntoken_url = \"{stub}/token\"\nscope = \"profile\"\n",
            stub = ctx.stub.url
        ),
        flows: vec![("bench_wait.yaml".to_owned(), FLOW.to_owned())],
        env: vec![("BENCH_WEB_SECRET".to_owned(), "bench-web-secret".to_owned())],
        database_url: None,
    };
    let tokenflow = Tokenflow::start(&ctx.tokenflow, &setup).await?;
    let server = Server {
        start_url: tokenflow.url("/api/flows/bench_wait/runs"),
        client: load::client(16)?,
        tokenflow,
        states: Arc::default(),
    };
    let samples = ctx.plan.waiting_samples;
    let mut result = Waiting {
        levels: Vec::new(),
        fill_rate: Vec::new(),
        samples,
    };
    let mut completed = 0u64;
    for target in [ctx.plan.waiting_levels.0, ctx.plan.waiting_levels.1] {
        let missing = target.saturating_sub(server.waiting());
        if missing > 0 {
            result.fill_rate.push(server.fill(missing).await?);
        }
        // Let the fill's allocations settle before reading the RSS.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let mut level = Level {
            waiting: server.waiting(),
            rss_mib: server.tokenflow.process.rss_kib()? as f64 / 1024.0,
            ..Level::default()
        };
        let one = load::client(1)?;
        for _ in 0..ctx.plan.repeats {
            let (make, check) = server.start_request();
            let started = load::run(
                &one,
                &make,
                &check,
                Load {
                    concurrency: 1,
                    requests: samples,
                    duration: Duration::from_secs(600),
                },
            )
            .await;
            if started.errors > 0 {
                bail!(
                    "run start failed: {}",
                    started.first_error.unwrap_or_default()
                );
            }
            level.start_p50_ms.push(stats::ms(started.p50()));
            level.start_p99_ms.push(stats::ms(started.p99()));

            let states = Arc::new(server.take_states(samples));
            let next = Arc::new(AtomicUsize::new(0));
            let base = server.tokenflow.url("/oauth-callback");
            let make: MakeRequest = {
                let states = states.clone();
                Arc::new(move |client| {
                    let i = next.fetch_add(1, Ordering::Relaxed) % states.len().max(1);
                    let state = states.get(i).map_or("", String::as_str);
                    let query = url::form_urlencoded::Serializer::new(String::new())
                        .append_pair("code", "bench-code")
                        .append_pair("state", state)
                        .finish();
                    client.get(format!("{base}?{query}"))
                })
            };
            let check: Check = Arc::new(|status, _| status == 200);
            let callbacks = load::run(
                &one,
                &make,
                &check,
                Load {
                    concurrency: 1,
                    requests: states.len() as u64,
                    duration: Duration::from_secs(600),
                },
            )
            .await;
            if callbacks.errors > 0 {
                bail!(
                    "callback failed: {}",
                    callbacks.first_error.unwrap_or_default()
                );
            }
            completed += callbacks.latencies.len() as u64;
            level.callback_p50_ms.push(stats::ms(callbacks.p50()));
            level.callback_p99_ms.push(stats::ms(callbacks.p99()));
        }
        result.levels.push(level);
    }
    // The callbacks really finished their runs.
    let done: Value = server
        .client
        .get(
            server
                .tokenflow
                .url("/api/runs?flow=bench_wait&status=completed&limit=1000"),
        )
        .bearer_auth(API_KEY)
        .send()
        .await?
        .json()
        .await?;
    let done = done
        .as_array()
        .or_else(|| done["runs"].as_array())
        .context("GET /api/runs answered no list")?
        .len() as u64;
    if done < completed.min(1000) {
        bail!("{completed} callbacks answered 200 but only {done} runs completed");
    }
    Ok(result)
}
