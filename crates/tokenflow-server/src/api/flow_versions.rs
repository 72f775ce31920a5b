//! Editing flows (docs/flows.md, "Editing flows in the browser"): validation without storing
//! (`POST /api/flows/validate`, what the browser editor calls as you type), a flow's versions, one
//! version, and a line diff of two versions. The web UI's editor answers from the same functions
//! ([`validation`], [`diff`]), so the page and the API cannot disagree.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use serde::{Deserialize, Serialize};
use tokenflow_core::flow::FlowError;
use tokenflow_core::line_diff::{Change, diff_lines};
use tokenflow_engine::ServerDirectory;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::flows::{FlowBody, summary, yaml_text};
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;
use crate::ui::diagram;

/// The most versions a list shows (the newest ones); older versions stay readable one by one.
pub const MAX_LISTED_VERSIONS: u32 = 100;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(validate))
        .routes(routes!(versions))
        .routes(routes!(version))
        .routes(routes!(diff_versions))
}

/// One problem of a flow, where it is (1-based).
#[derive(Debug, Serialize, ToSchema)]
pub struct ProblemBody {
    pub line: u64,
    pub column: u64,
    pub message: String,
}

impl From<&FlowError> for ProblemBody {
    fn from(problem: &FlowError) -> Self {
        ProblemBody {
            line: problem.line,
            column: problem.column,
            message: problem.message.clone(),
        }
    }
}

/// The outcome of validating a flow; nothing is stored.
#[derive(Debug, Serialize, ToSchema)]
pub struct ValidationBody {
    /// No problems: `PUT /api/flows/{id}` would store it.
    pub valid: bool,
    /// Every problem (a YAML syntax error stops at the first one, as the parser cannot go on).
    pub problems: Vec<ProblemBody>,
    /// What would not stop it, such as an OAuth server that is not configured.
    pub warnings: Vec<ProblemBody>,
    /// The flow's diagram (SVG), when it is valid.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diagram_svg: Option<String>,
}

/// Validates `yaml` as flow `id` (any id when `None`), as storing it would.
pub fn validation(state: &AppState, id: Option<&str>, yaml: &str) -> ValidationBody {
    let file = format!("{}.yaml", id.unwrap_or("flow"));
    match state
        .catalog
        .validate(id, yaml, &file, state.registry.ids())
    {
        Ok(parsed) => ValidationBody {
            valid: true,
            problems: Vec::new(),
            warnings: parsed.warnings.iter().map(ProblemBody::from).collect(),
            diagram_svg: Some(diagram::render_svg(&parsed.flow)),
        },
        Err(problems) => ValidationBody {
            valid: false,
            problems: problems.0.iter().map(ProblemBody::from).collect(),
            warnings: Vec::new(),
            diagram_svg: None,
        },
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ValidateQuery {
    id: Option<String>,
}

/// Validates a flow (YAML body) without storing it: every problem with its line and column, and
/// the diagram of a valid flow.
#[utoipa::path(post, path = "/api/flows/validate", tag = "flows",
    params(("id" = Option<String>, Query, description = "The flow id the YAML's `id` must equal (as for `PUT /api/flows/{id}`)")),
    request_body(content = String, description = "The flow in YAML (at most 1 MiB)", content_type = "application/yaml"),
    responses(
        (status = 200, description = "Validated; `valid` says whether it has problems", body = ValidationBody),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 415, body = ErrorBody)),
    security(("api_key" = [])))]
async fn validate(
    State(state): State<AppState>,
    query: Result<Query<ValidateQuery>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<ValidationBody>, ApiError> {
    let Query(query) = query.map_err(|err| ApiError::InvalidInput(err.body_text()))?;
    let yaml = yaml_text(&headers, &body)?;
    Ok(Json(validation(&state, query.id.as_deref(), yaml)))
}

/// A version of a flow in a list.
#[derive(Debug, Serialize, ToSchema)]
pub struct VersionBody {
    pub version: i64,
    /// RFC 3339.
    pub created_at: String,
    /// The YAML's length in bytes.
    pub bytes: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct VersionList {
    pub flow: String,
    /// Newest first, at most 100.
    pub versions: Vec<VersionBody>,
}

/// A flow's versions, newest first (at most 100), or `NotFound` for an unknown flow.
pub async fn version_list(state: &AppState, id: &str) -> Result<VersionList, ApiError> {
    let rows = state
        .store
        .list_flow_versions(id, MAX_LISTED_VERSIONS)
        .await?;
    if rows.is_empty() {
        return Err(ApiError::NotFound(format!("flow `{id}`")));
    }
    let versions = rows
        .iter()
        .map(|row| VersionBody {
            version: row.version,
            created_at: row
                .created_at
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
            bytes: row.bytes,
        })
        .collect();
    Ok(VersionList {
        flow: id.to_owned(),
        versions,
    })
}

/// A flow's versions, newest first (the newest 100).
#[utoipa::path(get, path = "/api/flows/{id}/versions", tag = "flows",
    params(("id" = String, Path, description = "The flow id")),
    responses((status = 200, body = VersionList), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("api_key" = [])))]
async fn versions(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<VersionList>, ApiError> {
    Ok(Json(version_list(&state, &id).await?))
}

/// One version of a flow, with its YAML.
#[utoipa::path(get, path = "/api/flows/{id}/versions/{version}", tag = "flows",
    params(("id" = String, Path, description = "The flow id"), ("version" = i64, Path, description = "The version")),
    responses((status = 200, body = FlowBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("api_key" = [])))]
async fn version(
    State(state): State<AppState>,
    Path((id, version)): Path<(String, i64)>,
) -> Result<Json<FlowBody>, ApiError> {
    let Some(flow) = state.catalog.version(&id, version).await? else {
        return Err(ApiError::NotFound(format!("flow `{id}` version {version}")));
    };
    let mut body = summary(&flow, version);
    body.yaml = Some(flow.source.clone());
    Ok(Json(body))
}

/// What became of a line between two versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LineChange {
    Same,
    Removed,
    Added,
}

/// One line of a diff, with its number in the older (`from`) and the newer (`to`) version.
#[derive(Debug, Serialize, ToSchema)]
pub struct DiffLineBody {
    pub change: LineChange,
    pub old_line: Option<usize>,
    pub new_line: Option<usize>,
    pub text: String,
}

/// A line diff of two versions of a flow.
#[derive(Debug, Serialize, ToSchema)]
pub struct DiffBody {
    pub flow: String,
    pub from: i64,
    pub to: i64,
    pub lines: Vec<DiffLineBody>,
}

/// The line diff of versions `from` and `to` of flow `id` (docs/flows.md says how it is bounded).
pub async fn diff(state: &AppState, id: &str, from: i64, to: i64) -> Result<DiffBody, ApiError> {
    let mut texts = Vec::with_capacity(2);
    for version in [from, to] {
        match state.store.get_flow_version(id, version).await? {
            Some(row) => texts.push(row.yaml),
            None => return Err(ApiError::NotFound(format!("flow `{id}` version {version}"))),
        }
    }
    let lines = diff_lines(&texts[0], &texts[1])
        .into_iter()
        .map(|line| DiffLineBody {
            change: match line.change {
                Change::Same => LineChange::Same,
                Change::Removed => LineChange::Removed,
                Change::Added => LineChange::Added,
            },
            old_line: line.old_line,
            new_line: line.new_line,
            text: line.text.to_owned(),
        })
        .collect();
    Ok(DiffBody {
        flow: id.to_owned(),
        from,
        to,
        lines,
    })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DiffQuery {
    from: i64,
    to: i64,
}

/// A line diff of two versions of a flow (any two, in either order).
#[utoipa::path(get, path = "/api/flows/{id}/diff", tag = "flows",
    params(("id" = String, Path, description = "The flow id"),
        ("from" = i64, Query, description = "The version the diff starts from"),
        ("to" = i64, Query, description = "The version it goes to")),
    responses((status = 200, body = DiffBody), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("api_key" = [])))]
async fn diff_versions(
    State(state): State<AppState>,
    Path(id): Path<String>,
    query: Result<Query<DiffQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<DiffBody>, ApiError> {
    let Query(query) = query.map_err(|err| ApiError::InvalidInput(err.body_text()))?;
    Ok(Json(diff(&state, &id, query.from, query.to).await?))
}
