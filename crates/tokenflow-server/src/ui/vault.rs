//! The token vault in the web UI: its entries' metadata (never a token) and deleting an entry.

use std::collections::HashMap;

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use utoipa_axum::router::OpenApiRouter;

use super::templates::render;
use crate::auth::csrf::CsrfForm;
use crate::auth::session::SignedIn;
use crate::error::ApiError;
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .route("/vault", get(vault))
        .route("/vault/{name}/delete", post(delete_vault_entry))
}

async fn vault(State(state): State<AppState>, SignedIn(session): SignedIn) -> Response {
    page(&state, &session, None).await
}

/// The vault page, with `message` (the outcome of a delete) above the list.
async fn page(
    state: &AppState,
    session: &crate::auth::session::Session,
    message: Option<String>,
) -> Response {
    match state.store.list_vault_entries().await {
        Ok(entries) => {
            let entries: Vec<Value> = entries.iter().map(crate::api::vault::view).collect();
            render(
                state,
                "vault.html",
                Some(session),
                "vault",
                json!({ "entries": entries, "message": message }),
            )
        }
        Err(err) => ApiError::from(err).into_response(),
    }
}

/// Deletes the entry (revoking its refresh token, as `DELETE /api/vault/{name}` does) and shows
/// the page with what happened to the grant.
async fn delete_vault_entry(
    State(state): State<AppState>,
    Path(name): Path<String>,
    CsrfForm { session, .. }: CsrfForm<HashMap<String, String>>,
) -> Response {
    let message = match crate::api::vault::delete_entry(&state, &name).await {
        Ok(None) => format!("No vault entry `{name}`."),
        Ok(Some(deleted)) => match (deleted.revoked, deleted.warning) {
            (true, _) => {
                format!("Deleted `{name}`; its refresh token was revoked at the OAuth server.")
            }
            (false, Some(warning)) => format!("Deleted `{name}`; {warning}."),
            (false, None) => format!("Deleted `{name}`."),
        },
        Err(err) => return ApiError::from(err).into_response(),
    };
    page(&state, &session, Some(message)).await
}
