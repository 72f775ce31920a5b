//! Signing in to the web UI with an API key, and signing out (docs/api.md). The session itself is
//! [`crate::auth::session`]'s; the sign-in form has its own CSRF token ([`crate::auth::csrf`]).

use std::collections::HashMap;

use axum::Form;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;

use crate::auth::attempts::ClientAddress;
use crate::auth::csrf::{
    CsrfForm, clear_login_token, login_token_matches, new_login_token, set_login_cookie,
    stale_login_form,
};
use crate::auth::session;
use crate::state::AppState;
use crate::ui::templates::render;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
}

async fn login_page(
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let token = new_login_token();
    let mut response = render(
        &state,
        "login.html",
        None,
        "",
        json!({ "login_csrf": token, "next": safe_next(query.get("next")), "error": null }),
    );
    set_login_cookie(&state, &mut response, &token);
    response
}

async fn login(
    State(state): State<AppState>,
    client: ClientAddress,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let given = form.get("csrf").cloned().unwrap_or_default();
    let Some(expected) = login_token_matches(&headers, &given) else {
        return stale_login_form();
    };
    let refused = |status: StatusCode, error: String| {
        let ctx =
            json!({ "login_csrf": expected, "next": safe_next(form.get("next")), "error": error });
        let mut response = render(&state, "login.html", None, "", ctx);
        *response.status_mut() = status;
        response
    };
    // Too many failures from this address: refused before the key is looked at, with the form
    // kept so the person can try again later (docs/security.md, "Failed sign-ins").
    let now = state.clock.now();
    if let Err(seconds) = state.failed_attempts.check(client.0, now) {
        let mut response = refused(
            StatusCode::TOO_MANY_REQUESTS,
            format!("Too many failed sign-ins from your address. Try again in {seconds} seconds."),
        );
        response
            .headers_mut()
            .insert(axum::http::header::RETRY_AFTER, seconds.into());
        return response;
    }
    let key = form.get("api_key").map(String::as_str).unwrap_or("");
    let owner = match session::owner_of_key(&state, key).await {
        Ok(owner) => owner,
        Err(err) => return err.into_response(),
    };
    let Some(owner) = owner else {
        state.failed_attempts.failed(client.0, now);
        tracing::warn!("a UI sign-in with an invalid API key was refused");
        return refused(
            StatusCode::UNAUTHORIZED,
            "That API key is not valid.".to_owned(),
        );
    };
    let mut response = Redirect::to(&safe_next(form.get("next"))).into_response();
    if let Err(err) = session::open(&state, owner, &mut response).await {
        return err.into_response();
    }
    clear_login_token(&mut response);
    response
}

async fn logout(
    State(state): State<AppState>,
    CsrfForm {
        session: signed_in, ..
    }: CsrfForm<HashMap<String, String>>,
) -> Response {
    let mut response = Redirect::to("/login").into_response();
    if let Err(err) = session::close(&state, &signed_in, &mut response).await {
        return err.into_response();
    }
    response
}

/// Where a sign-in goes when `next` is missing or not a path of this site.
const DEFAULT_NEXT: &str = "/dashboard";

/// The page to go to after sign-in: `next` when it is a path on this origin, otherwise the default
/// page (no open redirect). Browsers remove tabs and newlines from a URL and read `\` as `/`
/// (WHATWG URL Standard, basic URL parser), so `/<tab>/evil.example` would turn into the
/// scheme-relative `//evil.example`; and a control character cannot go into a `Location` header
/// at all. So `next` must be printable ASCII that starts with exactly one `/`, and neither it nor
/// its percent-decoded form may contain `\`, a control or whitespace character, or start with
/// `//`.
fn safe_next(next: Option<&String>) -> String {
    match next {
        Some(next) if is_local_path(next) => next.clone(),
        _ => DEFAULT_NEXT.to_owned(),
    }
}

fn is_local_path(next: &str) -> bool {
    fn shaped(path: &str) -> bool {
        path.starts_with('/')
            && !path.starts_with("//")
            && !path
                .chars()
                .any(|c| c == '\\' || c.is_control() || c.is_whitespace())
    }
    next.is_ascii() && shaped(next) && percent_decoded(next).is_some_and(|decoded| shaped(&decoded))
}

/// `%XX` sequences decoded (others kept as they are); `None` when the result is not UTF-8.
fn percent_decoded(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |at: usize| {
            bytes
                .get(at)
                .and_then(|b| char::from(*b).to_digit(16))
                .and_then(|d| u8::try_from(d).ok())
        };
        match (bytes[i], hex(i + 1), hex(i + 2)) {
            (b'%', Some(high), Some(low)) => {
                out.push(high * 16 + low);
                i += 3;
            }
            (byte, _, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_paths_of_this_origin_are_followed_after_sign_in() {
        for (next, expected) in [
            ("/servers", "/servers"),
            (
                "/runs?flow=a&status=waiting&page=2",
                "/runs?flow=a&status=waiting&page=2",
            ),
            ("/runs?flow=caf%C3%A9", "/runs?flow=caf%C3%A9"),
            ("/flows/profile", "/flows/profile"),
            ("/", "/"),
            // Scheme-relative and absolute URLs.
            ("//evil.example", DEFAULT_NEXT),
            ("///evil.example", DEFAULT_NEXT),
            ("https://evil.example/", DEFAULT_NEXT),
            ("evil.example", DEFAULT_NEXT),
            ("", DEFAULT_NEXT),
            // Browsers drop tabs and newlines, and read `\` as `/`.
            ("/\t/evil.example", DEFAULT_NEXT),
            ("/\n/evil.example", DEFAULT_NEXT),
            ("/\r\n/evil.example", DEFAULT_NEXT),
            ("/\u{b}/evil.example", DEFAULT_NEXT),
            ("/\0/evil.example", DEFAULT_NEXT),
            ("/\u{7f}/evil.example", DEFAULT_NEXT),
            ("/ /evil.example", DEFAULT_NEXT),
            ("/\u{a0}/evil.example", DEFAULT_NEXT),
            ("/\u{3000}/evil.example", DEFAULT_NEXT),
            ("/\\evil.example", DEFAULT_NEXT),
            ("\\\\evil.example", DEFAULT_NEXT),
            ("/\\/evil.example", DEFAULT_NEXT),
            // The same, percent-encoded once more.
            ("/%09/evil.example", DEFAULT_NEXT),
            ("/%0d%0a/evil.example", DEFAULT_NEXT),
            ("/%0b/evil.example", DEFAULT_NEXT),
            ("/%2F/evil.example", DEFAULT_NEXT),
            ("/%2f%2fevil.example", DEFAULT_NEXT),
            ("%2F%2Fevil.example", DEFAULT_NEXT),
            ("/%5Cevil.example", DEFAULT_NEXT),
            ("%5C%5Cevil.example", DEFAULT_NEXT),
            ("/%20/evil.example", DEFAULT_NEXT),
            ("/%ff", DEFAULT_NEXT),
            // A `%` that starts no escape is kept as it is.
            ("/runs?x=100%", "/runs?x=100%"),
        ] {
            assert_eq!(
                safe_next(Some(&next.to_owned())),
                expected,
                "next = {next:?}"
            );
        }
        assert_eq!(safe_next(None), DEFAULT_NEXT);
    }
}
