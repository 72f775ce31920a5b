//! Builds the server's state from the configuration: the one wiring used by `tokenflow serve` and
//! by the tests, so they cannot drift apart.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use tokenflow_config::Config;
use tokenflow_connectors::http::build_client;
use tokenflow_connectors::http_action::HttpConnector;
use tokenflow_connectors::oauth::OAuthConnectors;
use tokenflow_connectors::oauth::authorize::DEFAULT_PENDING_TTL;
use tokenflow_connectors::oauth::connectors::RedirectSettings;
use tokenflow_core::Clock;
use tokenflow_engine::{Engine, ServerDirectory};
use tokenflow_store::Store;

use crate::auth::hash_key;
use crate::catalog::FlowCatalog;
use crate::metrics::Metrics;
use crate::registry::ServerRegistry;
use crate::runner::Runner;
use crate::state::{AppState, Settings};

/// Why the server cannot start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("cannot build the HTTP client")]
    Http(#[source] tokenflow_connectors::http::ReqwestError),
    #[error("the store failed during start-up: {0}")]
    Store(String),
    #[error("the web UI's templates are invalid: {0}")]
    Templates(String),
    #[error("invalid flows in {dir}:\n  - {}", .problems.join("\n  - "))]
    Flows { dir: String, problems: Vec<String> },
}

/// What start-up produced, with non-fatal warnings (unreachable issuers, unconfigured servers).
#[derive(Debug)]
pub struct Startup {
    pub state: AppState,
    pub warnings: Vec<String>,
    /// Runs found interrupted by a crash and marked failed.
    pub recovered: usize,
}

/// Tunables that tests shorten.
#[derive(Debug, Clone)]
pub struct Timing {
    pub pending_ttl: Duration,
    pub sweep_interval: Duration,
    pub schedule_tick: Duration,
    /// How long one server-sent event stream of the UI lives at most.
    pub event_stream_max: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Self {
            pending_ttl: DEFAULT_PENDING_TTL,
            sweep_interval: Duration::from_secs(5),
            schedule_tick: Duration::from_millis(250),
            event_stream_max: Duration::from_secs(5 * 60),
        }
    }
}

/// Wires everything together and loads the flows directory.
/// `session_key` derives the web UI's CSRF tokens (sessions themselves live in the store); derive
/// it from the master key so that every instance sharing the data gives a session the same token.
pub async fn build(
    config: &Config,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    timing: Timing,
    session_key: [u8; 32],
) -> Result<Startup, StartupError> {
    let mut warnings = Vec::new();
    let http = build_client(Duration::from_secs(30)).map_err(StartupError::Http)?;
    let metrics = Arc::new(Metrics::new());
    let (registry, registry_warnings) =
        ServerRegistry::load(config.oauth_servers.clone(), store.as_ref(), http.clone())
            .await
            .map_err(|err| StartupError::Store(err.to_string()))?;
    warnings.extend(registry_warnings);
    let registry = Arc::new(registry);

    let catalog =
        Arc::new(FlowCatalog::new(store.clone()).with_max_steps_limit(config.run_limits.max_steps));
    match catalog
        .load_dir(&config.flows_dir, &registry.ids(), clock.now())
        .await
    {
        Ok(flow_warnings) => warnings.extend(flow_warnings.iter().map(ToString::to_string)),
        Err(problems) => {
            return Err(StartupError::Flows {
                dir: config.flows_dir.display().to_string(),
                problems,
            });
        }
    }

    let oauth = OAuthConnectors::new(http, clock.clone()).with_observer(metrics.clone());
    let engine = Engine::new(
        oauth,
        HttpConnector::build().map_err(StartupError::Http)?,
        registry.clone(),
        clock.clone(),
        RedirectSettings {
            global: config.oauth_redirect_uri.clone(),
            default: config.default_redirect_uri(),
            pending_ttl: timing.pending_ttl,
        },
    );
    let engine = engine
        .with_vault(store.clone())
        .with_limits(config.run_limits);
    let runner = Arc::new(
        Runner::new(
            store.clone(),
            engine,
            catalog.clone(),
            metrics.clone(),
            clock.clone(),
        )
        .with_lease(config.run_lease),
    );
    let recovered = runner
        .recover_interrupted()
        .await
        .map_err(|err| StartupError::Store(err.to_string()))?;

    let config_key_hashes: BTreeSet<String> = config
        .api_keys
        .iter()
        .map(|key| hash_key(key.expose()))
        .collect();
    let state = AppState {
        store,
        runner,
        catalog,
        registry,
        metrics,
        clock,
        settings: Arc::new(Settings {
            public_url: config.public_url.clone(),
            sweep_interval: timing.sweep_interval,
            schedule_tick: timing.schedule_tick,
            header_read_timeout: config.header_read_timeout,
            body_read_timeout: config.body_read_timeout,
            max_connections: config.max_connections,
            event_stream_max: timing.event_stream_max,
        }),
        config_key_hashes: Arc::new(config_key_hashes),
        ui: crate::ui::Ui::new(crate::ui::session::SessionKeys::new(session_key))
            .map_err(|err| StartupError::Templates(err.to_string()))?,
    };
    Ok(Startup {
        state,
        warnings,
        recovered,
    })
}
