//! API keys (docs/api.md): `Authorization: Bearer <api key>` on `/api/*`, and the key a UI sign-in
//! presents. Keys are compared by their SHA-256, so neither the configuration's keys nor the
//! store's are kept in plain text in memory or on disk.

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
pub use tokenflow_runtime::keys::hash_key;

use crate::error::ApiError;
use crate::state::AppState;

/// Whether `key` is a configured or stored API key.
pub async fn is_valid_key(state: &AppState, key: &str) -> Result<bool, ApiError> {
    let hash = hash_key(key);
    if state.config_key_hashes.contains(&hash) {
        return Ok(true);
    }
    Ok(state.store.find_api_key(&hash).await?.is_some())
}

/// The bearer token of a request, if any.
pub fn bearer(request: &Request) -> Option<&str> {
    let value = request
        .headers()
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// Middleware: 401 unless the request carries a valid API key.
pub async fn require_api_key(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let Some(key) = bearer(&request) else {
        return Err(ApiError::Unauthorized);
    };
    if !is_valid_key(&state, key).await? {
        return Err(ApiError::Unauthorized);
    }
    Ok(next.run(request).await)
}
