//! Who may do what, in one place (docs/api.md, docs/security.md):
//!
//! - [`api_keys`]: `Authorization: Bearer <api key>` for `/api/*`, and the key check a sign-in uses.
//! - [`session`]: web UI sessions kept in the store, the [`session::SignedIn`] extractor, opening
//!   and closing a session.
//! - [`csrf`]: the [`csrf::CsrfForm`] extractor every state-changing UI form goes through, and the
//!   token of the browser-start link.
//! - [`tokens`]: session ids, CSRF tokens and their constant-time comparison.
//! - [`binding`]: the cookie that binds a browser-started run's sign-in to its browser.
//! - [`attempts`]: failed key checks and sign-ins per client address, and the `429` after too many.

pub mod api_keys;
pub mod attempts;
pub mod binding;
pub mod csrf;
pub mod session;
pub mod tokens;

use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::Response;

pub use api_keys::hash_key;

/// The value of cookie `name` in the request headers.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.to_owned())
}

/// Appends a `Set-Cookie` header (a value that is not a valid header is dropped).
pub fn set_cookie(response: &mut Response, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
}

/// The `Secure` attribute when the server is reached over https, otherwise nothing.
pub fn secure_attribute(secure: bool) -> &'static str {
    if secure { "; Secure" } else { "" }
}
