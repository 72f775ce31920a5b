//! Runs: start (`POST /api/flows/{id}/runs`), show, list, cancel, and a run's monitor records a
//! page at a time (`GET /api/runs/{id}/actions`): a run's JSON shows only its last records, so an
//! answer stays small however long the run.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tokenflow_engine::{ActionRecord, RunStatus};
use tokenflow_store::RunFilter;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ApiError, ApiJson, ErrorBody};
use crate::state::AppState;
use tokenflow_runtime::runner::{ActionRecordBody, RunBody, RunView, SHOWN_RECORDS};

/// A page of a run's monitor records, in execution order.
#[derive(Debug, Serialize, ToSchema)]
pub struct ActionPage {
    pub run: String,
    /// How many records the run has.
    pub total: u64,
    /// The sequence number of `actions[0]`.
    pub offset: u64,
    pub limit: u32,
    pub actions: Vec<ActionRecordBody>,
    /// The next page, while there is one.
    pub next: Option<String>,
}

/// A run in a list.
#[derive(Debug, Serialize, ToSchema)]
pub struct RunSummary {
    pub id: String,
    pub flow: String,
    pub flow_version: i64,
    /// `running`, `waiting`, `completed`, `failed`, `cancelled`.
    #[schema(value_type = String)]
    pub status: RunStatus,
    /// RFC 3339.
    pub started_at: Option<String>,
    pub ended_at: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RunList {
    pub runs: Vec<RunSummary>,
    pub limit: u32,
    pub offset: u32,
}

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(start))
        .routes(routes!(list))
        .routes(routes!(show, cancel))
        .routes(routes!(actions))
}

/// The response for a run: 201 + `Location` while it waits at a user or device login, else 200.
pub fn run_response(state: &AppState, view: &RunView) -> Response {
    let body = Json(view.body(monitor_value_limit(state)));
    if view.run.status == RunStatus::Waiting {
        let location = format!("/api/runs/{}", view.run.id);
        (StatusCode::CREATED, [(header::LOCATION, location)], body).into_response()
    } else {
        (StatusCode::OK, body).into_response()
    }
}

/// Runs the newest version of a flow with the given input variables.
#[utoipa::path(post, path = "/api/flows/{id}/runs", tag = "runs",
    params(("id" = String, Path, description = "The flow id")),
    request_body(content = Object, description = "Input variables by name (optional)", content_type = "application/json"),
    responses(
        (status = 200, description = "The run ended (completed, failed or cancelled)", body = RunBody),
        (status = 201, description = "The run waits at a user login (see `authorization_url`) or a device login (see `device`)", body = RunBody,
            headers(("location" = String, description = "/api/runs/{run}"))),
        (status = 400, description = "Invalid JSON or unknown/missing input variables", body = ErrorBody),
        (status = 401, description = "Missing or invalid API key", body = ErrorBody),
        (status = 404, description = "No such flow", body = ErrorBody),
        (status = 413, description = "Body over 1 MiB", body = ErrorBody),
        (status = 415, description = "Not application/json", body = ErrorBody),
        (status = 429, description = "`too_many_waiting_runs`: the flow has `max_waiting_runs_per_flow` runs waiting for a sign-in; or `too_many_failed_attempts` (with `Retry-After`) after failed API keys from this address", body = ErrorBody)),
    security(("api_key" = [])))]
async fn start(
    State(state): State<AppState>,
    Path(id): Path<String>,
    request: axum::extract::Request,
) -> Result<Response, ApiError> {
    // An empty body means "no inputs"; anything else must be a JSON object.
    let empty = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .is_some_and(|len| len.as_bytes() == b"0")
        || (request.headers().get(header::CONTENT_TYPE).is_none()
            && request.headers().get(header::TRANSFER_ENCODING).is_none()
            && request.headers().get(header::CONTENT_LENGTH).is_none());
    let inputs = if empty {
        Map::new()
    } else {
        let ApiJson(inputs) = <ApiJson<Map<String, Value>> as axum::extract::FromRequest<
            AppState,
        >>::from_request(request, &state)
        .await?;
        inputs
    };
    let view = state.runner.start(&id, inputs, None).await?;
    Ok(run_response(&state, &view))
}

fn monitor_value_limit(state: &AppState) -> usize {
    state.runner.engine().limits().monitor_value
}

/// One run with its last monitor records (at most 100; `earlier_actions` reads the ones before).
#[utoipa::path(get, path = "/api/runs/{id}", tag = "runs",
    params(("id" = String, Path, description = "The run id")),
    responses((status = 200, body = RunBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("api_key" = [])))]
async fn show(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<RunBody>, ApiError> {
    match state.runner.load(&id).await? {
        Some(view) => Ok(Json(view.body(monitor_value_limit(&state)))),
        None => Err(ApiError::NotFound(format!("run `{id}`"))),
    }
}

/// Cancels a run that has not ended (a waiting run's pending login is discarded).
#[utoipa::path(delete, path = "/api/runs/{id}", tag = "runs",
    params(("id" = String, Path, description = "The run id")),
    responses((status = 200, description = "Cancelled", body = RunBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, description = "The run has already ended", body = ErrorBody)),
    security(("api_key" = [])))]
async fn cancel(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<RunBody>, ApiError> {
    Ok(Json(
        state
            .runner
            .cancel(&id)
            .await?
            .body(monitor_value_limit(&state)),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ActionsQuery {
    offset: Option<u64>,
    limit: Option<u32>,
}

/// The most records one page holds.
const MAX_PAGE: u32 = 1000;

/// A run's monitor records in execution order, a page at a time.
#[utoipa::path(get, path = "/api/runs/{id}/actions", tag = "runs",
    params(
        ("id" = String, Path, description = "The run id"),
        ("offset" = Option<u64>, Query, description = "The first record's sequence number (0 is the run's first action; default 0)"),
        ("limit" = Option<u32>, Query, description = "At most this many (default 100, max 1000)")),
    responses((status = 200, body = ActionPage), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("api_key" = [])))]
async fn actions(
    State(state): State<AppState>,
    Path(id): Path<String>,
    query: Result<Query<ActionsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<ActionPage>, ApiError> {
    let Query(query) = query.map_err(|err| ApiError::InvalidInput(err.body_text()))?;
    let offset = query.offset.unwrap_or(0);
    let limit = match query.limit {
        None => SHOWN_RECORDS as u32,
        Some(limit) => limit.clamp(1, MAX_PAGE),
    };
    let Some(page) = state.runner.records_page(&id, offset, limit).await? else {
        return Err(ApiError::NotFound(format!("run `{id}`")));
    };
    let end = offset.saturating_add(page.records.len() as u64);
    let next =
        (end < page.total).then(|| format!("/api/runs/{id}/actions?offset={end}&limit={limit}"));
    // The records as stored: a record that does not read as one is the store's fault, not the
    // caller's.
    let actions = page
        .records
        .into_iter()
        .map(|record| {
            serde_json::from_value::<ActionRecord>(record).map(|r| ActionRecordBody::from(&r))
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(ApiError::internal)?;
    Ok(Json(ActionPage {
        run: id,
        total: page.total,
        offset: page.offset,
        limit,
        actions,
        next,
    }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    flow: Option<String>,
    status: Option<String>,
    limit: Option<u32>,
    offset: Option<u32>,
}

/// Runs, newest first.
#[utoipa::path(get, path = "/api/runs", tag = "runs",
    params(
        ("flow" = Option<String>, Query, description = "Only runs of this flow"),
        ("status" = Option<String>, Query, description = "running, waiting, completed, failed or cancelled"),
        ("limit" = Option<u32>, Query, description = "At most this many (default 100, max 1000)"),
        ("offset" = Option<u32>, Query, description = "Skip this many")),
    responses((status = 200, body = RunList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("api_key" = [])))]
async fn list(
    State(state): State<AppState>,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<RunList>, ApiError> {
    let Query(query) = query.map_err(|err| ApiError::InvalidInput(err.body_text()))?;
    if let Some(status) = &query.status
        && RunStatus::parse(status).is_none()
    {
        return Err(ApiError::InvalidInput(format!(
            "unknown status `{status}` (running, waiting, completed, failed, cancelled)"
        )));
    }
    let filter = RunFilter {
        flow_id: query.flow,
        status: query.status.as_deref().and_then(RunStatus::parse),
        limit: query.limit.unwrap_or(100).min(1000),
        offset: query.offset.unwrap_or(0),
        ..RunFilter::default()
    };
    let runs = state.store.list_runs(&filter).await?;
    let format = |t: time::OffsetDateTime| {
        t.format(&time::format_description::well_known::Rfc3339)
            .ok()
    };
    let runs = runs
        .into_iter()
        .map(|run| RunSummary {
            id: run.id,
            flow: run.flow_id,
            flow_version: run.flow_version,
            status: run.status,
            started_at: format(run.started_at),
            ended_at: run.ended_at.and_then(format),
        })
        .collect();
    Ok(Json(RunList {
        runs,
        limit: filter.limit,
        offset: filter.offset,
    }))
}
