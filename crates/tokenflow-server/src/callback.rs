//! `/oauth-callback` (docs/api.md): where the identity provider sends the person back. The run
//! lifecycle resumes the waiting run; this answers with a small page (or, for a browser-started
//! run, a redirect to its monitor page). A browser-started run resumes only in the browser that
//! started it ([`crate::auth::binding`]).

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use tokenflow_connectors::oauth::CallbackParams;
use tokenflow_core::flow::ActionKind;
use tokenflow_engine::RunStatus;
use tokenflow_runtime::runner::{CallbackResult, RunView};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::binding;
use crate::html;
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(callback_get, callback_post))
}

/// Where the identity provider redirects the person back (`code`/`error` and `state` in the query).
#[utoipa::path(get, path = "/oauth-callback", tag = "browser",
    params(("state" = String, Query), ("code" = Option<String>, Query), ("error" = Option<String>, Query),
        ("error_description" = Option<String>, Query), ("iss" = Option<String>, Query)),
    responses((status = 200, description = "An HTML page saying what happened, linking to the run", content_type = "text/html"),
        (status = 400, description = "Unknown, used or expired state, missing code, or the wrong browser: nothing resumed", content_type = "text/html")))]
async fn callback_get(state: State<AppState>, headers: HeaderMap, query: RawQuery) -> Response {
    callback(state, Method::GET, headers, query, Bytes::new()).await
}

/// The same for `response_mode=form_post` (parameters in an `application/x-www-form-urlencoded` body).
#[utoipa::path(post, path = "/oauth-callback", tag = "browser",
    request_body(content = String, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, content_type = "text/html"), (status = 400, content_type = "text/html"),
        (status = 415, description = "The body is not application/x-www-form-urlencoded: nothing consumed", content_type = "text/html")))]
async fn callback_post(state: State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    // OAuth 2.0 Form Post Response Mode §2: the parameters come as an
    // application/x-www-form-urlencoded body. Anything else is refused before the state is
    // looked at, so a body in another format cannot spend a person's sign-in.
    let essence = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .map(|value| value.trim().to_ascii_lowercase());
    if essence.as_deref() != Some("application/x-www-form-urlencoded") {
        return html::message(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Sign-in not accepted",
            "A sign-in response sent with POST must be a form (Content-Type: application/x-www-form-urlencoded). Nothing was changed.",
            None,
        );
    }
    callback(state, Method::POST, headers, RawQuery(None), body).await
}

async fn callback(
    State(state): State<AppState>,
    method: Method,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    let params = CallbackParams::from_request(method == Method::POST, query.as_deref(), &body);
    let result = state
        .runner
        .callback(&params, binding::presented(&headers))
        .await;
    let bad =
        |text: &str| html::message(StatusCode::BAD_REQUEST, "Sign-in not accepted", text, None);
    match result {
        Err(err) => {
            tracing::error!(error = %err, "the callback failed");
            html::message(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong",
                "tokenflow could not process this sign-in. Nothing was changed; try again or contact the administrator.",
                None,
            )
        }
        Ok(CallbackResult::MissingState) => bad(
            "The identity provider's response has no state, so it belongs to no sign-in. Nothing was changed.",
        ),
        Ok(CallbackResult::UnknownState) => bad(
            "This sign-in response is unknown or was already used. Nothing was changed. Start the flow again if you still need to sign in.",
        ),
        Ok(CallbackResult::WrongBrowser) => bad(
            "This sign-in was started in another browser (or its cookie is missing). Nothing was changed: finish it in the browser that started it.",
        ),
        Ok(CallbackResult::MissingCode) => bad(
            "The identity provider's response has neither a code nor an error. Nothing was changed.",
        ),
        Ok(CallbackResult::Expired(view)) => {
            let link = state.settings.link(&format!("/runs/{}", view.run.id));
            html::message(
                StatusCode::BAD_REQUEST,
                "Sign-in expired",
                "This sign-in took too long and expired; the flow went on without it (status -2).",
                Some((&link, "Open the run")),
            )
        }
        // A browser that started the run goes on to the run's monitor page.
        Ok(CallbackResult::Resumed(view)) if view.browser_binding.is_some() => {
            Redirect::to(&format!("/runs/{}", view.run.id)).into_response()
        }
        Ok(CallbackResult::Resumed(view)) => resumed_page(&state, &view),
    }
}

fn resumed_page(state: &AppState, view: &RunView) -> Response {
    let record = view
        .run
        .records
        .iter()
        .rev()
        .find(|r| r.kind == ActionKind::OauthUserLogin);
    let code = record.and_then(|r| r.status_code).unwrap_or(-1);
    let (title, text) = match code {
        0 => ("Signed in", "You are signed in; the flow continued."),
        -2 => (
            "Sign-in cancelled",
            "The sign-in was cancelled or denied (status -2); the flow continued on its failure path.",
        ),
        _ => (
            "Sign-in failed",
            "The sign-in did not succeed; the flow continued on its failure path. The run shows the details.",
        ),
    };
    let status = match view.run.status {
        RunStatus::Completed => "The run completed.",
        RunStatus::Waiting => "The run waits for another sign-in.",
        RunStatus::Failed => "The run failed.",
        RunStatus::Cancelled => "The run was cancelled.",
        RunStatus::Running => "The run is still running.",
    };
    let link = state.settings.link(&format!("/runs/{}", view.run.id));
    html::message(
        StatusCode::OK,
        title,
        &format!("{text} {status}"),
        Some((&link, "Open the run")),
    )
}
