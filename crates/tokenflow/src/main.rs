//! The `tokenflow` binary: the composition root. Parses the command line, loads the configuration,
//! builds the one HTTP client and clock, and hands them to the library crates. The only place
//! `anyhow` lives; errors print their whole cause chain and exit non-zero.

#![allow(clippy::print_stdout)] // a CLI prints its results

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tokenflow_config::{Config, Sources};
use tokenflow_connectors::http::build_client;
use tokenflow_connectors::oauth::{ConnectorStatus, OAuthConnectors};
use tokenflow_core::{Input, SystemClock};

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
    /// OAuth servers of the configuration.
    Servers {
        #[command(subcommand)]
        command: ServersCommand,
    },
    /// Checks the configuration and prints a summary (no secrets).
    Config,
}

#[derive(Debug, Subcommand)]
enum ServersCommand {
    /// Lists the configured OAuth servers.
    List,
    /// Runs `oauth_server_login` (client credentials) against a server and prints the outputs.
    Test {
        /// The OAuth server id.
        id: String,
        /// Assign the `scope` input (otherwise the server's `scope` is used).
        #[arg(long)]
        scope: Option<String>,
    },
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
    let config = load_config(cli.config)?;
    match cli.command {
        Command::Config => {
            println!("listen       {}", config.listen);
            println!("public_url   {}", config.public_url);
            println!(
                "redirect URI {}",
                config
                    .oauth_redirect_uri
                    .clone()
                    .unwrap_or_else(|| config.default_redirect_uri())
            );
            println!(
                "store        {}",
                if config.database_url.is_some() {
                    "PostgreSQL (database_url)".to_owned()
                } else {
                    format!("SQLite in {}", config.data_dir.display())
                }
            );
            println!("flows_dir    {}", config.flows_dir.display());
            println!("api_keys     {}", config.api_keys.len());
            println!("oauth_servers {}", config.oauth_servers.len());
            Ok(ExitCode::SUCCESS)
        }
        Command::Servers {
            command: ServersCommand::List,
        } => {
            for (id, server) in &config.oauth_servers {
                let endpoint = |url: &Option<url::Url>| {
                    url.as_ref()
                        .map_or_else(|| "(discovery)".to_owned(), ToString::to_string)
                };
                println!(
                    "{id}\n  client_id      {}\n  client_secret  {}\n  delivery       {}\n  token_url      {}\n  authorize_url  {}\n  issuer         {}\n  scope          {}",
                    server.client_id,
                    if server.client_secret.is_some() {
                        "set"
                    } else {
                        "none (public client)"
                    },
                    server.client_credentials_delivery,
                    endpoint(&server.token_url),
                    endpoint(&server.authorization_url),
                    server
                        .issuer
                        .as_ref()
                        .map_or_else(|| "-".to_owned(), ToString::to_string),
                    server.scope.as_deref().unwrap_or("-"),
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Servers {
            command: ServersCommand::Test { id, scope },
        } => {
            let http =
                build_client(Duration::from_secs(30)).context("cannot build the HTTP client")?;
            let connectors = OAuthConnectors::new(http, Arc::new(SystemClock));
            let scope = scope.map_or(Input::Unassigned, Input::Assigned);
            let out = connectors
                .server_login(&id, config.oauth_servers.get(&id), &scope)
                .await;
            println!("oauth_server_login on `{id}`");
            println!("  status_code        {}", out.status);
            if let Some(token) = &out.access_token {
                println!("  access_token       {}", token.fingerprint());
            }
            if let Some(kind) = &out.token_type {
                println!("  token_type         {kind}");
            }
            if let Some(secs) = out.expires_in {
                println!("  expires_in         {secs}");
            }
            if let Some(error) = &out.error {
                println!("  error              {error}");
            }
            if let Some(description) = &out.error_description {
                println!("  error_description  {description}");
            }
            for warning in &out.warnings {
                println!("  warning            {}: {}", warning.code, warning.message);
            }
            Ok(if out.status.is_success() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
    }
}

fn load_config(path: Option<PathBuf>) -> anyhow::Result<Config> {
    let default = PathBuf::from("tokenflow.toml");
    let file = path.or_else(|| default.exists().then_some(default));
    tokenflow_config::load(&Sources {
        file: file.as_deref(),
        env: Sources::process_env(),
    })
    .context("cannot load the configuration")
}
