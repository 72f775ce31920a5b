//! Benchmark 4: N concurrent runs of `vault_get_token` on one expired vault entry (refresh tokens
//! rotate, and the IdP revokes the grant if a consumed one is replayed). Counts the refresh
//! requests the IdP saw and measures the runs' latency. Each repetition signs in again and stores
//! the grant already expired.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::{Value, json};
use tokenflow_testkit::{Decision, sign_in};

use super::Ctx;
use crate::load::{self, Check, Load, MakeRequest};
use crate::procs::{API_KEY, Tokenflow, TokenflowSetup};
use crate::stats;

const KEEP: &str = r#"id: keep
description: Signs in and stores the grant in the vault already expired.
variables:
  t: {}
  r: {}
actions:
  login:
    type: oauth_user_login
    oauth_server: idp
    input: { scope: "openid offline_access" }
    output: { access_token: t, refresh_token: r }
  store:
    type: vault_store
    oauth_server: idp
    input: { name: shared, access_token: { var: t }, refresh_token: { var: r }, expires_in: 0 }
steps:
  - { from: start, to: login }
  - { from: login, to: store }
  - { from: store, to: stop }
"#;

const USE: &str = r#"id: use
description: One access token from the vault.
variables:
  t: {}
  code: {}
actions:
  get:
    type: vault_get_token
    input: { name: shared }
    output: { access_token: t, status_code: code }
steps:
  - { from: start, to: get }
  - { from: get, to: stop }
"#;

#[derive(Debug, Clone, Default)]
pub struct Vault {
    pub callers: u64,
    /// Per repetition: refresh requests at the IdP, p50/p99 of the runs, wall time of the burst.
    pub refreshes: Vec<usize>,
    pub p50_ms: Vec<f64>,
    pub p99_ms: Vec<f64>,
    pub burst_ms: Vec<f64>,
}

pub async fn run(ctx: &Ctx) -> anyhow::Result<Vault> {
    let client_id = "bench-vault";
    let secret = "bench-vault-secret";
    let setup = TokenflowSetup {
        servers: format!(
            "[oauth_servers.idp]\nclient_id = \"{client_id}\"\nclient_secret = {{ env = \"BENCH_VAULT_SECRET\" }}\nissuer = \"{}\"\n",
            ctx.idp.issuer()
        ),
        flows: vec![
            ("keep.yaml".to_owned(), KEEP.to_owned()),
            ("use.yaml".to_owned(), USE.to_owned()),
        ],
        env: vec![("BENCH_VAULT_SECRET".to_owned(), secret.to_owned())],
        database_url: None,
    };
    let tokenflow = Tokenflow::start(&ctx.tokenflow, &setup).await?;
    let callback = tokenflow.url("/oauth-callback");
    ctx.idp
        .web_client(
            client_id,
            secret,
            &callback,
            json!({ "rotate_refresh_token": true }),
        )
        .await;
    let callers = ctx.plan.vault_callers;
    let client = load::client(callers as usize)?;
    let use_url = tokenflow.url("/api/flows/use/runs");
    let make: MakeRequest = Arc::new(move |client| {
        client
            .post(&use_url)
            .bearer_auth(API_KEY)
            .header("content-type", "application/json")
            .body("{}")
    });
    let check: Check = Arc::new(|status, body| {
        status == 200
            && serde_json::from_slice::<Value>(body)
                .is_ok_and(|run| run["status"] == "completed" && run["variables"]["code"] == 0)
    });
    let mut result = Vault {
        callers,
        ..Vault::default()
    };
    for _ in 0..ctx.plan.repeats {
        let started: Value = client
            .post(tokenflow.url("/api/flows/keep/runs"))
            .bearer_auth(API_KEY)
            .json(&json!({}))
            .send()
            .await?
            .json()
            .await?;
        let authorize = started["authorization_url"]
            .as_str()
            .context("the keep flow did not wait at the login")?;
        let landed = sign_in(
            authorize,
            &callback,
            "alice",
            "alice-password",
            Decision::Allow,
        )
        .await;
        let answer = client.get(landed.as_str()).send().await?;
        if answer.status() != 200 {
            bail!("the callback answered {}", answer.status());
        }
        let refreshes = || async {
            ctx.idp
                .token_requests(client_id)
                .await
                .iter()
                .filter(|r| r.grant_type.as_deref() == Some("refresh_token"))
                .count()
        };
        let before = refreshes().await;
        let burst = load::run(
            &client,
            &make,
            &check,
            Load {
                concurrency: callers as usize,
                requests: callers,
                duration: Duration::from_secs(600),
            },
        )
        .await;
        if burst.errors > 0 {
            bail!(
                "{} of {callers} vault runs failed: {}",
                burst.errors,
                burst.first_error.unwrap_or_default()
            );
        }
        result.refreshes.push(refreshes().await - before);
        result.p50_ms.push(stats::ms(burst.p50()));
        result.p99_ms.push(stats::ms(burst.p99()));
        result.burst_ms.push(stats::ms(burst.elapsed));
    }
    let failed = ctx
        .idp
        .token_requests(client_id)
        .await
        .iter()
        .filter(|r| r.error.is_some())
        .count();
    if failed > 0 {
        bail!(
            "the IdP refused {failed} token requests (invalid_grant: a refresh token was replayed)"
        );
    }
    Ok(result)
}
