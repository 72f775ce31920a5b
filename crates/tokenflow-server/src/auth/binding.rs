//! The browser binding of a browser-started run (docs/security.md): the start sets an `HttpOnly`,
//! `SameSite=Lax` cookie with a random value whose SHA-256 the run keeps, and `/oauth-callback`
//! resumes the run only when the browser presents it, so a sign-in response cannot be replayed
//! into another person's browser. `Lax` is what lets the cookie travel on the identity provider's
//! top-level redirect back to us, while cross-site subrequests cannot use it. `form_post`
//! callbacks (a cross-site POST) cannot carry a `Lax` cookie, so browser binding requires the
//! query response mode; API-started runs accept both.

use axum::http::HeaderMap;
use axum::response::Response;
use tokenflow_core::SecretString;
use tokenflow_runtime::runner::RunView;
use tokenflow_runtime::runner::binding_cookie_name;

use super::{cookie, hash_key, secure_attribute, set_cookie};
use crate::error::ApiError;
use crate::state::AppState;

/// A new binding: the cookie's value, and its SHA-256 for the run to keep.
pub fn new_binding() -> Result<(SecretString, String), ApiError> {
    let value =
        tokenflow_connectors::oauth::random::random_token(32).map_err(ApiError::internal)?;
    let hash = hash_key(value.expose());
    Ok((value, hash))
}

/// Sets the binding cookie of the run of `view`, waiting for a sign-in until `expires_at`, on
/// `response`. It is sent only to `/oauth-callback` and lives as long as the sign-in may take.
pub fn set_binding_cookie(
    state: &AppState,
    view: &RunView,
    expires_at: time::OffsetDateTime,
    value: &SecretString,
    response: &mut Response,
) {
    let max_age = (expires_at - state.clock.now()).whole_seconds().max(0);
    set_cookie(
        response,
        &format!(
            "{}={}; Path=/oauth-callback; HttpOnly; SameSite=Lax; Max-Age={max_age}{}",
            binding_cookie_name(&view.run.id),
            value.expose(),
            secure_attribute(state.settings.secure_cookies())
        ),
    );
}

/// The cookies a callback request presents, for the run lifecycle to find a binding cookie among.
pub fn presented(headers: &HeaderMap) -> impl Fn(&str) -> Option<String> + '_ {
    move |name| cookie(headers, name)
}
