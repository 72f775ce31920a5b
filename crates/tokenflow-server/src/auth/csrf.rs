//! CSRF protection of the web UI (docs/security.md): every state-changing request of a signed-in
//! browser carries the session's token (the synchronizer-token pattern, OWASP CSRF Prevention
//! Cheat Sheet), compared in constant time.
//!
//! - A form posts it as its `csrf` field: handlers take a [`CsrfForm`], which refuses the request
//!   before the handler runs unless the token matches the signed-in session's.
//! - The link that starts a user flow from the browser (`GET /flows/{id}/start`) carries it in
//!   its query ([`link_token_matches`]).
//! - The sign-in form, before there is a session, carries a random token that is also set as a
//!   `SameSite=Strict` cookie on `/login` (double submit): [`new_login_token`],
//!   [`login_token_matches`].

use axum::Form;
use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use serde::de::DeserializeOwned;

use super::session::SignedIn;
use super::tokens::{Session, tokens_match};
use super::{cookie, secure_attribute, set_cookie};
use crate::state::AppState;

/// The answer to a form without the session's token: `403`, nothing changed.
pub fn refused() -> Response {
    (StatusCode::FORBIDDEN, Html("<!doctype html><title>Forbidden</title><p id=\"message\">This form is missing its CSRF token or it is stale. Reload the page and try again.</p>")).into_response()
}

/// A urlencoded form posted by a signed-in browser with the session's CSRF token. Rejections, in
/// order: no session → redirect to sign-in; not a readable form → axum's form rejection; no or
/// another token in the `csrf` field → [`refused`].
#[derive(Debug)]
pub struct CsrfForm<T> {
    pub session: Session,
    pub form: T,
}

impl<T> FromRequest<AppState> for CsrfForm<T>
where
    T: DeserializeOwned,
{
    type Rejection = Response;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Response> {
        let (mut parts, body) = request.into_parts();
        let SignedIn(session) = SignedIn::from_request_parts(&mut parts, state).await?;
        // The body is read once and given both to the typed form and to the token check, so the
        // handler's type need not have a `csrf` field.
        let bytes = Bytes::from_request(Request::from_parts(parts.clone(), body), state)
            .await
            .map_err(IntoResponse::into_response)?;
        let Form(form) =
            Form::<T>::from_request(Request::from_parts(parts, Body::from(bytes.clone())), state)
                .await
                .map_err(IntoResponse::into_response)?;
        // The last `csrf` field counts, as when the form is read into a map.
        let submitted = url::form_urlencoded::parse(&bytes)
            .filter(|(key, _)| key == "csrf")
            .last()
            .map(|(_, value)| value.into_owned());
        match submitted {
            Some(token) if tokens_match(&session.csrf, &token) => Ok(CsrfForm { session, form }),
            _ => Err(refused()),
        }
    }
}

/// Whether the query of a browser-start link carries the session's token, so another site cannot
/// start runs with the session's cookie.
pub fn link_token_matches(session: &Session, query: Option<&str>) -> bool {
    query
        .and_then(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .find(|(k, _)| k == "csrf")
                .map(|(_, v)| v.into_owned())
        })
        .is_some_and(|token| tokens_match(&session.csrf, &token))
}

/// The sign-in form's cookie.
const LOGIN_COOKIE: &str = "tokenflow_login_csrf";

/// A new token for the sign-in form.
pub fn new_login_token() -> String {
    tokenflow_connectors::oauth::random::random_token(24)
        .map(|t| t.expose().to_owned())
        .unwrap_or_default()
}

/// Sets the sign-in form's `token` as its cookie on `response`.
pub fn set_login_cookie(state: &AppState, response: &mut Response, token: &str) {
    set_cookie(
        response,
        &format!(
            "{LOGIN_COOKIE}={token}; Path=/login; HttpOnly; SameSite=Strict; Max-Age=3600{}",
            secure_attribute(state.settings.secure_cookies())
        ),
    );
}

/// The sign-in form's token when the posted one matches its cookie (constant time).
pub fn login_token_matches(headers: &HeaderMap, submitted: &str) -> Option<String> {
    let expected = cookie(headers, LOGIN_COOKIE).unwrap_or_default();
    (!expected.is_empty() && tokens_match(&expected, submitted)).then_some(expected)
}

/// Clears the sign-in form's cookie once the sign-in succeeded.
pub fn clear_login_token(response: &mut Response) {
    set_cookie(
        response,
        &format!("{LOGIN_COOKIE}=; Path=/login; Max-Age=0"),
    );
}

/// The answer to a sign-in form whose token does not match its cookie.
pub fn stale_login_form() -> Response {
    (StatusCode::FORBIDDEN, Html("<!doctype html><title>Forbidden</title><p id=\"message\">The sign-in form is stale. <a href=\"/login\">Reload it</a>.</p>")).into_response()
}
