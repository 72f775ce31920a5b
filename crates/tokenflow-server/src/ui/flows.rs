//! Flows in the web UI: the list, one flow with its diagram and latest runs, and starting a run —
//! a system flow with a form (`POST /flows/{id}/run`), a user flow with a link
//! (`GET /flows/{id}/start`, docs/api.md) that sends the browser to the identity provider, bound to
//! this browser ([`crate::auth::binding`]).

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Request, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde_json::{Map, Value, json};
use tokenflow_core::flow::Flow;
use tokenflow_engine::RunStatus;
use tokenflow_store::RunFilter;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::diagram;
use super::templates::{render, rfc3339};
use crate::auth::api_keys::{bearer, check_key};
use crate::auth::attempts::ClientAddress;
use crate::auth::binding::{new_binding, set_binding_cookie};
use crate::auth::csrf::{CsrfForm, link_token_matches};
use crate::auth::session::{self, SignedIn};
use crate::error::ApiError;
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .route("/flows", get(flows))
        .route("/flows/{id}", get(flow))
        .route("/flows/{id}/run", post(start_system_flow))
        .routes(routes!(browser_start))
}

fn flow_summary(flow: &tokenflow_core::flow::Flow, version: i64) -> Value {
    json!({
        "id": flow.id, "version": version, "description": flow.description, "schedule": flow.schedule,
        "system_flow": flow.is_system_flow(), "required_inputs": flow.required_inputs(), "yaml": flow.source,
    })
}

async fn flows(State(state): State<AppState>, SignedIn(session): SignedIn) -> Response {
    match state.catalog.all().await {
        Ok(flows) => {
            let flows: Vec<Value> = flows
                .iter()
                .map(|(f, row)| flow_summary(f, row.version))
                .collect();
            render(
                &state,
                "flows.html",
                Some(&session),
                "flows",
                json!({ "flows": flows, "message": null }),
            )
        }
        Err(err) => ApiError::from(err).into_response(),
    }
}

/// The newest version of flow `id`, or the page to answer when there is none.
pub(super) async fn newest(state: &AppState, id: &str) -> Result<(Arc<Flow>, i64), Response> {
    match state.catalog.current(id).await {
        Ok(Some(found)) => Ok(found),
        Ok(None) => Err(ApiError::NotFound(format!("flow `{id}`")).into_response()),
        Err(err) => Err(ApiError::from(err).into_response()),
    }
}

async fn flow(
    State(state): State<AppState>,
    SignedIn(session): SignedIn,
    Path(id): Path<String>,
) -> Response {
    let (flow, version) = match newest(&state, &id).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let filter = RunFilter {
        flow_id: Some(id.clone()),
        limit: 10,
        ..RunFilter::default()
    };
    let runs = match state.store.list_runs(&filter).await {
        Ok(runs) => runs,
        Err(err) => return ApiError::from(err).into_response(),
    };
    let ctx = json!({
        "f": flow_summary(&flow, version),
        "diagram": diagram::render_svg(&flow),
        "runs": runs.iter().map(|r| json!({ "id": r.id, "status": r.status, "started_at": rfc3339(r.started_at) })).collect::<Vec<_>>(),
    });
    render(&state, "flow.html", Some(&session), "flows", ctx)
}

async fn start_system_flow(
    State(state): State<AppState>,
    Path(id): Path<String>,
    _: CsrfForm<HashMap<String, String>>,
) -> Response {
    match state.runner.start(&id, Map::new(), None).await {
        Ok(view) => Redirect::to(&format!("/runs/{}", view.run.id)).into_response(),
        Err(err) => ApiError::from(err).into_response(),
    }
}

/// Starts a user flow from a browser: `303` to the identity provider, with a cookie binding the
/// sign-in to this browser.
#[utoipa::path(get, path = "/flows/{id}/start", tag = "browser",
    params(("id" = String, Path, description = "The flow id")),
    responses((status = 303, description = "To the identity provider (or to the run when it needed no sign-in)",
            headers(("location" = String), ("set-cookie" = String, description = "HttpOnly, SameSite=Lax binding cookie"))),
        (status = 401, description = "Not signed in", body = crate::api::doc::ErrorBody),
        (status = 404, body = crate::api::doc::ErrorBody)),
    security(("api_key" = [])))]
async fn browser_start(
    State(state): State<AppState>,
    Path(id): Path<String>,
    request: Request,
) -> Result<Response, ApiError> {
    // A signed-in browser (with the session's CSRF token in the link), or an API key.
    let allowed = match bearer(&request) {
        Some(key) => {
            let client = ClientAddress::of(request.extensions());
            check_key(&state, client, Some(key)).await?
        }
        None => match session::current(&state, request.headers()).await {
            Some(signed_in) => link_token_matches(&signed_in, request.uri().query()),
            None => return Ok(session::sign_in_then(&format!("/flows/{id}"))),
        },
    };
    if !allowed {
        return Err(ApiError::Unauthorized);
    }
    let (binding, binding_hash) = new_binding()?;
    let view = state
        .runner
        .start(&id, Map::new(), Some(binding_hash))
        .await?;
    match (&view.run.waiting, view.run.status) {
        (Some(waiting), RunStatus::Waiting) => {
            let mut response = Redirect::to(&waiting.authorization_url).into_response();
            set_binding_cookie(
                &state,
                &view,
                waiting.pending.expires_at,
                &binding,
                &mut response,
            );
            Ok(response)
        }
        _ => Ok(
            Redirect::to(&state.settings.link(&format!("/runs/{}", view.run.id))).into_response(),
        ),
    }
}
