//! OAuth servers: CRUD under `/api/oauth-servers` (the client secret is write-only: no response
//! ever contains it) and `POST /api/oauth-servers/{id}/test` (client credentials).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde_json::{Value, json};
use tokenflow_connectors::oauth::ConnectorStatus;
use tokenflow_core::{Input, OAuthServerSpec};
use tokenflow_engine::ServerDirectory;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::doc::{ErrorBody, OAuthServerDoc, OAuthServerInput, OAuthServerListDoc, ServerTestDoc};
use crate::error::{ApiError, ApiJson};
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(show, put, delete))
        .routes(routes!(test))
}

/// Every OAuth server (configuration file and API), without secrets.
#[utoipa::path(get, path = "/api/oauth-servers", tag = "oauth-servers",
    responses((status = 200, body = OAuthServerListDoc), (status = 401, body = ErrorBody)), security(("api_key" = [])))]
async fn list(State(state): State<AppState>) -> Json<Value> {
    let servers: Vec<Value> = state
        .registry
        .ids()
        .iter()
        .filter_map(|id| state.registry.view(id))
        .collect();
    Json(json!({ "oauth_servers": servers }))
}

/// One OAuth server, without its secret.
#[utoipa::path(get, path = "/api/oauth-servers/{id}", tag = "oauth-servers",
    params(("id" = String, Path, description = "The server id")),
    responses((status = 200, body = OAuthServerDoc), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("api_key" = [])))]
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

/// Creates or replaces an OAuth server kept in the store. Without `client_secret`, a change of an
/// endpoint, the issuer or the client authentication of a server with a stored secret is refused
/// (`secret_required`); a server of the configuration file is refused (`defined_in_configuration`).
#[utoipa::path(put, path = "/api/oauth-servers/{id}", tag = "oauth-servers",
    params(("id" = String, Path, description = "The server id")),
    request_body(content = OAuthServerInput, content_type = "application/json"),
    responses((status = 201, description = "Created", body = OAuthServerDoc), (status = 200, description = "Replaced", body = OAuthServerDoc),
        (status = 400, description = "Unknown fields or invalid values (each naming the field); `secret_required`: the change needs the client secret again (the message names the changed fields)", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 409, description = "`defined_in_configuration`: the server comes from tokenflow.toml; edit it there", body = ErrorBody),
        (status = 415, body = ErrorBody)),
    security(("api_key" = [])))]
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

/// Deletes an OAuth server created through the API.
#[utoipa::path(delete, path = "/api/oauth-servers/{id}", tag = "oauth-servers",
    params(("id" = String, Path, description = "The server id")),
    responses((status = 204, description = "Deleted"), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("api_key" = [])))]
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

/// Tries client credentials (`oauth_server_login` with the server's scope).
#[utoipa::path(post, path = "/api/oauth-servers/{id}/test", tag = "oauth-servers",
    params(("id" = String, Path, description = "The server id")),
    responses((status = 200, description = "The connector's outputs; the token only as a fingerprint", body = ServerTestDoc),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("api_key" = [])))]
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
