//! API keys (docs/api.md): `Authorization: Bearer <api key>` on `/api/*`, and the key a UI sign-in
//! presents. Keys are compared by their SHA-256, so neither the configuration's keys nor the
//! store's are kept in plain text in memory or on disk.

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
pub use tokenflow_runtime::keys::hash_key;

use crate::auth::attempts::ClientAddress;
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

/// Whether `key` (the request's bearer token, if any) is a valid API key, counting a missing or
/// wrong one against the client's address; `429` while that address has too many failures
/// ([`crate::auth::attempts`]), before the key is looked at.
pub async fn check_key(
    state: &AppState,
    client: ClientAddress,
    key: Option<&str>,
) -> Result<bool, ApiError> {
    let now = state.clock.now();
    state
        .failed_attempts
        .check(client.0, now)
        .map_err(ApiError::TooManyFailedAttempts)?;
    let valid = match key {
        Some(key) => is_valid_key(state, key).await?,
        None => false,
    };
    if !valid {
        state.failed_attempts.failed(client.0, now);
    }
    Ok(valid)
}

/// Middleware: 401 unless the request carries a valid API key (429 after too many failures from
/// the client's address).
pub async fn require_api_key(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let client = ClientAddress::of(request.extensions());
    if !check_key(&state, client, bearer(&request)).await? {
        return Err(ApiError::Unauthorized);
    }
    Ok(next.run(request).await)
}
