//! `--ablate NAME=BINARY …`: benchmark 2's tokenflow flow (SQLite) on several builds of
//! tokenflow, each one a change undone, taking turns within every repetition like the targets of
//! benchmark 2, so that the share of each change in the write path is measured in one run.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::bail;
use serde_json::Value;

use super::Ctx;
use super::throughput::{setup, tokenflow_requests};
use crate::load::{self, Check, Load};
use crate::procs::Tokenflow;
use crate::servers::EXPECTED_NAME;
use crate::stats::{self, show};

/// Measures each `(name, binary)` and returns the Markdown table.
pub async fn run(ctx: &Ctx, variants: &[(String, PathBuf)]) -> anyhow::Result<String> {
    let mut started = Vec::new();
    for (name, binary) in variants {
        let tokenflow = Tokenflow::start(binary, &setup(ctx)).await?;
        let make = tokenflow_requests(vec![tokenflow.url("/api/flows/bench_call/runs")]);
        started.push((name.clone(), tokenflow, make));
    }
    let check: Check = Arc::new(|status, body| {
        status == 200
            && serde_json::from_slice::<Value>(body).is_ok_and(|run| {
                run["status"] == "completed" && run["variables"]["name"] == EXPECTED_NAME
            })
    });
    let mut table = String::from(
        "| concurrency | build | runs/s | p50 (ms) | p99 (ms) | errors |\n|---|---|---|---|---|---|\n",
    );
    for &concurrency in &ctx.plan.levels {
        let client = load::client(concurrency)?;
        let mut figures = vec![(Vec::new(), Vec::new(), Vec::new(), 0u64); started.len()];
        for repeat in 0..ctx.plan.repeats {
            for k in 0..started.len() {
                let v = (k + repeat) % started.len();
                let (name, _, make) = &started[v];
                let warm = Load {
                    concurrency,
                    requests: u64::MAX,
                    duration: ctx.plan.warmup,
                };
                load::run(&client, make, &check, warm).await;
                let measured = load::run(
                    &client,
                    make,
                    &check,
                    Load {
                        duration: ctx.plan.measure,
                        ..warm
                    },
                )
                .await;
                if measured.latencies.is_empty() {
                    bail!("{name} answered nothing right at concurrency {concurrency}");
                }
                let f = &mut figures[v];
                f.0.push(measured.throughput());
                f.1.push(stats::ms(measured.p50()));
                f.2.push(stats::ms(measured.p99()));
                f.3 += measured.errors;
            }
        }
        for ((name, _, _), (rate, p50, p99, errors)) in started.iter().zip(&figures) {
            table.push_str(&format!(
                "| {concurrency} | {name} | {} | {} | {} | {errors} |\n",
                show(rate, 0),
                show(p50, 2),
                show(p99, 2)
            ));
        }
    }
    Ok(table)
}
