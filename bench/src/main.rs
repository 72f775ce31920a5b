//! `tokenflow-bench`: tokenflow's benchmark suite (see BENCHMARKS.md). `bench/run` builds it and
//! tokenflow, installs the Node-RED and n8n peers and runs it; the `stub` and `bare` subcommands
//! are the servers it starts as its own subprocesses.

mod load;
mod procs;
mod profile;
mod report;
mod servers;
mod soak_report;
mod stats;
mod suite;
mod svg;

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tokenflow_core::Clock as _;

use crate::suite::{CC_CLIENT, CC_SECRET, Ctx, Plan};

#[derive(Debug, Parser)]
#[command(about = "tokenflow's benchmark suite: run it with bench/run (see BENCHMARKS.md)")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Tiny sizes: shows that every benchmark works end to end (CI's smoke test), not speed.
    #[arg(long)]
    quick: bool,
    /// The `tokenflow` binary to measure.
    #[arg(long)]
    tokenflow: Option<PathBuf>,
    /// Which build `--tokenflow` is (for the report).
    #[arg(long, default_value = "release")]
    build: String,
    /// Only these benchmarks (1–6, comma-separated).
    #[arg(long, value_delimiter = ',')]
    only: Vec<u8>,
    /// Seconds per throughput measurement (overrides the plan; e.g. to profile with `perf`).
    #[arg(long)]
    measure: Option<f64>,
    /// The PostgreSQL server of benchmark 2's PostgreSQL rows (a role that may create databases;
    /// each measurement gets a database of its own, dropped afterwards).
    #[arg(
        long,
        env = "TEST_POSTGRES_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    postgres: String,
    /// Leave out the PostgreSQL rows (`bench/run` passes it when no server answers, outside CI).
    #[arg(long)]
    no_postgres: bool,
    /// Write the report into this Markdown file, between the bench markers.
    #[arg(long)]
    write: Option<PathBuf>,
    /// Instead of the suite: benchmark 2's tokenflow flow on several builds of tokenflow
    /// (`NAME=BINARY`, repeated), taking turns; prints one table.
    #[arg(long, value_name = "NAME=BINARY")]
    ablate: Vec<String>,
    /// Instead of the suite: the soak, a mixed load for this long (`90s`, `10m`, `1h`), sampled
    /// over time; with `--write`, its section of the report and `bench/soak.svg`.
    #[arg(long, value_name = "DURATION", value_parser = soak_report::parse_duration)]
    soak: Option<std::time::Duration>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The stub API (`GET /data`, `POST /token`).
    Stub,
    /// The bare axum reference service (`POST /run`).
    Bare(servers::BareArgs),
    /// The durable reference: the bare service plus one SQLite write per request.
    Durable(servers::DurableArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Some(Command::Stub) => servers::stub().await,
            Some(Command::Bare(args)) => servers::bare(args).await,
            Some(Command::Durable(args)) => servers::durable(args).await,
            None => suite(cli).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn wanted(cli: &Cli, n: u8) -> bool {
    cli.only.is_empty() || cli.only.contains(&n)
}

async fn suite(cli: Cli) -> anyhow::Result<()> {
    let tokenflow = cli
        .tokenflow
        .clone()
        .context("--tokenflow <path of the tokenflow binary> is required")?;
    let mut plan = if cli.quick {
        Plan::quick()
    } else {
        Plan::full()
    };
    if let Some(secs) = cli.measure {
        plan.measure = std::time::Duration::from_secs_f64(secs);
    }
    let when = tokenflow_core::SystemClock
        .now()
        .format(&time::format_description::well_known::Rfc3339)
        .map(|t| t[..16].replace('T', " ") + " UTC")
        .unwrap_or_default();
    eprintln!("==> starting the test IdP and the stub API");
    let idp = tokenflow_testkit::Idp::start().await;
    idp.client_credentials_client(CC_CLIENT, CC_SECRET).await;
    let stub = procs::spawn_self(&["stub"], &[], "the stub API").await?;
    let ctx = Ctx {
        plan: plan.clone(),
        tokenflow,
        peers: procs::repo().join("bench/peers"),
        idp,
        stub,
        postgres: (!cli.no_postgres).then(|| cli.postgres.clone()),
    };
    if !cli.ablate.is_empty() {
        let mut variants = Vec::new();
        for variant in &cli.ablate {
            let (name, binary) = variant
                .split_once('=')
                .context("--ablate takes NAME=BINARY")?;
            variants.push((name.to_owned(), PathBuf::from(binary)));
        }
        eprintln!(
            "==> benchmark 2's flow on {} builds of tokenflow",
            variants.len()
        );
        let table = suite::ablation::run(&ctx, &variants).await?;
        writeln!(std::io::stdout().lock(), "{table}")?;
        return Ok(());
    }
    if let Some(duration) = cli.soak {
        return soak(&cli, &ctx, duration, &when).await;
    }
    let mut results = report::Results::default();
    if wanted(&cli, 1) {
        eprintln!("==> 1. connector overhead");
        results.overhead = Some(suite::overhead::run(&ctx).await.context("benchmark 1")?);
    }
    if wanted(&cli, 2) {
        eprintln!(
            "==> 2. flow throughput (tokenflow on SQLite{}, bare axum, durable reference, Node-RED, n8n)",
            if cli.no_postgres {
                ""
            } else {
                " and PostgreSQL"
            }
        );
        results.throughput = Some(suite::throughput::run(&ctx).await.context("benchmark 2")?);
    }
    if wanted(&cli, 3) {
        eprintln!(
            "==> 3. waiting runs ({} and {})",
            plan.waiting_levels.0, plan.waiting_levels.1
        );
        results.waiting = Some(suite::waiting::run(&ctx).await.context("benchmark 3")?);
    }
    if wanted(&cli, 4) {
        eprintln!(
            "==> 4. vault under contention ({} callers)",
            plan.vault_callers
        );
        results.vault = Some(suite::vault::run(&ctx).await.context("benchmark 4")?);
    }
    if wanted(&cli, 5) {
        eprintln!("==> 5. footprint");
        results.footprint = Some(suite::footprint::run(&ctx).await.context("benchmark 5")?);
    }
    if wanted(&cli, 6) {
        eprintln!("==> 6. dashboard ({} runs in SQLite)", plan.dashboard_runs);
        results.dashboard = Some(suite::dashboard::run(&ctx).await.context("benchmark 6")?);
    }
    if cli.quick && cli.only.is_empty() {
        // The soak's smoke test: every kind of load and the whole report, for a few seconds.
        eprintln!("==> the soak (a few seconds)");
        let plan = suite::soak::SoakPlan::new(std::time::Duration::from_secs(12), true);
        let soak = suite::soak::run(&ctx, plan).await.context("the soak")?;
        writeln!(
            std::io::stdout().lock(),
            "{}",
            soak_report::render(&soak, &plan, &cli.build, &when)
        )?;
    }
    let section = report::render(&plan, &cli.build, &when, &results);
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{section}")?;
    if let Some(path) = &cli.write {
        let document = std::fs::read_to_string(path).unwrap_or_default();
        std::fs::write(path, report::splice(&document, &section))
            .with_context(|| format!("cannot write {}", path.display()))?;
        eprintln!("==> report written to {}", path.display());
    }
    Ok(())
}

/// `--soak DURATION`: the soak alone; its section goes between its own markers.
async fn soak(
    cli: &Cli,
    ctx: &Ctx,
    duration: std::time::Duration,
    when: &str,
) -> anyhow::Result<()> {
    let plan = suite::soak::SoakPlan::new(duration, cli.quick);
    eprintln!(
        "==> soak for {} s, a sample every {} s",
        duration.as_secs(),
        plan.sample_every.as_secs()
    );
    let soak = suite::soak::run(ctx, plan).await.context("the soak")?;
    let section = soak_report::render(&soak, &plan, &cli.build, when);
    writeln!(std::io::stdout().lock(), "{section}")?;
    if let Some(path) = &cli.write {
        let document = std::fs::read_to_string(path).unwrap_or_default();
        std::fs::write(path, soak_report::splice(&document, &section))
            .with_context(|| format!("cannot write {}", path.display()))?;
        let chart = procs::repo().join(soak_report::CHART);
        std::fs::write(&chart, soak_report::chart(&soak))
            .with_context(|| format!("cannot write {}", chart.display()))?;
        eprintln!(
            "==> soak written to {} and {}",
            path.display(),
            chart.display()
        );
    }
    Ok(())
}
