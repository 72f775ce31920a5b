//! Prometheus metrics (`/metrics`) with the official `prometheus-client` crate: runs by flow and
//! final status, connector calls by action type and status code, token-endpoint latency by grant.

use std::sync::Mutex;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use tokenflow_connectors::oauth::connectors::TokenObserver;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RunLabels {
    flow: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    action_type: String,
    status_code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TokenLabels {
    grant_type: String,
    outcome: String,
}

/// The server's metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Mutex<Registry>,
    runs: Family<RunLabels, Counter>,
    calls: Family<CallLabels, Counter>,
    token_latency: Family<TokenLabels, Histogram>,
    purged: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let runs = Family::<RunLabels, Counter>::default();
        let calls = Family::<CallLabels, Counter>::default();
        let token_latency = Family::<TokenLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.001, 2.0, 16))
        });
        registry.register(
            "tokenflow_runs",
            "Runs that ended, by flow and final status",
            runs.clone(),
        );
        registry.register(
            "tokenflow_connector_calls",
            "Executed actions by action type and status code",
            calls.clone(),
        );
        registry.register(
            "tokenflow_token_request_duration_seconds",
            "Token endpoint request latency by grant type and outcome",
            token_latency.clone(),
        );
        let purged = Counter::default();
        registry.register(
            "tokenflow_runs_purged",
            "Ended runs deleted by retention (with their monitor records)",
            purged.clone(),
        );
        Self {
            registry: Mutex::new(registry),
            purged,
            runs,
            calls,
            token_latency,
        }
    }

    pub fn run_ended(&self, flow: &str, status: &str) {
        self.runs
            .get_or_create(&RunLabels {
                flow: flow.to_owned(),
                status: status.to_owned(),
            })
            .inc();
    }

    pub fn action_executed(&self, action_type: &str, status_code: Option<i32>) {
        let status_code = status_code.map_or_else(|| "none".to_owned(), |c| c.to_string());
        self.calls
            .get_or_create(&CallLabels {
                action_type: action_type.to_owned(),
                status_code,
            })
            .inc();
    }

    pub fn runs_purged(&self, runs: u64) {
        self.purged.inc_by(runs);
    }

    /// The text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if let Ok(registry) = self.registry.lock() {
            let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
        }
        out
    }
}

impl TokenObserver for Metrics {
    fn token_request(&self, grant_type: &'static str, elapsed: Duration, success: bool) {
        let outcome = if success { "token" } else { "error" };
        self.token_latency
            .get_or_create(&TokenLabels {
                grant_type: grant_type.to_owned(),
                outcome: outcome.to_owned(),
            })
            .observe(elapsed.as_secs_f64());
    }
}
