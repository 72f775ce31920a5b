//! Builds the server's state from the configuration: the one wiring used by `tokenflow serve` and
//! by the tests, so they cannot drift apart.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use tokenflow_config::Config;
use tokenflow_core::Clock;
use tokenflow_runtime::{Built, Intervals, Runtime, RuntimeError};
use tokenflow_store::Store;

use crate::auth::hash_key;
use crate::auth::tokens::SessionKeys;
use crate::state::{AppState, Settings};
use crate::ui::templates::Templates;

/// Why the server cannot start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// The run lifecycle cannot start (the store, the flows directory, the HTTP client).
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error("the web UI's templates are invalid: {0}")]
    Templates(String),
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
    /// How often the vault keep-alive looks for entries to refresh.
    pub vault_keep_alive: Duration,
    /// How long one server-sent event stream of the UI lives at most.
    pub event_stream_max: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        let runtime = tokenflow_runtime::Timing::default();
        Self {
            pending_ttl: runtime.pending_ttl,
            sweep_interval: runtime.intervals.sweep,
            schedule_tick: runtime.intervals.schedule_tick,
            vault_keep_alive: runtime.intervals.vault_keep_alive,
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
    let Built {
        runtime,
        warnings,
        recovered,
    } = Runtime::build(
        config,
        store,
        clock,
        tokenflow_runtime::Timing {
            pending_ttl: timing.pending_ttl,
            intervals: Intervals {
                sweep: timing.sweep_interval,
                schedule_tick: timing.schedule_tick,
                vault_keep_alive: timing.vault_keep_alive,
                device_poll: tokenflow_runtime::Timing::default().intervals.device_poll,
            },
        },
    )
    .await?;
    let config_key_hashes: BTreeSet<String> = config
        .api_keys
        .iter()
        .map(|key| hash_key(key.expose()))
        .collect();
    let state = AppState {
        runtime,
        settings: Arc::new(Settings {
            public_url: config.public_url.clone(),
            header_read_timeout: config.header_read_timeout,
            body_read_timeout: config.body_read_timeout,
            max_connections: config.max_connections,
            event_stream_max: timing.event_stream_max,
        }),
        config_key_hashes: Arc::new(config_key_hashes),
        session_keys: SessionKeys::new(session_key),
        templates: Arc::new(
            Templates::new().map_err(|err| StartupError::Templates(err.to_string()))?,
        ),
        failed_attempts: Arc::default(),
    };
    Ok(Startup {
        state,
        warnings,
        recovered,
    })
}
