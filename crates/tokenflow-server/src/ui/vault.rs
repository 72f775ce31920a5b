//! The token vault in the web UI: its entries' metadata (never a token) and deleting an entry.

use std::collections::HashMap;

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
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
    match state.store.list_vault_entries().await {
        Ok(entries) => {
            let entries: Vec<Value> = entries.iter().map(crate::api::vault::view).collect();
            render(
                &state,
                "vault.html",
                Some(&session),
                "vault",
                json!({ "entries": entries }),
            )
        }
        Err(err) => ApiError::from(err).into_response(),
    }
}

async fn delete_vault_entry(
    State(state): State<AppState>,
    Path(name): Path<String>,
    _: CsrfForm<HashMap<String, String>>,
) -> Response {
    match state.store.delete_vault_entry(&name).await {
        Ok(_) => Redirect::to("/vault").into_response(),
        Err(err) => ApiError::from(err).into_response(),
    }
}
