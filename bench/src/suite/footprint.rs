//! Benchmark 5: `tokenflow serve`'s time from start to ready, its idle RSS, and the size of the
//! binary. Every start is on a fresh data folder (it creates the master key and migrates SQLite).

use std::time::Duration;

use super::{Ctx, throughput};
use crate::procs::Tokenflow;
use crate::stats;

#[derive(Debug, Clone, Default)]
pub struct Footprint {
    pub listening_ms: Vec<f64>,
    pub ready_ms: Vec<f64>,
    pub idle_rss_mib: Vec<f64>,
    pub binary_mib: f64,
}

pub async fn run(ctx: &Ctx) -> anyhow::Result<Footprint> {
    let mut result = Footprint {
        binary_mib: std::fs::metadata(&ctx.tokenflow)?.len() as f64 / (1024.0 * 1024.0),
        ..Footprint::default()
    };
    let setup = throughput::setup(ctx);
    for _ in 0..ctx.plan.starts {
        let tokenflow = Tokenflow::start(&ctx.tokenflow, &setup).await?;
        result
            .listening_ms
            .push(stats::ms(tokenflow.listening_after));
        result.ready_ms.push(stats::ms(tokenflow.ready_after));
        tokio::time::sleep(Duration::from_secs(1)).await;
        result
            .idle_rss_mib
            .push(tokenflow.process.rss_kib()? as f64 / 1024.0);
    }
    Ok(result)
}
