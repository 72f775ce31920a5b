//! OAuth servers: CRUD under `/api/oauth-servers` (the client secret is write-only: no response
//! ever contains it) and `POST /api/oauth-servers/{id}/test` (client credentials).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Serialize;
use tokenflow_core::OAuthServerSpec;
use tokenflow_runtime::registry::{OAuthServerView, ServerTestOutcome};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ApiError, ApiJson, ErrorBody};
use crate::state::AppState;

#[derive(Debug, Serialize, ToSchema)]
pub struct OAuthServerList {
    pub oauth_servers: Vec<OAuthServerView>,
}

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(show, put, delete))
        .routes(routes!(test))
}

/// Every OAuth server (configuration file and API), without secrets.
#[utoipa::path(get, path = "/api/oauth-servers", tag = "oauth-servers",
    responses((status = 200, body = OAuthServerList), (status = 401, body = ErrorBody)), security(("api_key" = [])))]
async fn list(State(state): State<AppState>) -> Json<OAuthServerList> {
    Json(OAuthServerList {
        oauth_servers: state.registry.views(),
    })
}

/// One OAuth server, without its secret.
#[utoipa::path(get, path = "/api/oauth-servers/{id}", tag = "oauth-servers",
    params(("id" = String, Path, description = "The server id")),
    responses((status = 200, body = OAuthServerView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("api_key" = [])))]
async fn show(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<OAuthServerView>, ApiError> {
    state
        .registry
        .view(&id)
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("OAuth server `{id}`")))
}

/// Creates or replaces an OAuth server kept in the store. Without `client_secret` (or
/// `private_key`), a change of an endpoint, the issuer or the client authentication of a server
/// with a stored secret (or key) is refused (`secret_required`); a server of the configuration
/// file is refused (`defined_in_configuration`).
#[utoipa::path(put, path = "/api/oauth-servers/{id}", tag = "oauth-servers",
    params(("id" = String, Path, description = "The server id")),
    request_body(content = OAuthServerSpec, content_type = "application/json"),
    responses((status = 201, description = "Created", body = OAuthServerView), (status = 200, description = "Replaced", body = OAuthServerView),
        (status = 400, description = "Unknown fields or invalid values (each naming the field); `secret_required`: the change needs the client secret again (the message names the changed fields)", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 409, description = "`defined_in_configuration`: the server comes from tokenflow.toml; edit it there", body = ErrorBody),
        (status = 415, body = ErrorBody)),
    security(("api_key" = [])))]
async fn put(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(spec): ApiJson<OAuthServerSpec>,
) -> Result<(StatusCode, Json<OAuthServerView>), ApiError> {
    let (created, warning) = state
        .registry
        .put(state.store.as_ref(), &id, spec, state.clock.now())
        .await?;
    let mut view = state
        .registry
        .view(&id)
        .ok_or_else(|| ApiError::NotFound(format!("OAuth server `{id}`")))?;
    view.warnings = Some(warning.into_iter().collect());
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
    responses((status = 200, description = "The connector's outputs; the token only as a fingerprint", body = ServerTestOutcome),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("api_key" = [])))]
async fn test(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<ServerTestOutcome>, ApiError> {
    Ok(Json(
        state
            .registry
            .test(state.runner.engine().oauth(), &id, None)
            .await?,
    ))
}
