//! The dashboard's figures (docs/operations.md, "Dashboard"): the rows of [`DashboardStats`] and
//! the percentiles read from duration classes.
//!
//! The design decision: the figures come from counters that triggers keep in the transaction of
//! each write (migration 9), not from scanning runs. A window's charts then read a few thousand
//! counter rows whatever the number of runs, which is what keeps the page fast with a million
//! runs (bench/run, benchmark 6); the price is, in each of the three periods, two upserts per
//! ended run (its count, and its duration class) and one per OAuth action record, and durations
//! known to a duration class (about 20 % wide).

use async_trait::async_trait;
use time::OffsetDateTime;
use tokenflow_core::{RunStatus, VaultEntryState};

use crate::Result;

/// The interval lengths counters are kept for: 1 minute, 1 hour and 6 hours.
pub const COUNT_PERIODS_MS: [i64; 3] = [60_000, 3_600_000, 21_600_000];

/// A span of whole intervals of one period: `[from, to)`, both multiples of `period_ms` since
/// the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CountWindow {
    pub period_ms: i64,
    pub from_ms: i64,
    pub to_ms: i64,
}

impl CountWindow {
    /// The `intervals` whole intervals of `period_ms` that end with the one holding `now`.
    /// `period_ms` must be one of [`COUNT_PERIODS_MS`] (others have no counters: empty answers).
    pub fn ending_at(now: OffsetDateTime, period_ms: i64, intervals: i64) -> CountWindow {
        let now_ms = crate::at_rest::to_ms(now);
        let period_ms = period_ms.max(1);
        let to_ms = now_ms - now_ms.rem_euclid(period_ms) + period_ms;
        CountWindow {
            period_ms,
            from_ms: to_ms - period_ms * intervals.max(1),
            to_ms,
        }
    }
}

/// Runs that ended in one interval with one final status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusCount {
    /// The interval's start, unix milliseconds.
    pub bucket_ms: i64,
    pub status: RunStatus,
    pub runs: u64,
}

/// Runs of a flow whose duration fell in one duration class.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DurationClassCount {
    pub flow_id: String,
    /// The class's lower bound; the next class starts about 20 % higher.
    pub lower_ms: i64,
    pub runs: u64,
}

/// How many runs of a flow failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowFailures {
    pub flow_id: String,
    pub failed: u64,
}

/// What the last action of failed runs was, and how often: its type, status code and the
/// `error` output an OAuth action took from the provider (`invalid_grant`, `AADSTS700016`…).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailureCause {
    pub action_type: Option<String>,
    pub status_code: Option<i64>,
    pub error: Option<String>,
    pub runs: u64,
}

/// Token requests and cache hits of the OAuth actions naming one server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerTokenCounts {
    pub server_id: String,
    pub requests: u64,
    pub cache_hits: u64,
}

/// A vault entry's state and access token expiry (no token).
#[derive(Debug, Clone, PartialEq)]
pub struct VaultExpiry {
    pub name: String,
    pub server_id: String,
    pub state: VaultEntryState,
    pub expires_at: Option<OffsetDateTime>,
}

/// The dashboard's aggregate queries, each served by an index or the counters of migration 9.
#[async_trait]
pub trait DashboardStats: Send + Sync {
    /// Runs that ended in each interval of `window`, by final status (intervals without runs
    /// are left out), oldest first.
    async fn runs_ended_per_interval(&self, window: &CountWindow) -> Result<Vec<StatusCount>>;
    /// The duration classes of the `completed` and `failed` runs that ended in `window`, per
    /// flow (one row per flow and class, at most 117 classes).
    async fn run_duration_classes(&self, window: &CountWindow) -> Result<Vec<DurationClassCount>>;
    /// The at most `limit` flows with the most `failed` runs that ended in `window`, most first.
    async fn flows_with_most_failures(
        &self,
        window: &CountWindow,
        limit: u32,
    ) -> Result<Vec<FlowFailures>>;
    /// The at most `limit` most frequent causes among the last actions of flow `flow_id`'s
    /// newest `sample` failed runs that ended at or after `since`, most frequent first.
    async fn failure_causes(
        &self,
        flow_id: &str,
        since: OffsetDateTime,
        sample: u32,
        limit: u32,
    ) -> Result<Vec<FailureCause>>;
    /// Token requests and cache hits per OAuth server in `window` (at most `limit` servers, by
    /// requests and hits, most first).
    async fn token_requests_per_server(
        &self,
        window: &CountWindow,
        limit: u32,
    ) -> Result<Vec<ServerTokenCounts>>;
    /// At most `limit` vault entries, soonest expiry first (entries without one last).
    async fn vault_expiries(&self, limit: u32) -> Result<Vec<VaultExpiry>>;
    /// How many vault entries are in each state.
    async fn vault_entries_by_state(&self) -> Result<Vec<(VaultEntryState, u64)>>;
}

/// A flow's run durations: how many runs, and the 50th and 95th percentile, each the middle of
/// its duration class.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowDurations {
    pub flow_id: String,
    pub runs: u64,
    pub p50_ms: i64,
    pub p95_ms: i64,
}

/// The upper bound of the duration class starting at `lower_ms` (the rule migration 9's classes
/// were made with: each bound about 20 % above the previous one).
fn class_upper(lower_ms: i64) -> i64 {
    (lower_ms + 1).max((lower_ms as f64 * 1.2).round() as i64)
}

/// Per flow, the percentiles of its duration classes (rows of one flow may come in any order),
/// flows with the most runs first.
pub fn duration_percentiles(classes: &[DurationClassCount]) -> Vec<FlowDurations> {
    let mut flows: std::collections::BTreeMap<&str, Vec<(i64, u64)>> = Default::default();
    for class in classes {
        flows
            .entry(class.flow_id.as_str())
            .or_default()
            .push((class.lower_ms, class.runs));
    }
    let mut out: Vec<FlowDurations> = flows
        .into_iter()
        .map(|(flow_id, mut counts)| {
            counts.sort_unstable();
            let runs: u64 = counts.iter().map(|(_, n)| n).sum();
            let at = |q: f64| {
                // The nearest-rank percentile: the smallest class holding rank ⌈q·n⌉.
                let rank = ((q * runs as f64).ceil() as u64).max(1);
                let mut seen = 0;
                for &(lower, n) in &counts {
                    seen += n;
                    if seen >= rank {
                        return (lower + class_upper(lower)) / 2;
                    }
                }
                0
            };
            FlowDurations {
                flow_id: flow_id.to_owned(),
                runs,
                p50_ms: at(0.5),
                p95_ms: at(0.95),
            }
        })
        .collect();
    out.sort_by(|a, b| b.runs.cmp(&a.runs).then_with(|| a.flow_id.cmp(&b.flow_id)));
    out
}

/// A count from the database (never negative).
fn count(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

// The rows as both backends' queries return them, each turned into its type in one place.

pub(crate) type StatusCountRow = (i64, String, i64);
pub(crate) type DurationClassRow = (String, i64, i64);
pub(crate) type FlowFailuresRow = (String, i64);
pub(crate) type FailureCauseRow = (Option<String>, Option<i64>, Option<String>, i64);
pub(crate) type ServerTokenRow = (String, i64, i64);
pub(crate) type VaultExpiryRow = (String, String, String, Option<i64>);

pub(crate) fn status_counts(rows: Vec<StatusCountRow>) -> Result<Vec<StatusCount>> {
    rows.into_iter()
        .map(|(bucket_ms, status, runs)| {
            Ok(StatusCount {
                bucket_ms,
                status: RunStatus::parse(&status).ok_or_else(|| {
                    crate::StoreError::Corrupt(format!("unknown run status `{status}`"))
                })?,
                runs: count(runs),
            })
        })
        .collect()
}

pub(crate) fn duration_classes(rows: Vec<DurationClassRow>) -> Vec<DurationClassCount> {
    rows.into_iter()
        .map(|(flow_id, lower_ms, runs)| DurationClassCount {
            flow_id,
            lower_ms,
            runs: count(runs),
        })
        .collect()
}

pub(crate) fn flow_failures(rows: Vec<FlowFailuresRow>) -> Vec<FlowFailures> {
    rows.into_iter()
        .map(|(flow_id, failed)| FlowFailures {
            flow_id,
            failed: count(failed),
        })
        .collect()
}

pub(crate) fn failure_causes(rows: Vec<FailureCauseRow>) -> Vec<FailureCause> {
    rows.into_iter()
        .map(|(action_type, status_code, error, runs)| FailureCause {
            action_type,
            status_code,
            error,
            runs: count(runs),
        })
        .collect()
}

pub(crate) fn server_tokens(rows: Vec<ServerTokenRow>) -> Vec<ServerTokenCounts> {
    rows.into_iter()
        .map(|(server_id, requests, hits)| ServerTokenCounts {
            server_id,
            requests: count(requests),
            cache_hits: count(hits),
        })
        .collect()
}

fn vault_state(text: &str) -> Result<VaultEntryState> {
    VaultEntryState::parse(text)
        .ok_or_else(|| crate::StoreError::Corrupt(format!("unknown vault entry state `{text}`")))
}

pub(crate) fn vault_expiries(rows: Vec<VaultExpiryRow>) -> Result<Vec<VaultExpiry>> {
    rows.into_iter()
        .map(|(name, server_id, state, expires_at)| {
            Ok(VaultExpiry {
                name,
                server_id,
                state: vault_state(&state)?,
                expires_at: expires_at.map(crate::at_rest::from_ms).transpose()?,
            })
        })
        .collect()
}

pub(crate) fn vault_states(rows: Vec<(String, i64)>) -> Result<Vec<(VaultEntryState, u64)>> {
    rows.into_iter()
        .map(|(state, n)| Ok((vault_state(&state)?, count(n))))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(flow: &str, lower_ms: i64, runs: u64) -> DurationClassCount {
        DurationClassCount {
            flow_id: flow.into(),
            lower_ms,
            runs,
        }
    }

    #[test]
    fn percentiles_are_the_middle_of_the_class_holding_the_rank() {
        // 10 runs: 9 in [100, 120), 1 in [1000, 1200).
        let got = duration_percentiles(&[class("a", 1000, 1), class("a", 100, 9)]);
        assert_eq!(
            got,
            vec![FlowDurations {
                flow_id: "a".into(),
                runs: 10,
                p50_ms: 110,
                p95_ms: 1100
            }]
        );
    }

    #[test]
    fn windows_end_with_the_interval_holding_now() {
        let now = OffsetDateTime::from_unix_timestamp(3_600 * 5 + 30).unwrap();
        let window = CountWindow::ending_at(now, 3_600_000, 24);
        assert_eq!(window.to_ms, 3_600_000 * 6);
        assert_eq!(window.from_ms, 3_600_000 * 6 - 24 * 3_600_000);
    }
}
