//! OAuth servers: CRUD under `/api/oauth-servers` (the client secret is write-only: no response
//! ever contains it) and `POST /api/oauth-servers/{id}/test` (client credentials).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};
use tokenflow_connectors::oauth::ConnectorStatus;
use tokenflow_core::{Input, OAuthServerSpec};
use tokenflow_engine::ServerDirectory;

use crate::error::{ApiError, ApiJson};
use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/oauth-servers", get(list))
        .route("/api/oauth-servers/{id}", get(show).put(put).delete(delete))
        .route("/api/oauth-servers/{id}/test", post(test))
}

async fn list(State(state): State<AppState>) -> Json<Value> {
    let servers: Vec<Value> = state
        .registry
        .ids()
        .iter()
        .filter_map(|id| state.registry.view(id))
        .collect();
    Json(json!({ "oauth_servers": servers }))
}

async fn show(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    state
        .registry
        .view(&id)
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("OAuth server `{id}`")))
}

async fn put(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(spec): ApiJson<OAuthServerSpec>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let (created, warning) = state
        .registry
        .put(state.store.as_ref(), &id, spec, state.clock.now())
        .await?;
    let mut view = state.registry.view(&id).unwrap_or_default();
    view["warnings"] = warning.into_iter().collect::<Vec<_>>().into();
    Ok((
        if created {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        },
        Json(view),
    ))
}

async fn delete(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    if state.registry.delete(state.store.as_ref(), &id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound(format!("stored OAuth server `{id}`")))
    }
}

async fn test(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let Some(server) = state.registry.get(&id) else {
        return Err(ApiError::NotFound(format!("OAuth server `{id}`")));
    };
    let out = state
        .runner
        .engine()
        .oauth()
        .server_login(&id, Some(&server), &Input::Unassigned)
        .await;
    Ok(Json(json!({
        "oauth_server": id,
        "status_code": out.status.code(),
        "meaning": out.status.meaning(),
        "token_type": out.token_type,
        "expires_in": out.expires_in,
        "access_token": out.access_token.as_ref().map(|t| t.fingerprint()),
        "error": out.error,
        "error_description": out.error_description,
        "warnings": out.warnings,
    })))
}
