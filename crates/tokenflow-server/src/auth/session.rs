//! Web UI sessions: kept in the store, found from the request's cookie ([`current`], the
//! [`SignedIn`] extractor), opened by a sign-in with an API key ([`open`]) and ended by signing out
//! ([`close`]).
//!
//! A session is a row in the store (`ui_sessions`), so signing out ends it on every instance at
//! once. The cookie carries only the session id ([`super::tokens`]). It is not signed: a signature
//! adds nothing to an unguessable value that is looked up anyway, and the id says nothing about
//! the API key. A session names its API key by a reference the store already has (a stored key's
//! name, or for a key of the configuration file an HMAC made with this server's key), never by
//! anything the key could be guessed from. Every state-changing request of a session presents its
//! CSRF token ([`super::csrf`]). The cookie is `HttpOnly`, `SameSite=Lax` (so the identity
//! provider's redirect back lands signed in), and `Secure` behind https.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use tokenflow_core::SecretString;
use tokenflow_store::{UiSessionOwner, UiSessionRow};

pub use super::tokens::Session;
use super::tokens::{ID_BYTES, id_hash, plausible_id};
use super::{cookie, secure_attribute, set_cookie};
use crate::error::ApiError;
use crate::state::AppState;

/// The session cookie's name.
pub const COOKIE: &str = "tokenflow_session";
/// How long a sign-in lasts.
pub const LIFETIME_SECS: i64 = 12 * 3600;

/// The session of a request, if it has a valid one: its cookie names a session in the store that
/// was not signed out, has not expired, and whose API key still exists.
pub async fn current(state: &AppState, headers: &HeaderMap) -> Option<Session> {
    let id = cookie(headers, COOKIE)?;
    if !plausible_id(&id) {
        return None;
    }
    let session = state.session_keys.session(&id);
    let row = match state
        .store
        .find_ui_session(&session.id_hash, state.clock.now())
        .await
    {
        Ok(row) => row?,
        Err(err) => {
            tracing::error!(error = %err, "a UI session could not be read");
            return None;
        }
    };
    // A session lives only as long as the API key it was opened with: a stored key's sessions
    // go with it (the store sees to that), a configured key's when it leaves the configuration.
    match row.owner {
        UiSessionOwner::StoredKey(_) => Some(session),
        UiSessionOwner::ConfiguredKey(reference) => state
            .config_key_hashes
            .iter()
            .any(|hash| state.session_keys.configured_key_ref(hash) == reference)
            .then_some(session),
    }
}

/// A request from a signed-in browser; any other is redirected to the sign-in page (which comes
/// back here afterwards).
#[derive(Debug)]
pub struct SignedIn(pub Session);

impl FromRequestParts<AppState> for SignedIn {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        match current(state, &parts.headers).await {
            Some(session) => Ok(SignedIn(session)),
            None => Err(sign_in_first(&parts.uri)),
        }
    }
}

/// A redirect to the sign-in page that comes back to `uri`.
pub fn sign_in_first(uri: &Uri) -> Response {
    let next = uri.path_and_query().map_or("/runs", |p| p.as_str());
    sign_in_then(next)
}

/// A redirect to the sign-in page that goes on to `next` (a path of this site) afterwards.
pub fn sign_in_then(next: &str) -> Response {
    let next: String = url::form_urlencoded::byte_serialize(next.as_bytes()).collect();
    Redirect::to(&format!("/login?next={next}")).into_response()
}

/// Who a sign-in with `key` belongs to, or `None` for a key that is not valid. A configured key is
/// named by a keyed reference, a stored one by its name: never by the key's plain hash.
pub async fn owner_of_key(state: &AppState, key: &str) -> Result<Option<UiSessionOwner>, ApiError> {
    if key.is_empty() {
        return Ok(None);
    }
    let hash = super::hash_key(key);
    if state.config_key_hashes.contains(&hash) {
        return Ok(Some(UiSessionOwner::ConfiguredKey(
            state.session_keys.configured_key_ref(&hash),
        )));
    }
    Ok(state
        .store
        .find_api_key(&hash)
        .await?
        .map(|row| UiSessionOwner::StoredKey(row.name)))
}

/// Stores a new session for `owner` and sets its cookie on `response`.
pub async fn open(
    state: &AppState,
    owner: UiSessionOwner,
    response: &mut Response,
) -> Result<(), ApiError> {
    let id: SecretString =
        tokenflow_connectors::oauth::random::random_token(ID_BYTES).map_err(ApiError::internal)?;
    let now = state.clock.now();
    let row = UiSessionRow {
        id_hash: id_hash(id.expose()),
        owner,
        created_at: now,
        expires_at: now + time::Duration::seconds(LIFETIME_SECS),
    };
    state.store.create_ui_session(&row).await?;
    set_cookie(
        response,
        &format!(
            "{COOKIE}={}; Path=/; HttpOnly; SameSite=Lax; Max-Age={LIFETIME_SECS}{}",
            id.expose(),
            secure_attribute(state.settings.secure_cookies())
        ),
    );
    Ok(())
}

/// Ends `session` and clears its cookie on `response`. Deleted in the store, so the cookie stops
/// working on every instance, not only here.
pub async fn close(
    state: &AppState,
    session: &Session,
    response: &mut Response,
) -> Result<(), ApiError> {
    state.store.delete_ui_session(&session.id_hash).await?;
    set_cookie(
        response,
        &format!(
            "{COOKIE}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0{}",
            secure_attribute(state.settings.secure_cookies())
        ),
    );
    Ok(())
}
