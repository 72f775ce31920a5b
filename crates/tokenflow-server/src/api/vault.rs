//! Vault entries over the API: metadata only — no response ever contains a token.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde_json::{Value, json};
use tokenflow_store::VaultEntryRow;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::doc::{ErrorBody, VaultListDoc};
use crate::error::ApiError;
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(delete))
}

/// The metadata of a vault entry.
pub fn view(entry: &VaultEntryRow) -> Value {
    let format = |t: time::OffsetDateTime| {
        t.format(&time::format_description::well_known::Rfc3339)
            .ok()
    };
    json!({
        "name": entry.name,
        "oauth_server": entry.server_id,
        "state": entry.state,
        "expires_at": entry.expires_at.and_then(format),
        "granted_scopes": entry.granted_scopes,
        "has_access_token": entry.access_token.is_some(),
        "has_refresh_token": entry.refresh_token.is_some(),
        "last_refresh_at": entry.last_refresh_at.and_then(format),
        "last_refresh_outcome": entry.last_refresh_outcome,
        "version": entry.version,
        "updated_at": format(entry.updated_at),
    })
}

/// Every vault entry's metadata (never a token).
#[utoipa::path(get, path = "/api/vault", tag = "vault",
    responses((status = 200, body = VaultListDoc), (status = 401, body = ErrorBody)), security(("api_key" = [])))]
async fn list(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let entries: Vec<Value> = state
        .store
        .list_vault_entries()
        .await?
        .iter()
        .map(view)
        .collect();
    Ok(Json(json!({ "entries": entries })))
}

/// Deletes a vault entry (its tokens are gone; flows using it get -3).
#[utoipa::path(delete, path = "/api/vault/{name}", tag = "vault",
    params(("name" = String, Path, description = "The entry name")),
    responses((status = 204, description = "Deleted"), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("api_key" = [])))]
async fn delete(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    if state.store.delete_vault_entry(&name).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound(format!("vault entry `{name}`")))
    }
}
