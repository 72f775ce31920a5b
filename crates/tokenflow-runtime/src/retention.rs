//! Bounded storage (docs/operations.md, "Retention" and "Limits"): the sweeper deletes ended runs
//! that the retention setting no longer keeps, and a flow may have at most
//! `max_waiting_runs_per_flow` runs waiting for a sign-in.
//!
//! Deleting goes a batch at a time ([`RETENTION_BATCH`] runs, each batch one short write
//! transaction with the runs' monitor records, pending logins and device polls), so the SQLite
//! writer is held only for one batch and the run writes queue behind it for milliseconds, not
//! for the whole purge. Which runs go is read before each batch, outside its transaction.
//!
//! The waiting runs are counted only when a flow has an action that waits for a person
//! (`oauth_user_login`, `oauth_device_login`): a flow without one never waits, and its runs
//! start without reading the store (ARCHITECTURE.md, "Flows in memory").

use tokenflow_core::flow::Flow;
use tokenflow_store::{RetentionRule, Store};

use crate::error::RuntimeError;
use crate::metrics::Metrics;

/// Ended runs deleted per write transaction.
pub const RETENTION_BATCH: u32 = 200;
/// Batches per purge; what is left goes at the next purge (an hour later).
pub const RETENTION_BATCHES: u32 = 1000;

/// What the store may hold (the configuration's `retention` and `max_waiting_runs_per_flow`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StorageBounds {
    pub retention: tokenflow_config::Retention,
    pub max_waiting_runs_per_flow: u64,
}

impl Default for StorageBounds {
    fn default() -> Self {
        Self {
            retention: tokenflow_config::Retention::default(),
            max_waiting_runs_per_flow: tokenflow_config::MAX_WAITING_RUNS_PER_FLOW.default,
        }
    }
}

impl StorageBounds {
    /// Deletes the ended runs that retention no longer keeps at `now`, in batches; returns how
    /// many.
    pub async fn apply_retention(
        &self,
        store: &dyn Store,
        metrics: &Metrics,
        now: time::OffsetDateTime,
    ) -> Result<u64, RuntimeError> {
        let rule = RetentionRule {
            ended_before: self.retention.max_age.map(|age| now - age),
            keep_per_flow: self.retention.max_runs_per_flow,
        };
        if rule == RetentionRule::default() {
            return Ok(0);
        }
        let mut purged = 0;
        for _ in 0..RETENTION_BATCHES {
            let batch = store.purge_ended_runs(&rule, RETENTION_BATCH).await?;
            purged += batch;
            if batch == 0 {
                break;
            }
            // Between two batches, whatever else waits for the database goes first.
            tokio::task::yield_now().await;
        }
        if purged > 0 {
            metrics.runs_purged(purged);
            tracing::info!(runs = purged, "retention deleted ended runs");
        }
        Ok(purged)
    }

    /// Refuses to start a run of `flow` while it has `max_waiting_runs_per_flow` runs waiting
    /// for a sign-in.
    pub async fn check_waiting_runs(
        &self,
        store: &dyn Store,
        flow: &Flow,
    ) -> Result<(), RuntimeError> {
        if !flow.actions.values().any(|action| action.spec.interactive) {
            return Ok(());
        }
        let limit = self.max_waiting_runs_per_flow;
        if store.count_waiting_runs(&flow.id).await? >= limit {
            return Err(RuntimeError::TooManyWaitingRuns {
                flow: flow.id.clone(),
                limit,
            });
        }
        Ok(())
    }
}
