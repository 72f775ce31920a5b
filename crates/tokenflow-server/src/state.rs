//! The application state, built once by the composition root and shared by every handler.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use tokenflow_core::Clock;
use tokenflow_store::Store;
use url::Url;

use crate::catalog::FlowCatalog;
use crate::metrics::Metrics;
use crate::registry::ServerRegistry;
use crate::runner::Runner;

/// Settings of the server that handlers need.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Base of links and of the default redirect URI.
    pub public_url: Url,
    /// How often expired pending logins are swept (their actions end with -2).
    pub sweep_interval: Duration,
    /// How often schedules are checked.
    pub schedule_tick: Duration,
    /// How long a client may take to send a request's head (also how long a keep-alive
    /// connection may stay idle).
    pub header_read_timeout: Duration,
    /// How long a client may take to send a request's body.
    pub body_read_timeout: Duration,
    /// How many connections are served at once.
    pub max_connections: usize,
    /// How long one server-sent event stream of the UI lives at most; the browser reconnects.
    pub event_stream_max: Duration,
}

impl Settings {
    /// Cookies get `Secure` when the server is reached over https.
    pub fn secure_cookies(&self) -> bool {
        self.public_url.scheme() == "https"
    }

    /// An absolute link under the public URL.
    pub fn link(&self, path: &str) -> String {
        format!("{}{path}", self.public_url.as_str().trim_end_matches('/'))
    }
}

/// Everything a handler can reach. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub runner: Arc<Runner>,
    pub catalog: Arc<FlowCatalog>,
    pub registry: Arc<ServerRegistry>,
    pub metrics: Arc<Metrics>,
    pub clock: Arc<dyn Clock>,
    pub settings: Arc<Settings>,
    /// SHA-256 (hex) of the API keys from the configuration; keys created through the CLI live
    /// hashed in the store.
    pub config_key_hashes: Arc<BTreeSet<String>>,
    /// Templates and session keys of the web UI.
    pub ui: Arc<crate::ui::Ui>,
}

impl AppState {
    /// Runs the vault keep-alive every minute until the task is aborted.
    pub async fn keep_alive_forever(&self) {
        let mut ticker = tokio::time::interval(std::time::Duration::from_secs(60));
        loop {
            ticker.tick().await;
            if let Some(vault) = self.runner.engine().vault() {
                vault.keep_alive_once().await;
            }
        }
    }

    /// Starts the expiry sweeper and the scheduler; abort the handle to stop them.
    pub fn start_background_tasks(&self) -> tokio::task::JoinHandle<()> {
        let sweeper = self.clone();
        let scheduler = self.clone();
        let keeper = self.clone();
        tokio::spawn(async move {
            let sweep = tokio::spawn(async move {
                sweeper
                    .runner
                    .sweep_forever(sweeper.settings.sweep_interval)
                    .await
            });
            let schedule =
                tokio::spawn(async move { crate::scheduler::run_forever(scheduler).await });
            let keep_alive = tokio::spawn(async move { keeper.keep_alive_forever().await });
            let _ = tokio::join!(sweep, schedule, keep_alive);
        })
    }
}
