//! `tokenflow serve`, `tokenflow migrate` and `tokenflow api-key …`: open the store with the
//! master key, wire the server, listen, and shut down gracefully on SIGTERM or Ctrl-C.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Subcommand;
use tokenflow_config::{Config, LogFormat};
use tokenflow_core::{Clock, SystemClock};
use tokenflow_server::startup::{Timing, build};
use tokenflow_store::sqlite::SqliteStore;
use tokenflow_store::{ApiKeyRow, MasterKey, Store};

#[derive(Debug, Subcommand)]
pub enum ApiKeyCommand {
    /// Creates an API key and prints it once (only its hash is stored).
    Create {
        /// A name to recognise the key by.
        name: String,
    },
    /// Lists API key names.
    List,
    /// Deletes an API key.
    Delete { name: String },
}

async fn open_store(config: &Config) -> anyhow::Result<Arc<dyn Store>> {
    Ok(open_store_with_key(config).await?.0)
}

/// The store and the master key it was opened with.
async fn open_store_with_key(config: &Config) -> anyhow::Result<(Arc<dyn Store>, MasterKey)> {
    let env_key = std::env::var("TOKENFLOW_MASTER_KEY")
        .ok()
        .filter(|k| !k.is_empty());
    let key = MasterKey::load(env_key.as_deref(), &config.data_dir.join("master.key"))
        .context("cannot load the master key")?;
    // The backend is chosen here, once: PostgreSQL when `database_url` is set, else SQLite.
    if let Some(url) = &config.database_url {
        let store = tokenflow_store::postgres::PostgresStore::connect(url, &key)
            .await
            .context("cannot open the PostgreSQL store (database_url)")?;
        return Ok((Arc::new(store), key));
    }
    let store = SqliteStore::open(&config.data_dir, &key)
        .await
        .with_context(|| format!("cannot open the store in {}", config.data_dir.display()))?;
    Ok((Arc::new(store), key))
}

fn init_logging(format: LogFormat) {
    // Dependencies stay at info even under TOKENFLOW_LOG=trace: their trace output (HTTP frames,
    // connection details) is noise, and the HTTP stacks are not ours to audit for secrets.
    let filter = std::env::var("TOKENFLOW_LOG").unwrap_or_else(|_| "info".to_owned());
    let filter = tracing_subscriber::EnvFilter::try_new(format!(
        "{filter},hyper=info,h2=info,reqwest=info,rustls=info,sqlx=warn"
    ))
    .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

pub async fn serve(config: Config) -> anyhow::Result<ExitCode> {
    init_logging(config.log_format);
    let (store, key) = open_store_with_key(&config).await?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let session_key = *key.derive("web ui sessions");
    let startup = build(&config, store, clock, Timing::default(), session_key)
        .await
        .context("cannot start the server")?;
    for warning in &startup.warnings {
        tracing::warn!("{warning}");
    }
    if startup.recovered > 0 {
        tracing::warn!(
            runs = startup.recovered,
            "runs interrupted by the last shutdown were marked failed"
        );
    }
    if config.api_keys.is_empty() && startup.state.store.list_api_keys().await?.is_empty() {
        tracing::warn!(
            "no API keys: /api/* rejects every request; create one with `tokenflow api-key create <name>`"
        );
    }
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let address = listener.local_addr()?;
    println!(
        "tokenflow listening on http://{address} (public URL {})",
        config.public_url
    );
    tracing::info!(%address, "listening");
    tokenflow_server::serve(listener, startup.state, shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down");
}

pub async fn migrate(config: Config) -> anyhow::Result<ExitCode> {
    open_store(&config).await?;
    match &config.database_url {
        Some(_) => println!("migrations applied: PostgreSQL (database_url)"),
        None => println!(
            "migrations applied: {}",
            config.data_dir.join("tokenflow.db").display()
        ),
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn api_key(command: ApiKeyCommand, config: Config) -> anyhow::Result<ExitCode> {
    let store = open_store(&config).await?;
    let clock = SystemClock;
    match command {
        ApiKeyCommand::Create { name } => {
            let key = tokenflow_connectors::oauth::random::random_token(32)
                .context("cannot generate a key")?;
            let key = format!("tfk_{}", key.expose());
            store
                .put_api_key(&ApiKeyRow {
                    name: name.clone(),
                    hash: tokenflow_server::auth::hash_key(&key),
                    created_at: clock.now(),
                })
                .await
                .with_context(|| format!("cannot store API key `{name}`"))?;
            eprintln!(
                "API key `{name}` created. It is shown only now; tokenflow keeps only its hash:"
            );
            println!("{key}");
        }
        ApiKeyCommand::List => {
            for key in store.list_api_keys().await? {
                println!("{}", key.name);
            }
        }
        ApiKeyCommand::Delete { name } => {
            if !store.delete_api_key(&name).await? {
                anyhow::bail!("no API key named `{name}`");
            }
            println!("deleted API key `{name}`");
        }
    }
    Ok(ExitCode::SUCCESS)
}
