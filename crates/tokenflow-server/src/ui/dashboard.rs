//! The dashboard, the UI's landing page after sign-in (docs/operations.md, "Dashboard"): for the
//! last hour, day or week, runs per interval by final status, run durations per flow, the flows
//! with the most failures and what their last actions answered, token requests and cache hits
//! per OAuth server, and the vault's entries on a time axis of their expiry.
//!
//! Every figure is one of the store's [`DashboardStats`] queries, over counters its triggers
//! keep, so the page costs the same with a thousand runs or a million (bench/run, "Dashboard").
//! The charts are SVG drawn on the server ([`super::charts`]), each with a table of the same
//! figures, so the page needs no script to be read.

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};
use time::OffsetDateTime;
use tokenflow_connectors::status::meaning;
use tokenflow_core::flow::ActionKind;
use tokenflow_core::{RunStatus, VaultEntryState};
use tokenflow_store::dashboard::duration_percentiles;
use tokenflow_store::{CountWindow, DashboardStats, StoreError};
use utoipa_axum::router::OpenApiRouter;

use super::charts::{Point, Series, bar_rows, stacked_bars, timeline};
use super::templates::{render, rfc3339};
use crate::auth::session::SignedIn;
use crate::error::ApiError;
use crate::state::AppState;

/// Bounds of what one page shows (docs/operations.md, "Dashboard").
const FLOWS_SHOWN: usize = 20;
const FAILING_FLOWS: u32 = 10;
/// The newest failed runs of a flow whose last actions are counted, and the causes listed.
const FAILURE_SAMPLE: u32 = 100;
const CAUSES_SHOWN: u32 = 5;
const SERVERS_SHOWN: u32 = 20;
const VAULT_ENTRIES_SHOWN: u32 = 50;

/// The final statuses, in the charts' order.
const FINAL: [RunStatus; 3] = [
    RunStatus::Completed,
    RunStatus::Failed,
    RunStatus::Cancelled,
];

/// A window the dashboard offers: its intervals, and how their labels are written.
struct Window {
    name: &'static str,
    label: &'static str,
    period_ms: i64,
    intervals: i64,
    /// Every how many intervals a label is written under the bars.
    every: usize,
}

const WINDOWS: [Window; 3] = [
    Window {
        name: "hour",
        label: "Last hour",
        period_ms: 60_000,
        intervals: 60,
        every: 10,
    },
    Window {
        name: "day",
        label: "Last day",
        period_ms: 3_600_000,
        intervals: 24,
        every: 3,
    },
    Window {
        name: "week",
        label: "Last week",
        period_ms: 21_600_000,
        intervals: 28,
        every: 4,
    },
];

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().route("/dashboard", get(dashboard))
}

async fn dashboard(
    State(state): State<AppState>,
    SignedIn(session): SignedIn,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let name = query.get("window").map_or("day", String::as_str);
    let Some(window) = WINDOWS.iter().find(|w| w.name == name) else {
        return crate::html::message(
            StatusCode::BAD_REQUEST,
            "Unknown window",
            "The dashboard shows the last hour, day or week: window=hour, day or week.",
            Some(("/dashboard", "Dashboard")),
        );
    };
    match figures(state.store.as_ref(), window, state.clock.now()).await {
        Ok(mut ctx) => {
            ctx["windows"] = WINDOWS
                .iter()
                .map(|w| json!({ "name": w.name, "label": w.label, "active": w.name == window.name }))
                .collect();
            render(&state, "dashboard.html", Some(&session), "dashboard", ctx)
        }
        Err(err) => ApiError::from(err).into_response(),
    }
}

/// Everything the page shows, read from the store.
async fn figures(
    store: &dyn DashboardStats,
    window: &Window,
    now: OffsetDateTime,
) -> Result<Value, StoreError> {
    let counts = CountWindow::ending_at(now, window.period_ms, window.intervals);
    let since = ms_time(counts.from_ms);
    let (per_interval, classes, failing, tokens, vault, states) = tokio::try_join!(
        store.runs_ended_per_interval(&counts),
        store.run_duration_classes(&counts),
        store.flows_with_most_failures(&counts, FAILING_FLOWS),
        store.token_requests_per_server(&counts, SERVERS_SHOWN),
        store.vault_expiries(VAULT_ENTRIES_SHOWN),
        store.vault_entries_by_state(),
    )?;

    // Runs per interval by final status.
    let n = usize::try_from(window.intervals).unwrap_or(0);
    let mut grid = vec![[0u64; 3]; n];
    for count in &per_interval {
        let i = usize::try_from((count.bucket_ms - counts.from_ms) / counts.period_ms).ok();
        let s = FINAL.iter().position(|s| *s == count.status);
        if let (Some(row), Some(s)) = (i.and_then(|i| grid.get_mut(i)), s) {
            row[s] += count.runs;
        }
    }
    let labels: Vec<String> = (0..n)
        .map(|i| interval_label(window, counts.from_ms + counts.period_ms * i as i64))
        .collect();
    let totals: Vec<u64> = (0..3)
        .map(|s| grid.iter().map(|row| row[s]).sum())
        .collect();
    let series: Vec<Series> = FINAL
        .iter()
        .enumerate()
        .map(|(s, status)| Series {
            name: status.as_str().to_owned(),
            class: status.as_str().to_owned(),
            values: grid.iter().map(|row| row[s] as f64).collect(),
        })
        .collect();
    let summary = format!(
        "{} runs ended in the {}: {} completed, {} failed, {} cancelled.",
        totals.iter().sum::<u64>(),
        window.label.to_lowercase(),
        totals[0],
        totals[1],
        totals[2]
    );
    let runs_chart = stacked_bars(
        "chart-runs",
        &format!(
            "Runs per interval by final status, {}",
            window.label.to_lowercase()
        ),
        &summary,
        &labels,
        &series,
        window.every,
    );
    let runs_table: Vec<Value> = grid
        .iter()
        .zip(&labels)
        .filter(|(row, _)| row.iter().any(|n| *n > 0))
        .map(|(row, label)| json!({ "label": label, "counts": row }))
        .collect();

    // Durations per flow.
    let mut durations = duration_percentiles(&classes);
    durations.truncate(FLOWS_SHOWN);
    let flow_names: Vec<String> = durations.iter().map(|d| d.flow_id.clone()).collect();
    let durations_chart = bar_rows(
        "chart-durations",
        "Run duration per flow (p50 and p95)",
        &durations
            .iter()
            .map(|d| {
                format!(
                    "{}: p50 {}, p95 {} over {} runs",
                    d.flow_id,
                    duration(d.p50_ms as f64),
                    duration(d.p95_ms as f64),
                    d.runs
                )
            })
            .collect::<Vec<_>>()
            .join("; ")
            .or_if_empty("No completed or failed run ended in this window."),
        &flow_names,
        &[
            Series {
                name: "p50".into(),
                class: "p50".into(),
                values: durations.iter().map(|d| d.p50_ms as f64).collect(),
            },
            Series {
                name: "p95".into(),
                class: "p95".into(),
                values: durations.iter().map(|d| d.p95_ms as f64).collect(),
            },
        ],
        duration,
    );

    // The flows with the most failures, and what their failed runs' last actions answered.
    let mut failures = Vec::with_capacity(failing.len());
    for flow in &failing {
        let causes = store
            .failure_causes(&flow.flow_id, since, FAILURE_SAMPLE, CAUSES_SHOWN)
            .await?;
        failures.push(json!({
            "flow": flow.flow_id,
            "failed": flow.failed,
            "causes": causes.iter().map(|c| json!({
                "action_type": c.action_type,
                "status_code": c.status_code,
                "meaning": c.action_type.as_deref().and_then(ActionKind::parse)
                    .zip(c.status_code.and_then(|code| i32::try_from(code).ok()))
                    .and_then(|(kind, code)| meaning(kind, code)),
                "error": c.error,
                "runs": c.runs,
            })).collect::<Vec<_>>(),
        }));
    }
    let failures_chart = bar_rows(
        "chart-failures",
        "Flows with the most failed runs",
        &failing
            .iter()
            .map(|f| format!("{}: {} failed", f.flow_id, f.failed))
            .collect::<Vec<_>>()
            .join("; ")
            .or_if_empty("No failed run ended in this window."),
        &failing
            .iter()
            .map(|f| f.flow_id.clone())
            .collect::<Vec<_>>(),
        &[Series {
            name: "failed runs".into(),
            class: "failed".into(),
            values: failing.iter().map(|f| f.failed as f64).collect(),
        }],
        whole,
    );

    // Token requests and cache hits per OAuth server.
    let tokens_chart = bar_rows(
        "chart-tokens",
        "Token requests and cache hits per OAuth server",
        &tokens
            .iter()
            .map(|t| {
                format!(
                    "{}: {} token requests, {} cache hits",
                    t.server_id, t.requests, t.cache_hits
                )
            })
            .collect::<Vec<_>>()
            .join("; ")
            .or_if_empty("No OAuth action named a server in this window."),
        &tokens
            .iter()
            .map(|t| t.server_id.clone())
            .collect::<Vec<_>>(),
        &[
            Series {
                name: "token requests".into(),
                class: "requests".into(),
                values: tokens.iter().map(|t| t.requests as f64).collect(),
            },
            Series {
                name: "cache hits".into(),
                class: "hits".into(),
                values: tokens.iter().map(|t| t.cache_hits as f64).collect(),
            },
        ],
        whole,
    );

    // The vault: entries by state, and the next expiries on a time axis from now.
    let state_count = |wanted: VaultEntryState| {
        states
            .iter()
            .find(|(state, _)| *state == wanted)
            .map_or(0, |(_, n)| *n)
    };
    let expiring: Vec<_> = vault.iter().filter(|e| e.expires_at.is_some()).collect();
    let end = expiring
        .iter()
        .filter_map(|e| e.expires_at)
        .max()
        .filter(|last| *last > now)
        .unwrap_or(now + time::Duration::hours(1));
    let points: Vec<Point> = expiring
        .iter()
        .filter_map(|e| {
            e.expires_at.map(|at| Point {
                label: e.name.clone(),
                class: e.state.as_str().to_owned(),
                at: at.unix_timestamp(),
                when: when(at),
            })
        })
        .collect();
    let vault_chart = timeline(
        "chart-vault",
        "Vault entries by access token expiry",
        &format!(
            "{} entries ok, {} need a login; {} with an expiry shown from now to {}.",
            state_count(VaultEntryState::Ok),
            state_count(VaultEntryState::NeedsLogin),
            points.len(),
            when(end)
        ),
        &points,
        (now.unix_timestamp(), end.unix_timestamp()),
        (&format!("now ({})", when(now)), &when(end)),
    );

    Ok(json!({
        "window": window.name,
        "window_label": window.label,
        "from": rfc3339(since),
        "to": rfc3339(ms_time(counts.to_ms)),
        "totals": { "completed": totals[0], "failed": totals[1], "cancelled": totals[2], "all": totals.iter().sum::<u64>() },
        "runs_chart": runs_chart,
        "runs_table": runs_table,
        "durations_chart": durations_chart,
        "durations": durations.iter().map(|d| json!({
            "flow": d.flow_id, "runs": d.runs, "p50": duration(d.p50_ms as f64), "p95": duration(d.p95_ms as f64),
        })).collect::<Vec<_>>(),
        "failures_chart": failures_chart,
        "failures": failures,
        "tokens_chart": tokens_chart,
        "tokens": tokens.iter().map(|t| json!({
            "server": t.server_id, "requests": t.requests, "cache_hits": t.cache_hits,
        })).collect::<Vec<_>>(),
        "vault_chart": vault_chart,
        "vault": vault.iter().map(|e| json!({
            "name": e.name, "server": e.server_id, "state": e.state.as_str(),
            "expires_at": e.expires_at.map(rfc3339),
        })).collect::<Vec<_>>(),
        "vault_states": { "ok": state_count(VaultEntryState::Ok), "needs_login": state_count(VaultEntryState::NeedsLogin) },
    }))
}

fn ms_time(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// An interval's start as its label: the time of day, with the date for six-hour intervals.
fn interval_label(window: &Window, start_ms: i64) -> String {
    let at = ms_time(start_ms);
    let format = if window.period_ms >= 21_600_000 {
        time::macros::format_description!("[month]-[day] [hour]h")
    } else {
        time::macros::format_description!("[hour]:[minute]")
    };
    at.format(&format).unwrap_or_default()
}

fn when(at: OffsetDateTime) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute] UTC");
    at.format(&format).unwrap_or_default()
}

/// Milliseconds as the charts write them: `850 ms`, `1.2 s`, `3.5 min`.
fn duration(ms: f64) -> String {
    if ms < 1_000.0 {
        format!("{ms:.0} ms")
    } else if ms < 60_000.0 {
        format!("{:.1} s", ms / 1_000.0)
    } else {
        format!("{:.1} min", ms / 60_000.0)
    }
}

/// A chart's description, or what it says when there is nothing to draw.
trait OrIfEmpty {
    fn or_if_empty(self, nothing: &str) -> String;
}

impl OrIfEmpty for String {
    fn or_if_empty(self, nothing: &str) -> String {
        if self.is_empty() {
            nothing.to_owned()
        } else {
            self
        }
    }
}

fn whole(value: f64) -> String {
    format!("{value:.0}")
}
