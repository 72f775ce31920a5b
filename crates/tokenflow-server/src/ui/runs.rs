//! The process flow monitor (docs/api.md): the list of runs with filters, one run as its path on
//! the flow diagram and a timeline of its monitor records, both updating live (server-sent
//! events), and cancelling a run.

use std::collections::HashMap;
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use tokenflow_connectors::status::meaning;
use tokenflow_core::flow::ActionKind;
use tokenflow_engine::RunStatus;
use tokenflow_runtime::RuntimeError;
use tokenflow_store::{RunFilter, StoreError};
use utoipa_axum::router::OpenApiRouter;

use super::hints::aadsts_hint;
use super::run_path::{self, Entry, Position};
use super::templates::{render, rfc3339};
use crate::auth::csrf::CsrfForm;
use crate::auth::session::SignedIn;
use crate::error::ApiError;
use crate::state::AppState;

const PAGE_SIZE: u32 = 50;
/// Longest value shown in a table cell.
const MAX_SHOWN: usize = 2000;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .route("/runs", get(runs))
        .route("/runs/{id}", get(run))
        .route("/runs/{id}/fragment", get(run_fragment))
        .route("/runs/{id}/events", get(run_events))
        .route("/runs/{id}/cancel", post(cancel_run))
}

/// A JSON value as table text: strings as they are, the rest as compact JSON, bounded; a value
/// the monitor kept as a summary shows its preview, size and hash.
fn shown(value: &Value) -> String {
    if tokenflow_engine::monitor::is_summary(value) {
        let sha256 = value["sha256"].as_str().unwrap_or_default();
        return format!(
            "{}… ({} bytes, sha256 {}…)",
            value["preview"].as_str().unwrap_or_default(),
            value["bytes"],
            sha256.get(..16).unwrap_or(sha256)
        );
    }
    let text = match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    };
    if text.chars().count() > MAX_SHOWN {
        format!(
            "{}… ({} chars)",
            text.chars().take(MAX_SHOWN).collect::<String>(),
            text.chars().count()
        )
    } else {
        text
    }
}

fn pairs(value: &Value) -> Vec<(String, String)> {
    value
        .as_object()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), shown(v))).collect())
        .unwrap_or_default()
}

async fn runs(
    State(state): State<AppState>,
    SignedIn(session): SignedIn,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let page: u32 = query.get("page").and_then(|p| p.parse().ok()).unwrap_or(0);
    let flow = query.get("flow").filter(|f| !f.is_empty()).cloned();
    let status = query
        .get("status")
        .filter(|s| RunStatus::parse(s).is_some())
        .cloned();
    let since = query.get("since").filter(|s| !s.is_empty()).cloned();
    let started_after = since.as_deref().and_then(|s| {
        let format = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]");
        time::PrimitiveDateTime::parse(s, &format)
            .ok()
            .map(time::PrimitiveDateTime::assume_utc)
    });
    let filter = RunFilter {
        flow_id: flow.clone(),
        status: status.as_deref().and_then(RunStatus::parse),
        started_after,
        limit: PAGE_SIZE + 1,
        offset: page * PAGE_SIZE,
        ..RunFilter::default()
    };
    let (mut rows, flows) = match (
        state.store.list_runs(&filter).await,
        state.store.list_flows().await,
    ) {
        (Ok(rows), Ok(flows)) => (rows, flows),
        (Err(err), _) | (_, Err(err)) => return ApiError::from(err).into_response(),
    };
    let more = rows.len() > PAGE_SIZE as usize;
    rows.truncate(PAGE_SIZE as usize);
    let link = |page: u32| {
        let mut params = url::form_urlencoded::Serializer::new(String::new());
        for (key, value) in [("flow", &flow), ("status", &status), ("since", &since)] {
            if let Some(value) = value {
                params.append_pair(key, value);
            }
        }
        params.append_pair("page", &page.to_string());
        format!("/runs?{}", params.finish())
    };
    let ctx = json!({
        "runs": rows.iter().map(|r| json!({
            "id": r.id, "flow": r.flow_id, "version": r.flow_version, "status": r.status,
            "started_at": rfc3339(r.started_at), "ended_at": r.ended_at.map(rfc3339),
        })).collect::<Vec<_>>(),
        "flows": flows.iter().map(|f| f.id.clone()).collect::<Vec<_>>(),
        "statuses": ["running", "waiting", "completed", "failed", "cancelled"],
        "filter": { "flow": flow, "status": status, "since": since },
        "prev_page": (page > 0).then(|| link(page - 1)),
        "next_page": more.then(|| link(page + 1)),
    });
    render(&state, "runs.html", Some(&session), "runs", ctx)
}

/// The template context of one run: its last monitor records, or with `before` the page of
/// (at most 100) records just before that one.
async fn run_context(
    state: &AppState,
    id: &str,
    before: Option<u64>,
) -> Result<Option<(Value, bool)>, ApiError> {
    let Some(view) = state.runner.load(id).await? else {
        return Ok(None);
    };
    let mut json = view.to_json(state.runner.engine().limits().monitor_value);
    let total = view.run.record_count();
    let shown = tokenflow_runtime::runner::SHOWN_RECORDS as u64;
    // Earlier pages are counted back from where the latest records begin, so no record shows
    // on two pages.
    let latest = view.run.first_record;
    let offset = match before {
        Some(before) if before > 0 && before <= latest => {
            let from = before.saturating_sub(shown);
            let limit = u32::try_from(before - from).unwrap_or(1);
            let page = state
                .runner
                .records_page(id, from, limit)
                .await?
                .map(|page| page.records)
                .unwrap_or_default();
            json["actions"] = Value::Array(page);
            from
        }
        _ => latest,
    };
    let end = offset + json["actions"].as_array().map_or(0, |a| a.len() as u64);
    // `earlier` and `later_before` are the `before` of the neighbouring pages; the page after
    // the last earlier one is the latest (no `before`).
    let paging = json!({
        "first": offset + 1, "last": end, "total": total,
        "earlier": (offset > 0).then_some(offset),
        "later": end < total,
        "later_before": (end < latest).then(|| (end + shown).min(latest)),
    });
    let actions: Vec<Value> =
        json["actions"]
            .as_array()
            .map(|records| {
                records
                .iter()
                .zip(offset + 1..)
                .map(|(record, number)| {
                    let kind = record["type"].as_str().unwrap_or_default();
                    let code = record["status_code"].as_i64().and_then(|c| i32::try_from(c).ok());
                    let error = record["error"].as_str().map(str::to_owned);
                    json!({
                        "number": number, "action": record["action"], "type": kind, "status_code": code,
                        "meaning": ActionKind::parse(kind).zip(code).and_then(|(kind, c)| meaning(kind, c)).unwrap_or(""),
                        "started_at": record["started_at"], "duration_ms": record["duration_ms"],
                        "inputs": pairs(&record["inputs"]), "outputs": pairs(&record["outputs"]),
                        "response": pairs(&record["response"]),
                        "hint": error.as_deref().and_then(aadsts_hint),
                        "error": error, "warnings": record["warnings"],
                    })
                })
                .collect()
            })
            .unwrap_or_default();
    // Live updates replace the page with the latest records, so a page of earlier ones is static.
    let live = !view.run.status.is_final() && end >= total;
    let records = json["actions"].as_array().map_or(&[][..], Vec::as_slice);
    let entries: Vec<Entry<'_>> = (records.iter().zip(offset..))
        .map(|(record, seq)| Entry {
            seq,
            action: record["action"].as_str().unwrap_or_default(),
            status_code: record["status_code"].as_i64(),
        })
        .collect();
    let status = view.run.status;
    let at = Position {
        waiting: view.run.waiting.as_ref().map(|w| w.action.as_str()),
        running: (status == RunStatus::Running)
            .then_some(view.run.next.as_deref())
            .flatten(),
        completed: status == RunStatus::Completed,
        latest: end >= total,
    };
    let marks = run_path::marks(&view.flow, &entries, at);
    let diagram = super::diagram::render_run_svg(&view.flow, &marks);
    let complete = json["device"]["verification_uri_complete"].as_str();
    let device_qr = complete.and_then(super::device_qr::svg);
    let ctx = json!({
        "run": json, "actions": actions, "variables": pairs(&json["variables"]), "live": live,
        "paging": paging, "diagram": diagram, "device_qr": device_qr,
    });
    Ok(Some((ctx, live)))
}

/// `?before=N` on a run page: the page of monitor records before record N.
fn before_query(query: &HashMap<String, String>) -> Option<u64> {
    query.get("before").and_then(|before| before.parse().ok())
}

async fn run(
    State(state): State<AppState>,
    SignedIn(session): SignedIn,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    match run_context(&state, &id, before_query(&query)).await {
        Ok(Some((ctx, _))) => render(&state, "run.html", Some(&session), "runs", ctx),
        Ok(None) => ApiError::NotFound(format!("run `{id}`")).into_response(),
        Err(err) => err.into_response(),
    }
}

async fn run_fragment(
    State(state): State<AppState>,
    SignedIn(session): SignedIn,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    match run_context(&state, &id, before_query(&query)).await {
        Ok(Some((ctx, _))) => render(&state, "run_detail.html", Some(&session), "runs", ctx),
        Ok(None) => ApiError::NotFound(format!("run `{id}`")).into_response(),
        Err(err) => err.into_response(),
    }
}

/// Server-sent events: `update` whenever the stored run changes, `end` once it has ended. Polls
/// the store, so it works whichever instance executed the change.
///
/// Bounded, so that no stream outlives its use: an unknown run is answered 404 (an `EventSource`
/// does not retry that), a stream ends once its run has ended or gone, and after
/// `event_stream_max` in any case — the browser's `EventSource` then reconnects by itself.
async fn run_events(
    State(state): State<AppState>,
    _: SignedIn,
    Path(id): Path<String>,
) -> Response {
    let initial = match state.store.get_run(&id).await {
        Ok(Some(run)) => Some((run.updated_at, run.status)),
        Ok(None) => return (StatusCode::NOT_FOUND, "no such run").into_response(),
        Err(err) => return ApiError::from(err).into_response(),
    };
    let until = tokio::time::Instant::now() + state.settings.event_stream_max;
    let stream = futures_util::stream::unfold(
        (state, id, initial, false),
        move |(state, id, last, done)| async move {
            if done {
                return None;
            }
            loop {
                if tokio::time::timeout_at(until, tokio::time::sleep(Duration::from_millis(300)))
                    .await
                    .is_err()
                {
                    return None;
                }
                let current = state
                    .store
                    .get_run(&id)
                    .await
                    .ok()
                    .flatten()
                    .map(|r| (r.updated_at, r.status));
                if current != last {
                    let ended = current.as_ref().is_none_or(|(_, status)| status.is_final());
                    let event = Event::default().event("update").data(
                        current
                            .as_ref()
                            .map_or("gone".to_owned(), |(_, s)| s.as_str().to_owned()),
                    );
                    return Some((Ok::<Event, Infallible>(event), (state, id, current, ended)));
                }
                if current
                    .as_ref()
                    .is_some_and(|(_, status)| status.is_final())
                {
                    return Some((
                        Ok(Event::default().event("end").data("end")),
                        (state, id, current, true),
                    ));
                }
            }
        },
    );
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}

async fn cancel_run(
    State(state): State<AppState>,
    Path(id): Path<String>,
    _: CsrfForm<HashMap<String, String>>,
) -> Response {
    match state.runner.cancel(&id).await {
        Ok(_) | Err(RuntimeError::Conflict(_) | RuntimeError::Store(StoreError::Conflict(_))) => {
            Redirect::to(&format!("/runs/{id}")).into_response()
        }
        Err(err) => ApiError::from(err).into_response(),
    }
}
