//! Runs: start (`POST /api/flows/{id}/runs`), show, list, cancel.

use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use tokenflow_engine::RunStatus;
use tokenflow_store::RunFilter;

use crate::error::{ApiError, ApiJson};
use crate::runner::RunView;
use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/flows/{id}/runs", post(start))
        .route("/api/runs", get(list))
        .route("/api/runs/{id}", get(show).delete(cancel))
}

/// The response for a run: 201 + `Location` while it waits at a user login, else 200.
pub fn run_response(view: &RunView) -> Response {
    let body = Json(view.to_json());
    if view.run.status == RunStatus::Waiting {
        let location = format!("/api/runs/{}", view.run.id);
        (StatusCode::CREATED, [(header::LOCATION, location)], body).into_response()
    } else {
        (StatusCode::OK, body).into_response()
    }
}

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
    Ok(run_response(&view))
}

async fn show(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    match state.runner.load(&id).await? {
        Some(view) => Ok(Json(view.to_json())),
        None => Err(ApiError::NotFound(format!("run `{id}`"))),
    }
}

async fn cancel(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(state.runner.cancel(&id).await?.to_json()))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    flow: Option<String>,
    status: Option<String>,
    limit: Option<u32>,
    offset: Option<u32>,
}

async fn list(
    State(state): State<AppState>,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
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
        status: query.status,
        limit: query.limit.unwrap_or(100).min(1000),
        offset: query.offset.unwrap_or(0),
        ..RunFilter::default()
    };
    let runs = state.store.list_runs(&filter).await?;
    let format = |t: time::OffsetDateTime| {
        t.format(&time::format_description::well_known::Rfc3339)
            .ok()
    };
    let runs: Vec<Value> = runs
        .into_iter()
        .map(|run| {
            json!({
                "id": run.id,
                "flow": run.flow_id,
                "flow_version": run.flow_version,
                "status": run.status,
                "started_at": format(run.started_at),
                "ended_at": run.ended_at.and_then(format),
            })
        })
        .collect();
    Ok(Json(
        json!({ "runs": runs, "limit": filter.limit, "offset": filter.offset }),
    ))
}
