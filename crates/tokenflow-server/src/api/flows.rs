//! Flows: list, show, and `PUT /api/flows/{id}` with the YAML as the body (validated, versioned).
//! Validation alone, versions and their diff are [`super::flow_versions`]'s.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use serde::Serialize;
use tokenflow_engine::ServerDirectory;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(show, put))
        .routes(routes!(schedules))
}

/// A flow (its newest version).
#[derive(Debug, Serialize, ToSchema)]
pub struct FlowBody {
    pub id: String,
    pub version: i64,
    pub description: Option<String>,
    pub schedule: Option<String>,
    /// No action needs a person.
    pub system_flow: bool,
    pub required_inputs: Vec<String>,
    pub actions: Vec<String>,
    /// `GET /api/flows/{id}` only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub yaml: Option<String>,
    /// `PUT` only: e.g. an OAuth server that is not configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warnings: Option<Vec<String>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FlowList {
    pub flows: Vec<FlowBody>,
}

/// A schedule of a system flow.
#[derive(Debug, Serialize, ToSchema)]
pub struct ScheduleBody {
    pub flow: String,
    pub schedule: String,
    /// RFC 3339.
    pub next_due: Option<String>,
    pub last_firing: Option<String>,
    /// The run the last firing started.
    pub last_run: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ScheduleList {
    pub schedules: Vec<ScheduleBody>,
}

pub(super) fn summary(flow: &tokenflow_core::flow::Flow, version: i64) -> FlowBody {
    FlowBody {
        id: flow.id.clone(),
        version,
        description: flow.description.clone(),
        schedule: flow.schedule.clone(),
        system_flow: flow.is_system_flow(),
        required_inputs: flow
            .required_inputs()
            .into_iter()
            .map(|name| name.to_string())
            .collect(),
        actions: flow.actions.keys().map(ToString::to_string).collect(),
        yaml: None,
        warnings: None,
    }
}

/// The newest version of every flow.
#[utoipa::path(get, path = "/api/flows", tag = "flows",
    responses((status = 200, body = FlowList), (status = 401, body = ErrorBody)), security(("api_key" = [])))]
async fn list(State(state): State<AppState>) -> Result<Json<FlowList>, ApiError> {
    let flows = state
        .catalog
        .all()
        .await?
        .iter()
        .map(|(flow, row)| summary(flow, row.version))
        .collect();
    Ok(Json(FlowList { flows }))
}

/// The newest version of one flow, with its YAML.
#[utoipa::path(get, path = "/api/flows/{id}", tag = "flows",
    params(("id" = String, Path, description = "The flow id")),
    responses((status = 200, body = FlowBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("api_key" = [])))]
async fn show(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<FlowBody>, ApiError> {
    let Some((flow, version)) = state.catalog.current(&id).await? else {
        return Err(ApiError::NotFound(format!("flow `{id}`")));
    };
    let mut body = summary(&flow, version);
    body.yaml = Some(flow.source.clone());
    Ok(Json(body))
}

/// Stores a flow (YAML body) as its newest version, after validation.
#[utoipa::path(put, path = "/api/flows/{id}", tag = "flows",
    params(("id" = String, Path, description = "The flow id; must equal the YAML's `id`")),
    request_body(content = String, description = "The flow in YAML", content_type = "application/yaml"),
    responses(
        (status = 201, description = "A new version was stored", body = FlowBody),
        (status = 200, description = "Identical to the newest version; nothing changed", body = FlowBody),
        (status = 400, description = "Invalid flow: every problem with file:line:column", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 413, body = ErrorBody), (status = 415, body = ErrorBody)),
    security(("api_key" = [])))]
async fn put(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<FlowBody>), ApiError> {
    let yaml = yaml_text(&headers, &body)?;
    let accepted = state
        .catalog
        .put(
            &id,
            yaml,
            &format!("{id}.yaml"),
            state.registry.ids(),
            state.clock.now(),
        )
        .await?;
    let status = if accepted.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let mut body = summary(&accepted.flow, accepted.row.version);
    body.warnings = Some(accepted.warnings.iter().map(ToString::to_string).collect());
    Ok((status, Json(body)))
}

/// A request body that carries a flow: YAML by its `Content-Type`, and UTF-8.
pub(super) fn yaml_text<'a>(headers: &HeaderMap, body: &'a [u8]) -> Result<&'a str, ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if !matches!(
        essence.as_str(),
        "application/yaml" | "application/x-yaml" | "text/yaml" | "text/plain"
    ) {
        return Err(ApiError::UnsupportedMediaType(
            "send the flow as YAML (Content-Type: application/yaml)".to_owned(),
        ));
    }
    std::str::from_utf8(body)
        .map_err(|_| ApiError::InvalidInput("the body is not UTF-8".to_owned()))
}

/// Scheduled flows with their next due time and last firing.
#[utoipa::path(get, path = "/api/schedules", tag = "flows",
    responses((status = 200, body = ScheduleList), (status = 401, body = ErrorBody)), security(("api_key" = [])))]
async fn schedules(State(state): State<AppState>) -> Result<Json<ScheduleList>, ApiError> {
    let now = state.clock.now().unix_timestamp();
    let format = |secs: i64| {
        time::OffsetDateTime::from_unix_timestamp(secs)
            .ok()
            .and_then(|t| {
                t.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            })
    };
    let mut schedules = Vec::new();
    for (flow, _) in state.catalog.all().await? {
        let Some(schedule) = &flow.schedule else {
            continue;
        };
        let last = state.store.last_firing(&flow.id).await?;
        schedules.push(ScheduleBody {
            flow: flow.id.clone(),
            schedule: schedule.clone(),
            next_due: tokenflow_runtime::scheduler::next_due(schedule, now).and_then(format),
            last_firing: last.as_ref().and_then(|f| format(f.due)),
            last_run: last.map(|f| f.run_id),
        });
    }
    Ok(Json(ScheduleList { schedules }))
}
