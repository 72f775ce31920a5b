//! The run lifecycle's parts, wired once from the configuration: the one wiring used by
//! `tokenflow serve` and by the tests, so they cannot drift apart.

use std::sync::Arc;
use std::time::Duration;

use tokenflow_config::Config;
use tokenflow_connectors::http::TlsClients;
use tokenflow_connectors::http_action::HttpConnector;
use tokenflow_connectors::oauth::OAuthConnectors;
use tokenflow_connectors::oauth::authorize::DEFAULT_PENDING_TTL;
use tokenflow_connectors::oauth::connectors::RedirectSettings;
use tokenflow_core::Clock;
use tokenflow_engine::{Engine, ServerDirectory};
use tokenflow_store::Store;

use crate::catalog::FlowCatalog;
use crate::error::RuntimeError;
use crate::metrics::Metrics;
use crate::registry::ServerRegistry;
use crate::runner::Runner;

/// The run lifecycle: its parts, shared by the background tasks and the server's handlers.
/// Cheap to clone. Building one starts nothing; [`Runtime::spawn`] starts its background tasks.
#[derive(Debug, Clone)]
pub struct Runtime {
    pub store: Arc<dyn Store>,
    pub runner: Arc<Runner>,
    pub catalog: Arc<FlowCatalog>,
    pub registry: Arc<ServerRegistry>,
    pub metrics: Arc<Metrics>,
    pub clock: Arc<dyn Clock>,
    pub intervals: Intervals,
}

/// How often the background tasks work.
#[derive(Debug, Clone, Copy)]
pub struct Intervals {
    /// Expired pending logins (their actions end with -2), interrupted runs, purges.
    pub sweep: Duration,
    /// Schedules.
    pub schedule_tick: Duration,
    /// The vault keep-alive pass (each entry is refreshed at its server's `vault_keep_alive`).
    pub vault_keep_alive: Duration,
    /// Device logins whose next poll is due (each at its own interval, RFC 8628 §3.5).
    pub device_poll: Duration,
}

/// Tunables that tests shorten.
#[derive(Debug, Clone)]
pub struct Timing {
    /// How long a pending user login waits for its callback.
    pub pending_ttl: Duration,
    pub intervals: Intervals,
}

impl Default for Timing {
    fn default() -> Self {
        Self {
            pending_ttl: DEFAULT_PENDING_TTL,
            intervals: Intervals {
                sweep: Duration::from_secs(5),
                schedule_tick: Duration::from_millis(250),
                vault_keep_alive: Duration::from_secs(60),
                device_poll: Duration::from_secs(1),
            },
        }
    }
}

/// What building produced, with non-fatal warnings (unreachable issuers, unconfigured servers).
#[derive(Debug)]
pub struct Built {
    pub runtime: Runtime,
    pub warnings: Vec<String>,
    /// Runs found interrupted by a crash and marked failed.
    pub recovered: usize,
}

impl Runtime {
    /// Wires the lifecycle together, loads the flows directory and fails the runs that a
    /// stopped instance left running.
    pub async fn build(
        config: &Config,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        timing: Timing,
    ) -> Result<Built, RuntimeError> {
        let mut warnings = Vec::new();
        // The global `tls_ca` is trusted by every outgoing connection (docs/connectors.md).
        let tls = TlsClients::for_tokens(Duration::from_secs(30), config.tls_ca.clone())
            .map_err(RuntimeError::Tls)?;
        let http = tls.default_client().clone();
        let metrics = Arc::new(Metrics::new());
        let (registry, registry_warnings) =
            ServerRegistry::load(config.oauth_servers.clone(), store.as_ref(), tls.clone()).await?;
        warnings.extend(registry_warnings);
        let registry = Arc::new(registry);

        let catalog = Arc::new(
            FlowCatalog::new(store.clone()).with_max_steps_limit(config.run_limits.max_steps),
        );
        match catalog
            .load_dir(&config.flows_dir, &registry.ids(), clock.now())
            .await
        {
            Ok(flow_warnings) => warnings.extend(flow_warnings.iter().map(ToString::to_string)),
            Err(problems) => {
                return Err(RuntimeError::InvalidFlowsDirectory {
                    dir: config.flows_dir.display().to_string(),
                    problems,
                });
            }
        }

        let oauth = OAuthConnectors::new(http, clock.clone())
            .with_tls(tls)
            .with_observer(metrics.clone());
        let engine = Engine::new(
            oauth,
            HttpConnector::with_tls(
                TlsClients::for_actions(config.tls_ca.clone()).map_err(RuntimeError::Tls)?,
            ),
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
            .with_lease(config.run_lease)
            .with_bounds(crate::retention::StorageBounds {
                retention: config.retention,
                max_waiting_runs_per_flow: config.max_waiting_runs_per_flow,
            }),
        );
        let recovered = runner.recover_interrupted().await?;
        Ok(Built {
            runtime: Runtime {
                store,
                runner,
                catalog,
                registry,
                metrics,
                clock,
                intervals: timing.intervals,
            },
            warnings,
            recovered,
        })
    }
}
