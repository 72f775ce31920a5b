//! Vault entries over the API: metadata only — no response ever contains a token.

use axum::Json;
use axum::extract::{Path, State};
use serde::Serialize;
use serde_json::Value;
use tokenflow_engine::vault::Revocation;
use tokenflow_store::VaultEntryRow;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(delete))
}

/// A vault entry's metadata; tokens are never returned.
#[derive(Debug, Serialize, ToSchema)]
pub struct VaultEntryBody {
    pub name: String,
    pub oauth_server: String,
    /// `ok` or `needs_login`.
    #[schema(value_type = String)]
    pub state: tokenflow_core::VaultEntryState,
    /// RFC 3339.
    pub expires_at: Option<String>,
    pub granted_scopes: Option<String>,
    pub has_access_token: bool,
    pub has_refresh_token: bool,
    pub last_refresh_at: Option<String>,
    /// `ok` or the last refresh's error.
    pub last_refresh_outcome: Option<String>,
    pub version: i64,
    pub updated_at: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct VaultList {
    pub entries: Vec<VaultEntryBody>,
}

impl From<&VaultEntryRow> for VaultEntryBody {
    fn from(entry: &VaultEntryRow) -> Self {
        let format = |t: time::OffsetDateTime| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        };
        Self {
            name: entry.name.clone(),
            oauth_server: entry.server_id.clone(),
            state: entry.state,
            expires_at: entry.expires_at.and_then(format),
            granted_scopes: entry.granted_scopes.clone(),
            has_access_token: entry.access_token.is_some(),
            has_refresh_token: entry.refresh_token.is_some(),
            last_refresh_at: entry.last_refresh_at.and_then(format),
            last_refresh_outcome: entry.last_refresh_outcome.clone(),
            version: entry.version,
            updated_at: format(entry.updated_at),
        }
    }
}

/// The metadata of a vault entry as JSON (for the UI's page).
pub fn view(entry: &VaultEntryRow) -> Value {
    serde_json::to_value(VaultEntryBody::from(entry)).unwrap_or_default()
}

/// Every vault entry's metadata (never a token).
#[utoipa::path(get, path = "/api/vault", tag = "vault",
    responses((status = 200, body = VaultList), (status = 401, body = ErrorBody)), security(("api_key" = [])))]
async fn list(State(state): State<AppState>) -> Result<Json<VaultList>, ApiError> {
    let entries = state
        .store
        .list_vault_entries()
        .await?
        .iter()
        .map(VaultEntryBody::from)
        .collect();
    Ok(Json(VaultList { entries }))
}

/// What deleting a vault entry did.
#[derive(Debug, Serialize, ToSchema)]
pub struct VaultDeleted {
    pub name: String,
    /// Whether the entry's refresh token was revoked at its OAuth server's revocation endpoint
    /// (RFC 7009), so the grant no longer works there either.
    pub revoked: bool,
    /// Why it was not, when it should have been: the server has no revocation endpoint, or the
    /// revocation failed (the entry is deleted all the same).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
}

impl VaultDeleted {
    fn new(name: String, revocation: &Revocation) -> Self {
        let warning = match revocation {
            Revocation::Revoked | Revocation::NoRefreshToken => None,
            Revocation::NoEndpoint => Some(
                "the refresh token was not revoked: the OAuth server has no revocation endpoint"
                    .to_owned(),
            ),
            Revocation::Failed(reason) => Some(format!(
                "the refresh token could not be revoked ({reason}); it may still work at the OAuth server"
            )),
        };
        Self {
            name,
            revoked: *revocation == Revocation::Revoked,
            warning,
        }
    }
}

/// Deletes a vault entry (its tokens are gone; flows using it get -3), after revoking its
/// refresh token at the OAuth server when the server has a revocation endpoint.
pub async fn delete_entry(
    state: &AppState,
    name: &str,
) -> Result<Option<VaultDeleted>, tokenflow_store::StoreError> {
    let revocation = match state.runner.engine().vault() {
        Some(vault) => vault.delete_entry(name).await?,
        None => state
            .store
            .delete_vault_entry(name)
            .await?
            .then_some(Revocation::NoRefreshToken),
    };
    Ok(revocation.map(|revocation| VaultDeleted::new(name.to_owned(), &revocation)))
}

/// Deletes a vault entry (its tokens are gone; flows using it get -3) and revokes its refresh
/// token at the OAuth server's revocation endpoint, if it has one; the answer says whether.
#[utoipa::path(delete, path = "/api/vault/{name}", tag = "vault",
    params(("name" = String, Path, description = "The entry name")),
    responses((status = 200, body = VaultDeleted), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("api_key" = [])))]
async fn delete(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<VaultDeleted>, ApiError> {
    match delete_entry(&state, &name).await? {
        Some(deleted) => Ok(Json(deleted)),
        None => Err(ApiError::NotFound(format!("vault entry `{name}`"))),
    }
}
