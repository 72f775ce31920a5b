//! The `tokenflow` binary: the composition root. Parses the command line, loads the configuration,
//! builds the one HTTP client and clock, and hands them to the library crates. The only place
//! `anyhow` lives; errors print their whole cause chain and exit non-zero.

#![allow(clippy::print_stdout, clippy::print_stderr)] // a CLI prints its results

mod cmd_flows;
mod cmd_ops;
mod cmd_providers;
mod cmd_run;
mod cmd_serve;
mod cmd_servers;
mod loopback;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tokenflow_config::{Config, Sources};

#[derive(Debug, Parser)]
#[command(
    name = "tokenflow",
    version,
    about = "Process flows with OAuth 2.0 connectors"
)]
struct Cli {
    /// Configuration file (default: ./tokenflow.toml when present).
    #[arg(long, global = true, env = "TOKENFLOW_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Runs a flow file locally (the 2-tier mode): a user login listens on a loopback port for
    /// the identity provider's redirect.
    Run(cmd_run::RunArgs),
    /// Runs the server (the 3-tier mode): the process-flow API, `/oauth-callback`, schedules.
    Serve,
    /// Applies the store's migrations and exits.
    Migrate,
    /// API keys for `/api/*` (stored hashed).
    ApiKey {
        #[command(subcommand)]
        command: cmd_serve::ApiKeyCommand,
    },
    /// Flow files.
    Flows {
        #[command(subcommand)]
        command: cmd_flows::FlowsCommand,
    },
    /// OAuth servers of the configuration.
    Servers {
        #[command(subcommand)]
        command: cmd_servers::ServersCommand,
    },
    /// Copies the SQLite store to PATH while the server runs (docs/operations.md, "Backups").
    Backup {
        /// Where the copy goes (a new file, mode 0600).
        path: PathBuf,
        /// Replaces PATH when it exists.
        #[arg(long)]
        force: bool,
    },
    /// The master key that encrypts stored secrets (docs/operations.md).
    MasterKey {
        #[command(subcommand)]
        command: cmd_ops::MasterKeyCommand,
    },
    /// The provider catalogue: presets for `provider = "NAME"` (no configuration needed).
    Providers {
        #[command(subcommand)]
        command: cmd_providers::ProvidersCommand,
    },
    /// Checks the configuration and prints a summary (no secrets).
    Config,
    /// Prints the OpenAPI document of the server's API (as committed in docs/openapi.json).
    Openapi,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Flows { command } => cmd_flows::run(command, cli.config),
        Command::Serve => cmd_serve::serve(load_config(cli.config)?).await,
        Command::Migrate => cmd_serve::migrate(load_config(cli.config)?).await,
        Command::ApiKey { command } => cmd_serve::api_key(command, load_config(cli.config)?).await,
        Command::Run(args) => cmd_run::run(args, load_config(cli.config)?).await,
        Command::Backup { path, force } => {
            cmd_ops::backup(&path, force, load_config(cli.config)?).await
        }
        Command::MasterKey { command } => {
            cmd_ops::master_key(command, load_config(cli.config)?).await
        }
        Command::Servers { command } => cmd_servers::run(command, load_config(cli.config)?).await,
        Command::Providers { command } => cmd_providers::run(command),
        Command::Openapi => {
            println!(
                "{}",
                serde_json::to_string_pretty(&tokenflow_server::openapi())?
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Config => {
            let config = load_config(cli.config)?;
            let redirect = config
                .oauth_redirect_uri
                .clone()
                .unwrap_or_else(|| config.default_redirect_uri());
            let store = match config.database_url {
                Some(_) => "PostgreSQL (database_url)".to_owned(),
                None => format!("SQLite in {}", config.data_dir.display()),
            };
            println!("listen        {}", config.listen);
            println!("public_url    {}", config.public_url);
            println!("redirect URI  {redirect}");
            println!("store         {store}");
            println!("flows_dir     {}", config.flows_dir.display());
            println!("api_keys      {}", config.api_keys.len());
            println!("oauth_servers {}", config.oauth_servers.len());
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Loads the configuration from `path`, or `./tokenflow.toml` when present, plus the environment.
fn load_config(path: Option<PathBuf>) -> anyhow::Result<Config> {
    let default = PathBuf::from("tokenflow.toml");
    let file = path.or_else(|| default.exists().then_some(default));
    tokenflow_config::load(&Sources {
        file: file.as_deref(),
        env: Sources::process_env(),
    })
    .context("cannot load the configuration")
}

/// Like [`load_config`], but a missing file is no error (flows can be checked without one).
fn load_config_if_any(path: Option<PathBuf>) -> anyhow::Result<Option<Config>> {
    let default = PathBuf::from("tokenflow.toml");
    match path.or_else(|| default.exists().then_some(default)) {
        Some(file) => load_config(Some(file)).map(Some),
        None => Ok(None),
    }
}
