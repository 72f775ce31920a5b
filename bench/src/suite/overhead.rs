//! Benchmark 1: `oauth_server_login` with the cache off against a bare HTTP POST of the same
//! client-credentials request to the same token endpoint, with the same client settings,
//! interleaved (ABBA order) so that drift of the IdP or the machine hits both alike.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};
use tokenflow_connectors::oauth::OAuthConnectors;
use tokenflow_core::{Input, OAuthServer, OAuthServerSpec, SystemClock};

use super::{CC_CLIENT, CC_SCOPE, CC_SECRET, Ctx};
use crate::stats::{self, percentile};

/// Per repetition: median of the connector, median of the bare POST (both in ms), their ratio.
#[derive(Debug, Clone)]
pub struct Overhead {
    pub connector_ms: Vec<f64>,
    pub bare_ms: Vec<f64>,
    pub ratio: Vec<f64>,
    pub pairs: usize,
}

fn server(token_url: &str) -> anyhow::Result<OAuthServer> {
    let spec: OAuthServerSpec = serde_json::from_value(json!({
        "client_id": CC_CLIENT,
        "client_secret": CC_SECRET,
        "token_url": token_url,
        "scope": CC_SCOPE,
        "token_cache": false,
    }))?;
    spec.validate("bench-service").map_err(|errors| {
        anyhow::anyhow!(
            "{}",
            errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        )
    })
}

async fn connector_once(
    connectors: &OAuthConnectors,
    server: &OAuthServer,
) -> anyhow::Result<Duration> {
    let begun = Instant::now();
    let outputs = connectors
        .server_login("bench-service", Some(server), &Input::Unassigned)
        .await;
    let took = begun.elapsed();
    if outputs.status_code() != 0 || outputs.access_token.is_none() {
        bail!(
            "oauth_server_login ended {}: {:?}",
            outputs.status_code(),
            outputs.error_description
        );
    }
    Ok(took)
}

async fn bare_once(http: &reqwest::Client, token_url: &str) -> anyhow::Result<Duration> {
    let begun = Instant::now();
    let answer: Value = http
        .post(token_url)
        .basic_auth(CC_CLIENT, Some(CC_SECRET))
        .header(reqwest::header::ACCEPT, "application/json")
        .form(&[("grant_type", "client_credentials"), ("scope", CC_SCOPE)])
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let took = begun.elapsed();
    answer["access_token"].as_str().context("no access_token")?;
    Ok(took)
}

pub async fn run(ctx: &Ctx) -> anyhow::Result<Overhead> {
    let token_url = ctx.idp.token_url();
    let server = server(&token_url)?;
    let timeout = Duration::from_secs(30);
    let connectors = OAuthConnectors::new(
        tokenflow_connectors::http::build_client(timeout)?,
        Arc::new(SystemClock),
    );
    let bare = tokenflow_connectors::http::build_client(timeout)?;
    for _ in 0..(ctx.plan.overhead_pairs / 4).max(5) {
        connector_once(&connectors, &server).await?;
        bare_once(&bare, &token_url).await?;
    }
    let mut result = Overhead {
        connector_ms: Vec::new(),
        bare_ms: Vec::new(),
        ratio: Vec::new(),
        pairs: ctx.plan.overhead_pairs,
    };
    for _ in 0..ctx.plan.repeats {
        let mut a = Vec::with_capacity(ctx.plan.overhead_pairs);
        let mut b = Vec::with_capacity(ctx.plan.overhead_pairs);
        for i in 0..ctx.plan.overhead_pairs {
            if i % 2 == 0 {
                a.push(connector_once(&connectors, &server).await?);
                b.push(bare_once(&bare, &token_url).await?);
            } else {
                b.push(bare_once(&bare, &token_url).await?);
                a.push(connector_once(&connectors, &server).await?);
            }
        }
        a.sort_unstable();
        b.sort_unstable();
        let (ma, mb) = (
            stats::ms(percentile(&a, 50.0)),
            stats::ms(percentile(&b, 50.0)),
        );
        result.connector_ms.push(ma);
        result.bare_ms.push(mb);
        result.ratio.push(ma / mb);
    }
    Ok(result)
}
