//! `tokenflow servers list|test`.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Subcommand;
use tokenflow_config::Config;
use tokenflow_connectors::http::TlsClients;
use tokenflow_connectors::oauth::OAuthConnectors;
use tokenflow_core::SystemClock;
use tokenflow_runtime::RuntimeError;
use tokenflow_runtime::registry::ServerRegistry;

#[derive(Debug, Subcommand)]
pub enum ServersCommand {
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

pub async fn run(command: ServersCommand, config: Config) -> anyhow::Result<ExitCode> {
    match command {
        ServersCommand::List => {
            for (id, server) in &config.oauth_servers {
                let endpoint = |url: &Option<url::Url>| {
                    url.as_ref()
                        .map_or_else(|| "(discovery)".to_owned(), ToString::to_string)
                };
                println!("{id}");
                println!("  client_id      {}", server.client_id);
                println!(
                    "  client_secret  {}",
                    if server.client_secret.is_some() {
                        "set"
                    } else {
                        "none (public client)"
                    }
                );
                println!("  client_auth    {}", server.token_endpoint_auth_method);
                if let Some(key) = &server.client_key {
                    println!("  private_key    set ({})", key.alg());
                }
                println!("  token_url      {}", endpoint(&server.token_url));
                println!("  authorize_url  {}", endpoint(&server.authorization_url));
                println!("  revocation_url {}", endpoint(&server.revocation_url));
                println!(
                    "  issuer         {}",
                    server
                        .issuer
                        .as_ref()
                        .map_or_else(|| "-".to_owned(), ToString::to_string)
                );
                println!(
                    "  scope          {}",
                    server.scope.as_deref().unwrap_or("-")
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        ServersCommand::Test { id, scope } => {
            let tls = TlsClients::for_tokens(Duration::from_secs(30), config.tls_ca.clone())
                .context("cannot build the HTTP client")?;
            let connectors =
                OAuthConnectors::new(tls.default_client().clone(), Arc::new(SystemClock))
                    .with_tls(tls.clone());
            // The same operation as the server's API and UI, on the configuration file's servers.
            let registry = ServerRegistry::from_config(config.oauth_servers.clone(), tls);
            let out = match registry.test(&connectors, &id, scope).await {
                Ok(out) => out,
                Err(RuntimeError::NotFound(_)) => anyhow::bail!("no OAuth server `{id}`"),
                Err(err) => return Err(err.into()),
            };
            println!("oauth_server_login on `{id}`");
            println!("  status_code        {} ({})", out.status_code, out.meaning);
            if let Some(token) = &out.access_token {
                println!("  access_token       {token}");
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
            Ok(if out.succeeded {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
    }
}
