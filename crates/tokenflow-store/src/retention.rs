//! Which ended runs retention deletes (docs/operations.md, "Retention"), decided the same way on
//! every backend: by age oldest first, then each flow's runs beyond its newest `keep_per_flow`,
//! without duplicates and at most `limit`. The backends give the three reads, each with its own
//! SQL through migration 9's partial indexes of ended runs; they run before, and outside, the
//! transaction that deletes.

use std::collections::HashSet;

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::{Result, RetentionRule};

/// The run statuses retention may delete, as SQL (both backends spell them alike, and the
/// partial indexes of migration 9 repeat this exact term, which is how the planner picks them).
pub(crate) const ENDED_STATUSES: &str = "status IN ('completed', 'failed', 'cancelled')";

/// A backend's reads of ended runs.
#[async_trait]
pub(crate) trait RetentionReads: Sync {
    /// Ids of ended runs that ended before `before`, oldest first, at most `limit`.
    async fn ended_before(&self, before: OffsetDateTime, limit: i64) -> Result<Vec<String>>;
    /// Flows with more than `keep` ended runs.
    async fn flows_over(&self, keep: i64) -> Result<Vec<String>>;
    /// Ids of a flow's ended runs after its newest `keep` (by end), at most `limit`.
    async fn beyond_newest(&self, flow: &str, keep: i64, limit: i64) -> Result<Vec<String>>;
}

/// At most `limit` ids of ended runs that `rule` lets go.
pub(crate) async fn runs_past_retention(
    reads: &impl RetentionReads,
    rule: &RetentionRule,
    limit: u32,
) -> Result<Vec<String>> {
    let mut ids = match rule.ended_before {
        Some(before) => reads.ended_before(before, i64::from(limit)).await?,
        None => Vec::new(),
    };
    let Some(keep) = rule.keep_per_flow else {
        return Ok(ids);
    };
    let keep = i64::try_from(keep).unwrap_or(i64::MAX);
    let mut seen: HashSet<String> = ids.iter().cloned().collect();
    for flow in reads.flows_over(keep).await? {
        let room = usize::try_from(limit)
            .unwrap_or(usize::MAX)
            .saturating_sub(ids.len());
        if room == 0 {
            break;
        }
        let room = i64::try_from(room).unwrap_or(i64::MAX);
        let beyond = reads.beyond_newest(&flow, keep, room).await?;
        ids.extend(beyond.into_iter().filter(|id| seen.insert(id.clone())));
    }
    Ok(ids)
}

/// The deletes of one batch, in order (what hangs on the runs first, the runs last), each limited
/// to ended runs; `in_batch` is the backend's test of `id` against the batch's ids (`id IN (?, …)`
/// or `id = ANY($1)`). The last one's row count is the number of runs deleted.
pub(crate) fn batch_deletes(in_batch: &str) -> Vec<String> {
    let runs = format!("runs WHERE {ENDED_STATUSES} AND {in_batch}");
    let mut deletes: Vec<String> = ["action_records", "pending_authorizations", "device_polls"]
        .iter()
        .map(|table| format!("DELETE FROM {table} WHERE run_id IN (SELECT id FROM {runs})"))
        .collect();
    deletes.push(format!("DELETE FROM {runs}"));
    deletes
}
