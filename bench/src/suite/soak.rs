//! The soak (`bench/run --soak DURATION`): one `tokenflow serve` on SQLite under a steady mixed
//! load for a long time, sampled every few seconds. The load is what a real installation sees at
//! once: system flows (client credentials → stub API) at a fixed rate, scripted user logins
//! against the real test IdP that store their grants in the vault, vault callers on entries whose
//! access tokens live 60 s (so the vault refreshes all the time, and the IdP rotates refresh
//! tokens), a schedule firing every second, and bad callbacks (unknown `state`, provider errors).
//!
//! The point is the shape over time, not speed: RSS and open descriptors must stay flat, the WAL
//! bounded, no request may fail and no run may be lost. Every figure is read from outside the
//! process (`/proc`, file sizes, the API's answers, the database after the load stopped).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde_json::{Value, json};
use sqlx::Connection as _;
use tokenflow_testkit::{Decision, sign_in};

use super::{CC_CLIENT, CC_SCOPE, CC_SECRET, Ctx};
use crate::procs::{API_KEY, Tokenflow, TokenflowSetup};
use crate::stats;

/// The web client of the soak's user logins; its access tokens live [`TOKEN_TTL`] seconds.
const WEB_CLIENT: &str = "soak-web";
const WEB_SECRET: &str = "soak-web-secret";
const TOKEN_TTL: u64 = 60;
/// Vault entries the vault callers read, in turn: stored once at the start, then only refreshed
/// (the scripted logins store into entries of their own, so they never renew these).
pub const ENTRIES: usize = 4;

const LOGIN: &str = r#"id: soak_login
description: A person signs in; the grant goes into the vault under the entry given as input.
variables:
  entry: { required: true }
  t: {}
  r: {}
  e: {}
actions:
  login:
    type: oauth_user_login
    oauth_server: soak-web
    input: { scope: "openid offline_access api:read" }
    output: { access_token: t, refresh_token: r, expires_in: e }
  store:
    type: vault_store
    oauth_server: soak-web
    input: { name: { var: entry }, access_token: { var: t }, refresh_token: { var: r }, expires_in: { var: e } }
steps:
  - { from: start, to: login }
  - { from: login, to: store, when: successful }
  - { from: store, to: stop }
"#;

const USE: &str = r#"id: soak_use
description: One access token from a vault entry.
variables:
  entry: { required: true }
  t: {}
  code: {}
actions:
  get:
    type: vault_get_token
    input: { name: { var: entry } }
    output: { access_token: t, status_code: code }
steps:
  - { from: start, to: get }
  - { from: get, to: stop }
"#;

const TICK: &str = r#"id: soak_tick
description: Fires every second.
schedule: "* * * * * *"
variables:
  n: {}
actions:
  read:
    type: extract_json
    input: { json: "{\"n\": 1}", path: "$.n" }
    output: { value: n }
steps:
  - { from: start, to: read }
  - { from: read, to: stop }
"#;

/// How long, how often to sample, and how hard.
#[derive(Debug, Clone, Copy)]
pub struct SoakPlan {
    pub duration: Duration,
    pub sample_every: Duration,
    /// System-flow runs per second (paced, not as fast as possible).
    pub system_rate: u32,
    pub login_every: Duration,
    pub vault_every: Duration,
    pub bad_callback_every: Duration,
}

impl SoakPlan {
    pub fn new(duration: Duration, quick: bool) -> SoakPlan {
        let sample_every = if quick {
            Duration::from_secs(1)
        } else {
            // About 120 points whatever the duration, never below 5 s.
            (duration / 120).max(Duration::from_secs(5))
        };
        SoakPlan {
            duration,
            sample_every,
            system_rate: if quick { 10 } else { 50 },
            login_every: Duration::from_secs(3),
            vault_every: Duration::from_millis(100),
            bad_callback_every: Duration::from_millis(500),
        }
    }
}

/// One point of the time series.
#[derive(Debug, Clone, Default)]
pub struct Sample {
    pub at_s: f64,
    pub rss_mib: f64,
    pub fds: u64,
    pub db_mib: f64,
    pub wal_mib: f64,
    /// Latency of the system-flow runs answered since the previous sample.
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// Good answers of every kind per second since the previous sample, and the failures so far.
    pub answers_per_s: f64,
    pub errors_total: u64,
}

/// What each kind of load did over the whole soak.
#[derive(Debug, Clone, Default)]
pub struct Totals {
    pub system_runs: u64,
    pub logins: u64,
    pub vault_calls: u64,
    pub bad_callbacks: u64,
    pub scheduled_runs: u64,
    /// Refresh-token grants the IdP answered for the soak's web client.
    pub refreshes: u64,
}

#[derive(Debug, Clone, Default)]
pub struct Soak {
    pub plan_duration: Duration,
    pub elapsed: Duration,
    pub samples: Vec<Sample>,
    pub totals: Totals,
    pub errors: u64,
    /// The first few failures, verbatim.
    pub first_errors: Vec<String>,
    /// Runs the API reported finished that the database does not hold as completed, runs left
    /// running or waiting, and seconds the schedule missed.
    pub lost_runs: u64,
    pub stuck_runs: u64,
    pub missed_ticks: i64,
    /// `ERROR` lines in the server's log.
    pub log_errors: u64,
}

/// Shared by the load tasks and the sampler.
#[derive(Default)]
struct Meter {
    latencies: Vec<Duration>,
    requests: u64,
    errors: u64,
    first_errors: Vec<String>,
    totals: Totals,
    /// Ids of system runs the API answered as completed.
    completed: Vec<String>,
}

impl Meter {
    fn fail(&mut self, what: &str, error: impl std::fmt::Display) {
        self.errors += 1;
        if self.first_errors.len() < 5 {
            let text = error.to_string();
            self.first_errors.push(format!(
                "{what}: {}",
                text.chars().take(300).collect::<String>()
            ));
        }
    }
}

type Shared = Arc<Mutex<Meter>>;

fn with<T>(meter: &Shared, f: impl FnOnce(&mut Meter) -> T) -> Option<T> {
    meter.lock().ok().map(|mut m| f(&mut m))
}

pub async fn run(ctx: &Ctx, plan: SoakPlan) -> anyhow::Result<Soak> {
    let stub = &ctx.stub.url;
    let setup = TokenflowSetup {
        // Every run is kept: the soak checks afterwards that none was lost, which a retention
        // purge (hourly) would blur. The database therefore grows with the runs; the report
        // gives the rate, and retention's own tests show the bound.
        servers: format!(
            "retention = {{ max_age = \"off\", max_runs_per_flow = 0 }}\n\n[oauth_servers.bench-service]\nclient_id = \"{CC_CLIENT}\"\nclient_secret = {{ env = \"SOAK_CC_SECRET\" }}\ntoken_url = \"{token}\"\nscope = \"{CC_SCOPE}\"\n\n[oauth_servers.soak-web]\nclient_id = \"{WEB_CLIENT}\"\nclient_secret = {{ env = \"SOAK_WEB_SECRET\" }}\nissuer = \"{issuer}\"\n",
            token = ctx.idp.token_url(),
            issuer = ctx.idp.issuer(),
        ),
        flows: vec![
            ("bench_call.yaml".to_owned(), super::throughput::flow(stub)),
            ("soak_login.yaml".to_owned(), LOGIN.to_owned()),
            ("soak_use.yaml".to_owned(), USE.to_owned()),
            ("soak_tick.yaml".to_owned(), TICK.to_owned()),
        ],
        env: vec![
            ("SOAK_CC_SECRET".to_owned(), CC_SECRET.to_owned()),
            ("SOAK_WEB_SECRET".to_owned(), WEB_SECRET.to_owned()),
        ],
        database_url: None,
    };
    let tokenflow = Arc::new(Tokenflow::start(&ctx.tokenflow, &setup).await?);
    let callback = tokenflow.url("/oauth-callback");
    ctx.idp
        .web_client(
            WEB_CLIENT,
            WEB_SECRET,
            &callback,
            json!({ "rotate_refresh_token": true, "access_token_ttl": TOKEN_TTL }),
        )
        .await;
    let http = crate::load::client(16)?;
    // Every vault entry exists before the vault callers start.
    for entry in 0..ENTRIES {
        login(&http, &tokenflow, &callback, &entry_name(entry))
            .await
            .with_context(|| format!("the first sign-in of vault entry {entry}"))?;
    }
    let meter: Shared = Arc::default();
    let begun = Instant::now();
    let deadline = begun + plan.duration;
    let mut tasks = tokio::task::JoinSet::new();

    // System flows, paced: one worker per 10 runs/s, each on its own interval.
    let workers = plan.system_rate.div_ceil(10).max(1);
    let every = Duration::from_secs_f64(f64::from(workers) / f64::from(plan.system_rate.max(1)));
    for _ in 0..workers {
        let (http, tokenflow, meter) = (http.clone(), tokenflow.clone(), meter.clone());
        tasks.spawn(paced(every, deadline, move || {
            let (http, tokenflow, meter) = (http.clone(), tokenflow.clone(), meter.clone());
            async move { system_run(&http, &tokenflow, &meter).await }
        }));
    }
    {
        let (http, tokenflow, meter, callback) = (
            http.clone(),
            tokenflow.clone(),
            meter.clone(),
            callback.clone(),
        );
        let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        tasks.spawn(paced(plan.login_every, deadline, move || {
            let (http, tokenflow, meter, callback) = (
                http.clone(),
                tokenflow.clone(),
                meter.clone(),
                callback.clone(),
            );
            let entry = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % ENTRIES;
            async move {
                let entry = format!("soak-login-{entry}");
                match login(&http, &tokenflow, &callback, &entry).await {
                    Ok(()) => with(&meter, |m| {
                        m.requests += 1;
                        m.totals.logins += 1;
                    }),
                    Err(err) => with(&meter, |m| m.fail("user login", format!("{err:#}"))),
                };
            }
        }));
    }
    {
        let (http, tokenflow, meter) = (http.clone(), tokenflow.clone(), meter.clone());
        let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        tasks.spawn(paced(plan.vault_every, deadline, move || {
            let (http, tokenflow, meter) = (http.clone(), tokenflow.clone(), meter.clone());
            let entry = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % ENTRIES;
            async move { vault_call(&http, &tokenflow, &meter, entry).await }
        }));
    }
    {
        let (http, tokenflow, meter) = (http.clone(), tokenflow.clone(), meter.clone());
        let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        tasks.spawn(paced(plan.bad_callback_every, deadline, move || {
            let (http, tokenflow, meter) = (http.clone(), tokenflow.clone(), meter.clone());
            let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            async move { bad_callback(&http, &tokenflow, &meter, n).await }
        }));
    }

    let data = tokenflow.data_dir();
    let pid = tokenflow.process.pid()?;
    let mut samples = Vec::new();
    let mut ticker = tokio::time::interval(plan.sample_every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await;
    let mut previous = Instant::now();
    while Instant::now() < deadline {
        ticker.tick().await;
        let interval = previous.elapsed().as_secs_f64().max(1e-3);
        previous = Instant::now();
        let (mut latencies, requests, errors_total) = with(&meter, |m| {
            let taken = std::mem::take(&mut m.latencies);
            let requests = std::mem::take(&mut m.requests);
            (taken, requests, m.errors)
        })
        .unwrap_or_default();
        latencies.sort_unstable();
        samples.push(Sample {
            at_s: begun.elapsed().as_secs_f64(),
            rss_mib: crate::procs::rss_kib(pid)? as f64 / 1024.0,
            fds: open_fds(pid)?,
            db_mib: file_mib(&data.join("tokenflow.db")),
            wal_mib: file_mib(&data.join("tokenflow.db-wal")),
            p50_ms: stats::ms(stats::percentile(&latencies, 50.0)),
            p99_ms: stats::ms(stats::percentile(&latencies, 99.0)),
            answers_per_s: requests as f64 / interval,
            errors_total,
        });
        eprintln!(
            "    {:>6.0} s  rss {:>6.1} MiB  fds {:>4}  db {:>7.1} MiB  wal {:>5.1} MiB  p99 {:>6.1} ms  errors {}",
            begun.elapsed().as_secs_f64(),
            samples.last().map_or(0.0, |s| s.rss_mib),
            samples.last().map_or(0, |s| s.fds),
            samples.last().map_or(0.0, |s| s.db_mib),
            samples.last().map_or(0.0, |s| s.wal_mib),
            samples.last().map_or(0.0, |s| s.p99_ms),
            errors_total,
        );
    }
    while let Some(joined) = tasks.join_next().await {
        if let Err(err) = joined {
            with(&meter, |m| m.fail("load task", err));
        }
    }
    let elapsed = begun.elapsed();
    let refreshes = ctx
        .idp
        .token_requests(WEB_CLIENT)
        .await
        .iter()
        .filter(|r| r.grant_type.as_deref() == Some("refresh_token") && r.error.is_none())
        .count() as u64;
    let meter = Arc::try_unwrap(meter)
        .ok()
        .and_then(|m| m.into_inner().ok())
        .context("the load tasks still hold the meter")?;
    let mut soak = Soak {
        plan_duration: plan.duration,
        elapsed,
        samples,
        errors: meter.errors,
        first_errors: meter.first_errors,
        totals: Totals {
            refreshes,
            ..meter.totals
        },
        ..Soak::default()
    };
    check_runs(&tokenflow, &meter.completed, &mut soak).await?;
    soak.log_errors = std::fs::read_to_string(tokenflow.log_path())
        .map(|log| log.lines().filter(|l| l.contains(" ERROR ")).count() as u64)
        .unwrap_or(0);
    Ok(soak)
}

/// Calls `step` every `every` until `deadline` (a slow answer delays the next call, it never
/// piles them up).
async fn paced<F, Fut>(every: Duration, deadline: Instant, step: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        if Instant::now() >= deadline {
            return;
        }
        step().await;
    }
}

async fn system_run(http: &reqwest::Client, tokenflow: &Tokenflow, meter: &Shared) {
    let begun = Instant::now();
    let answer = post_run(http, tokenflow, "bench_call", json!({})).await;
    match answer {
        Ok((200, run)) if run["status"] == "completed" && run["variables"]["name"].is_string() => {
            with(meter, |m| {
                m.latencies.push(begun.elapsed());
                m.requests += 1;
                m.totals.system_runs += 1;
                if let Some(id) = run["id"].as_str() {
                    m.completed.push(id.to_owned());
                }
            });
        }
        Ok((status, run)) => {
            with(meter, |m| {
                m.fail("system flow", format!("HTTP {status}: {run}"))
            });
        }
        Err(err) => {
            with(meter, |m| m.fail("system flow", format!("{err:#}")));
        }
    }
}

async fn vault_call(http: &reqwest::Client, tokenflow: &Tokenflow, meter: &Shared, entry: usize) {
    let answer = post_run(
        http,
        tokenflow,
        "soak_use",
        json!({ "entry": entry_name(entry) }),
    )
    .await;
    match answer {
        Ok((200, run)) if run["status"] == "completed" && run["variables"]["code"] == 0 => {
            with(meter, |m| {
                m.requests += 1;
                m.totals.vault_calls += 1;
            });
        }
        Ok((status, run)) => {
            with(meter, |m| {
                m.fail("vault_get_token", format!("HTTP {status}: {run}"))
            });
        }
        Err(err) => {
            with(meter, |m| m.fail("vault_get_token", format!("{err:#}")));
        }
    }
}

/// Callbacks an attacker or a confused browser sends: an unknown `state`, a provider error for
/// an unknown `state`, no parameters at all. Each must be refused with 400 and change nothing.
async fn bad_callback(http: &reqwest::Client, tokenflow: &Tokenflow, meter: &Shared, n: usize) {
    let query = match n % 3 {
        0 => format!("code=stolen-code-{n}&state=unknown-state-{n}"),
        1 => format!("error=access_denied&state=unknown-state-{n}"),
        _ => String::new(),
    };
    let answer = http
        .get(tokenflow.url(&format!("/oauth-callback?{query}")))
        .send()
        .await;
    match answer {
        Ok(response) if response.status() == 400 => {
            with(meter, |m| {
                m.requests += 1;
                m.totals.bad_callbacks += 1;
            });
        }
        Ok(response) => {
            let status = response.status();
            with(meter, |m| {
                m.fail("bad callback", format!("HTTP {status}, 400 expected"))
            });
        }
        Err(err) => {
            with(meter, |m| m.fail("bad callback", err));
        }
    }
}

fn entry_name(entry: usize) -> String {
    format!("soak-{entry}")
}

async fn post_run(
    http: &reqwest::Client,
    tokenflow: &Tokenflow,
    flow: &str,
    inputs: Value,
) -> anyhow::Result<(u16, Value)> {
    let response = http
        .post(tokenflow.url(&format!("/api/flows/{flow}/runs")))
        .bearer_auth(API_KEY)
        .json(&inputs)
        .send()
        .await?;
    let status = response.status().as_u16();
    Ok((status, response.json().await?))
}

/// Starts the login flow for vault entry `entry`, signs alice in at the real IdP and follows the
/// redirect to the callback; the run must complete with the grant stored.
async fn login(
    http: &reqwest::Client,
    tokenflow: &Tokenflow,
    callback: &str,
    entry: &str,
) -> anyhow::Result<()> {
    let (status, run) = post_run(http, tokenflow, "soak_login", json!({ "entry": entry })).await?;
    let authorize = run["authorization_url"]
        .as_str()
        .with_context(|| format!("the login flow answered {status} without waiting: {run}"))?
        .to_owned();
    let run_id = run["id"].as_str().unwrap_or_default().to_owned();
    let landed = sign_in(
        &authorize,
        callback,
        "alice",
        "alice-password",
        Decision::Allow,
    )
    .await;
    let answer = http.get(landed.as_str()).send().await?;
    if answer.status() != 200 {
        bail!("the callback answered {}", answer.status());
    }
    let run: Value = http
        .get(tokenflow.url(&format!("/api/runs/{run_id}")))
        .bearer_auth(API_KEY)
        .send()
        .await?
        .json()
        .await?;
    if run["status"] != "completed" {
        bail!("the login run ended {}: {}", run["status"], run["error"]);
    }
    Ok(())
}

/// After the load: every system run the API answered as completed is in the database as
/// completed, no run is left running or waiting, and the schedule fired once per second.
async fn check_runs(
    tokenflow: &Tokenflow,
    completed: &[String],
    soak: &mut Soak,
) -> anyhow::Result<()> {
    // Let the last scheduled firing and any write in flight settle.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let path = tokenflow.data_dir().join("tokenflow.db");
    let url = format!("sqlite://{}?mode=ro", path.display());
    let mut db = sqlx::SqliteConnection::connect(&url)
        .await
        .with_context(|| format!("cannot open {} read-only", path.display()))?;
    let rows: Vec<(String, String)> = sqlx::query_as("SELECT id, status FROM runs")
        .fetch_all(&mut db)
        .await?;
    let stored: HashSet<&str> = rows
        .iter()
        .filter(|(_, status)| status == "completed")
        .map(|(id, _)| id.as_str())
        .collect();
    soak.lost_runs = completed
        .iter()
        .filter(|id| !stored.contains(id.as_str()))
        .count() as u64;
    soak.stuck_runs = rows
        .iter()
        .filter(|(_, status)| status == "running" || status == "waiting")
        .count() as u64;
    // The scheduler claims one firing per due second (`schedule_firings`); a second without one
    // was missed, a firing whose run did not complete was lost.
    let (first, last, firings, finished): (Option<i64>, Option<i64>, i64, i64) = sqlx::query_as(
        "SELECT MIN(f.due), MAX(f.due), COUNT(*), COUNT(r.id) FROM schedule_firings f \
         LEFT JOIN runs r ON r.id = f.run_id AND r.status = 'completed' \
         WHERE f.flow_id = 'soak_tick'",
    )
    .fetch_one(&mut db)
    .await?;
    soak.totals.scheduled_runs = finished as u64;
    soak.missed_ticks = match (first, last) {
        (Some(first), Some(last)) => last - first + 1 - firings,
        _ => 0,
    };
    soak.lost_runs += (firings - finished).max(0) as u64;
    Ok(())
}

fn open_fds(pid: u32) -> anyhow::Result<u64> {
    Ok(std::fs::read_dir(format!("/proc/{pid}/fd"))
        .with_context(|| format!("cannot list /proc/{pid}/fd"))?
        .count() as u64)
}

fn file_mib(path: &std::path::Path) -> f64 {
    std::fs::metadata(path).map_or(0.0, |m| m.len() as f64 / 1024.0 / 1024.0)
}
