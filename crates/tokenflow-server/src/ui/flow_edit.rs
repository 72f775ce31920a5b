//! Flows edited in the browser (docs/flows.md, "Editing flows in the browser"): creating a flow
//! (`/flows/new`), editing one (`/flows/{id}/edit`), its versions (`/flows/{id}/versions`) and a
//! line diff of any two (`/flows/{id}/diff`).
//!
//! The editor is a plain form: saving posts the YAML (with the session's CSRF token), the server
//! validates it, and an invalid flow comes back in the form with every problem at its line —
//! nothing is stored. With script (`/static/flow-editor.js`) the page also validates as you type
//! through `POST /flows/validate`, the same validation as `POST /api/flows/validate` but for a
//! signed-in browser, whose CSRF token travels in the `x-csrf-token` header; it marks problems at
//! their lines, redraws the diagram, and keeps an invalid flow from being submitted.
//!
//! Saving stores a new version ([`tokenflow_runtime::catalog::FlowCatalog::put`]); the form
//! carries the version it was opened at, and a save over a version somebody stored meanwhile is
//! refused once, with a link to the diff, instead of silently replacing it.

use std::collections::BTreeMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};
use tokenflow_engine::ServerDirectory;
use tokenflow_runtime::RuntimeError;

use super::flows::newest;
use super::templates::render;
use crate::api::flow_versions::{
    LineChange, ProblemBody, ValidationBody, diff, validation, version_list,
};
use crate::auth::csrf::{CsrfForm, refused};
use crate::auth::session::{Session, SignedIn};
use crate::auth::tokens::tokens_match;
use crate::error::ApiError;
use crate::state::AppState;

/// The header that carries the session's CSRF token on the editor's validation requests.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// What a new flow starts from.
const NEW_FLOW: &str = "id: my-flow\ndescription: \"\"\nvariables:\n  doc: { default: \"{\\\"a\\\": 1}\" }\n  a: {}\nactions:\n  read:\n    type: extract_json\n    input: { json: { var: doc }, path: \"$.a\" }\n    output: { value: a }\nsteps:\n  - { from: start, to: read }\n  - { from: read, to: stop }\n";

pub fn routes() -> utoipa_axum::router::OpenApiRouter<AppState> {
    utoipa_axum::router::OpenApiRouter::new()
        .route("/flows/new", get(new_flow).post(create_flow))
        .route("/flows/validate", post(validate))
        .route("/flows/{id}/edit", get(edit_flow).post(save_flow))
        .route("/flows/{id}/versions", get(versions))
        .route("/flows/{id}/diff", get(diff_page))
}

/// The form's fields: the YAML, and the version the editor was opened at (none for a new flow).
#[derive(Debug, Deserialize)]
struct EditForm {
    yaml: String,
    version: Option<i64>,
}

/// The editor page for `yaml`, with its problems (validated here) and `extra` ones.
struct Editor<'a> {
    /// The flow being edited; `None` creates one.
    id: Option<&'a str>,
    /// The version the form was opened at.
    version: Option<i64>,
    yaml: &'a str,
    extra: Vec<ProblemBody>,
    message: Option<String>,
    status: StatusCode,
}

fn editor_page(state: &AppState, session: &Session, editor: Editor<'_>) -> Response {
    let ValidationBody {
        problems,
        warnings,
        diagram_svg,
        ..
    } = validation(state, editor.id, editor.yaml);
    let problems: Vec<ProblemBody> = editor.extra.into_iter().chain(problems).collect();
    let mut at_line: BTreeMap<u64, Vec<&str>> = BTreeMap::new();
    for problem in &problems {
        at_line
            .entry(problem.line)
            .or_default()
            .push(&problem.message);
    }
    let line_count = editor.yaml.split('\n').count();
    let lines: Vec<Value> = (1..=line_count as u64)
        .map(|n| json!({ "n": n, "problems": at_line.get(&n).map(|m| m.join("; ")) }))
        .collect();
    let action = editor
        .id
        .map_or_else(|| "/flows/new".to_owned(), |id| format!("/flows/{id}/edit"));
    let ctx = json!({
        "id": editor.id,
        "version": editor.version,
        "action": action,
        "yaml": editor.yaml,
        "lines": lines,
        "rows": line_count.max(12) + 1,
        "problems": problems,
        "warnings": warnings,
        "diagram": diagram_svg,
        "message": editor.message,
    });
    let mut response = render(state, "flow_edit.html", Some(session), "flows", ctx);
    if response.status() == StatusCode::OK {
        *response.status_mut() = editor.status;
    }
    response
}

async fn new_flow(State(state): State<AppState>, SignedIn(session): SignedIn) -> Response {
    editor_page(
        &state,
        &session,
        Editor {
            id: None,
            version: None,
            yaml: NEW_FLOW,
            extra: Vec::new(),
            message: None,
            status: StatusCode::OK,
        },
    )
}

async fn edit_flow(
    State(state): State<AppState>,
    SignedIn(session): SignedIn,
    Path(id): Path<String>,
) -> Response {
    let (flow, version) = match newest(&state, &id).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    editor_page(
        &state,
        &session,
        Editor {
            id: Some(&id),
            version: Some(version),
            yaml: &flow.source,
            extra: Vec::new(),
            message: None,
            status: StatusCode::OK,
        },
    )
}

/// A browser submits a textarea's lines ended by CRLF (HTML, "form submission"); the flow keeps
/// the `\n` it was written with, so that saving an unchanged text changes no line.
fn normalized(yaml: &str) -> String {
    yaml.replace("\r\n", "\n")
}

async fn create_flow(
    State(state): State<AppState>,
    CsrfForm { session, form }: CsrfForm<EditForm>,
) -> Response {
    let yaml = normalized(&form.yaml);
    let again = |extra: Vec<ProblemBody>, message: Option<String>| Editor {
        id: None,
        version: None,
        yaml: &yaml,
        extra,
        message,
        status: StatusCode::BAD_REQUEST,
    };
    let id = match state
        .catalog
        .validate(None, &yaml, "flow.yaml", state.registry.ids())
    {
        Ok(parsed) => parsed.flow.id,
        Err(_) => return editor_page(&state, &session, again(Vec::new(), None)),
    };
    // A flow of that id is edited on its own page, never replaced from here.
    match state.catalog.current(&id).await {
        Ok(None) => {}
        Ok(Some(_)) => {
            let exists = ProblemBody {
                line: 1,
                column: 1,
                message: format!("a flow `{id}` exists already; edit it on its own page"),
            };
            return editor_page(&state, &session, again(vec![exists], None));
        }
        Err(err) => return ApiError::from(err).into_response(),
    }
    store(&state, &session, &id, &yaml, None).await
}

async fn save_flow(
    State(state): State<AppState>,
    Path(id): Path<String>,
    CsrfForm { session, form }: CsrfForm<EditForm>,
) -> Response {
    let yaml = normalized(&form.yaml);
    let current = match newest(&state, &id).await {
        Ok((_, version)) => version,
        Err(response) => return response,
    };
    let again = |version: i64, message: Option<String>| Editor {
        id: Some(&id),
        version: Some(version),
        yaml: &yaml,
        extra: Vec::new(),
        message,
        status: StatusCode::BAD_REQUEST,
    };
    let file = format!("{id}.yaml");
    let known_servers = state.registry.ids();
    if state
        .catalog
        .validate(Some(&id), &yaml, &file, known_servers)
        .is_err()
    {
        return editor_page(
            &state,
            &session,
            again(form.version.unwrap_or(current), None),
        );
    }
    if let Some(opened) = form.version.filter(|opened| *opened != current) {
        // The form now carries the newest version: saving again replaces it knowingly.
        let message = format!(
            "Version {current} was saved while you edited version {opened}; nothing was saved. \
             Compare them (/flows/{id}/diff?from={opened}&to={current}) and save again to replace it."
        );
        let mut page = editor_page(&state, &session, again(current, Some(message)));
        *page.status_mut() = StatusCode::CONFLICT;
        return page;
    }
    store(&state, &session, &id, &yaml, Some(current)).await
}

/// Stores `yaml` as the newest version of `id` and goes to the flow's page.
async fn store(
    state: &AppState,
    session: &Session,
    id: &str,
    yaml: &str,
    version: Option<i64>,
) -> Response {
    let stored = state
        .catalog
        .put(
            id,
            yaml,
            &format!("{id}.yaml"),
            state.registry.ids(),
            state.clock.now(),
        )
        .await;
    match stored {
        Ok(_) => Redirect::to(&format!("/flows/{id}")).into_response(),
        // Validated just before; the OAuth servers may have changed in between.
        Err(RuntimeError::InvalidFlow(_)) => editor_page(
            state,
            session,
            Editor {
                id: version.map(|_| id),
                version,
                yaml,
                extra: Vec::new(),
                message: None,
                status: StatusCode::BAD_REQUEST,
            },
        ),
        Err(err) => ApiError::from(err).into_response(),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ValidateQuery {
    id: Option<String>,
}

/// The editor's validation as you type: the body is the YAML, the session's CSRF token is in the
/// [`CSRF_HEADER`]. Stores nothing.
async fn validate(
    State(state): State<AppState>,
    SignedIn(session): SignedIn,
    Query(query): Query<ValidateQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let token = headers
        .get(CSRF_HEADER)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    if !tokens_match(&session.csrf, token) {
        return refused();
    }
    match std::str::from_utf8(&body) {
        Ok(yaml) => Json(validation(&state, query.id.as_deref(), yaml)).into_response(),
        Err(_) => ApiError::InvalidInput("the body is not UTF-8".to_owned()).into_response(),
    }
}

async fn versions(
    State(state): State<AppState>,
    SignedIn(session): SignedIn,
    Path(id): Path<String>,
) -> Response {
    match version_list(&state, &id).await {
        Ok(list) => render(
            &state,
            "flow_versions.html",
            Some(&session),
            "flows",
            json!({ "id": id, "versions": list.versions }),
        ),
        Err(err) => err.into_response(),
    }
}

#[derive(Debug, Deserialize)]
struct DiffQuery {
    from: i64,
    to: i64,
}

async fn diff_page(
    State(state): State<AppState>,
    SignedIn(session): SignedIn,
    Path(id): Path<String>,
    query: Result<Query<DiffQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(Query(query)) = query else {
        return ApiError::InvalidInput("choose two versions: ?from=N&to=M".to_owned())
            .into_response();
    };
    match diff(&state, &id, query.from, query.to).await {
        Ok(diff) => {
            let changed = diff
                .lines
                .iter()
                .filter(|line| line.change != LineChange::Same)
                .count();
            render(
                &state,
                "flow_diff.html",
                Some(&session),
                "flows",
                json!({ "id": id, "diff": diff, "changed": changed }),
            )
        }
        Err(err) => err.into_response(),
    }
}
