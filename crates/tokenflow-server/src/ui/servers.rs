//! OAuth servers in the web UI: list, create, edit with a write-only secret, delete, and the Test
//! button (a client-credentials sign-in whose outcome the page shows, never the token).

use std::collections::HashMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde_json::{Map, Value, json};
use tokenflow_core::OAuthServerSpec;
use tokenflow_engine::ServerDirectory;
use tokenflow_runtime::RuntimeError;
use tokenflow_runtime::registry::{OAuthServerView, Source};
use utoipa_axum::router::OpenApiRouter;

use super::hints::aadsts_hint;
use super::templates::render;
use crate::auth::csrf::CsrfForm;
use crate::auth::session::{Session, SignedIn};
use crate::error::ApiError;
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .route("/servers", get(servers))
        .route("/servers/new", get(new_server))
        .route("/servers/create", post(create_server))
        .route("/servers/{id}/edit", get(edit_server))
        .route("/servers/{id}/update", post(update_server))
        .route("/servers/{id}/delete", post(delete_server))
        .route("/servers/{id}/test", post(test_server))
}

fn server_views(state: &AppState) -> Vec<OAuthServerView> {
    state.registry.views()
}

async fn servers(State(state): State<AppState>, SignedIn(session): SignedIn) -> Response {
    render(
        &state,
        "servers.html",
        Some(&session),
        "servers",
        json!({ "servers": server_views(&state), "message": null, "test": null }),
    )
}

fn form_page(
    state: &AppState,
    session: &Session,
    form: Value,
    editing: bool,
    has_secret: bool,
    errors: Vec<String>,
) -> Response {
    let action = if editing {
        format!(
            "/servers/{}/update",
            form["id"].as_str().unwrap_or_default()
        )
    } else {
        "/servers/create".to_owned()
    };
    let providers: Vec<Value> = tokenflow_core::providers::catalogue()
        .map(|catalogue| {
            catalogue
                .providers
                .iter()
                .map(|(name, provider)| {
                    json!({
                        "name": name,
                        "display_name": provider.display_name,
                        "parameters": provider.parameters.iter().map(|p| p.as_str()).collect::<Vec<_>>(),
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    let ctx = json!({ "form": form, "editing": editing, "has_secret": has_secret, "errors": errors, "action": action, "providers": providers });
    render(state, "server_form.html", Some(session), "servers", ctx)
}

async fn new_server(State(state): State<AppState>, SignedIn(session): SignedIn) -> Response {
    form_page(
        &state,
        &session,
        json!({ "pkce": true, "prompt": "consent" }),
        false,
        false,
        Vec::new(),
    )
}

async fn edit_server(
    State(state): State<AppState>,
    SignedIn(session): SignedIn,
    Path(id): Path<String>,
) -> Response {
    let Some(view) = state.registry.view(&id) else {
        return ApiError::NotFound(format!("OAuth server `{id}`")).into_response();
    };
    if view.source == Source::Config {
        return configured_server_refused(&state, &session, &id);
    }
    let has_secret = view.has_client_secret;
    let form = serde_json::to_value(&view).unwrap_or_default();
    form_page(&state, &session, form, true, has_secret, Vec::new())
}

/// The spec from the form's fields; empty fields are unset.
fn spec_from_form(form: &HashMap<String, String>) -> (Value, OAuthServerSpec, Vec<String>) {
    let text = |key: &str| {
        form.get(key)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    let mut object = Map::new();
    for key in [
        "client_id",
        "issuer",
        "authorization_url",
        "token_url",
        "revocation_url",
        "scope",
        "client_credentials_delivery",
        "token_endpoint_auth_method",
        "basic_auth_encoding",
        "prompt",
        "redirect_uri",
        "provider",
        "scope_separator",
        "token_path",
    ] {
        if let Some(value) = text(key) {
            object.insert(key.to_owned(), value.into());
        }
    }
    // A preset's parameters only with a provider, so a leftover value cannot block saving.
    if object.contains_key("provider") {
        for key in ["tenant", "domain", "realm", "base_url"] {
            if let Some(value) = text(key) {
                object.insert(key.to_owned(), value.into());
            }
        }
    }
    for key in ["bearer_token_types", "response_fields"] {
        if let Some(value) = text(key) {
            let names: Vec<Value> = value
                .split(',')
                .map(str::trim)
                .filter(|name| !name.is_empty())
                .map(Value::from)
                .collect();
            object.insert(key.to_owned(), names.into());
        }
    }
    // With a provider an unticked box leaves the preset's value (explicit fields win).
    for key in ["pkce", "request_refresh_token"] {
        if form.contains_key(key) || !object.contains_key("provider") {
            object.insert(key.to_owned(), form.contains_key(key).into());
        }
    }
    // The key's companions only with private_key_jwt and tls_client_auth (elsewhere they are
    // configuration errors).
    let method = text("token_endpoint_auth_method");
    if matches!(
        method.as_deref(),
        Some("private_key_jwt" | "tls_client_auth")
    ) && let Some(value) = text("certificate")
    {
        object.insert("certificate".to_owned(), value.into());
    }
    if method.as_deref() == Some("private_key_jwt") {
        if let Some(value) = text("signing_alg") {
            object.insert("signing_alg".to_owned(), value.into());
        }
        if form.contains_key("x5t_sha1") {
            object.insert("x5t_sha1".to_owned(), true.into());
        }
    }
    let echo = Value::Object(object.clone());
    if form.contains_key("remove_secret") {
        object.insert("client_secret".to_owned(), "".into());
    } else if let Some(secret) = form.get("client_secret").filter(|s| !s.is_empty()) {
        object.insert("client_secret".to_owned(), secret.clone().into());
    }
    // Write-only like the secret: never echoed into the page.
    if form.contains_key("remove_private_key") {
        object.insert("private_key".to_owned(), "".into());
    } else if let Some(key) = text("private_key") {
        object.insert("private_key".to_owned(), key.into());
    }
    match serde_json::from_value::<OAuthServerSpec>(Value::Object(object)) {
        Ok(spec) => (echo, spec, Vec::new()),
        Err(err) => (echo, OAuthServerSpec::default(), vec![err.to_string()]),
    }
}

async fn save_server(
    state: &AppState,
    session: &Session,
    id: &str,
    form: &HashMap<String, String>,
    editing: bool,
) -> Response {
    let (mut echo, spec, mut errors) = spec_from_form(form);
    echo["id"] = id.into();
    if errors.is_empty() {
        match state
            .registry
            .put(state.store.as_ref(), id, spec, state.clock.now())
            .await
        {
            Ok(_) => return Redirect::to("/servers").into_response(),
            Err(RuntimeError::InvalidInput(message)) => {
                errors.extend(message.split("; ").map(str::to_owned))
            }
            Err(RuntimeError::SecretRequired(message)) => errors.push(message),
            Err(RuntimeError::DefinedInConfiguration(_)) => {
                return configured_server_refused(state, session, id);
            }
            Err(err) => return ApiError::from(err).into_response(),
        }
    }
    let stored = state.registry.get(id);
    let has_secret = stored.as_ref().is_some_and(|s| s.client_secret.is_some());
    echo["has_private_key"] = stored
        .is_some_and(|s| s.client_key.is_some() || s.client_certificate.is_some())
        .into();
    let mut response = form_page(state, session, echo, editing, has_secret, errors);
    *response.status_mut() = StatusCode::BAD_REQUEST;
    response
}

/// The servers page with the reason a server of the configuration file cannot be edited here.
fn configured_server_refused(state: &AppState, session: &Session, id: &str) -> Response {
    let message = format!(
        "OAuth server `{id}` is defined in the configuration file: edit tokenflow.toml (and \
         restart) to change it."
    );
    let mut response = render(
        state,
        "servers.html",
        Some(session),
        "servers",
        json!({ "servers": server_views(state), "message": message, "test": null }),
    );
    *response.status_mut() = StatusCode::CONFLICT;
    response
}

async fn create_server(
    State(state): State<AppState>,
    CsrfForm { session, form }: CsrfForm<HashMap<String, String>>,
) -> Response {
    let id = form
        .get("id")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default();
    save_server(&state, &session, &id, &form, false).await
}

async fn update_server(
    State(state): State<AppState>,
    Path(id): Path<String>,
    CsrfForm { session, form }: CsrfForm<HashMap<String, String>>,
) -> Response {
    save_server(&state, &session, &id, &form, true).await
}

async fn delete_server(
    State(state): State<AppState>,
    Path(id): Path<String>,
    _: CsrfForm<HashMap<String, String>>,
) -> Response {
    match state.registry.delete(state.store.as_ref(), &id).await {
        Ok(_) => Redirect::to("/servers").into_response(),
        Err(err) => ApiError::from(err).into_response(),
    }
}

async fn test_server(
    State(state): State<AppState>,
    Path(id): Path<String>,
    CsrfForm { session, .. }: CsrfForm<HashMap<String, String>>,
) -> Response {
    let out = match state
        .registry
        .test(state.runner.engine().oauth(), &id, None)
        .await
    {
        Ok(out) => out,
        // The same answer as the API's: no such server is a 404, shown on the servers page.
        Err(RuntimeError::NotFound(_)) => {
            let mut response = render(
                &state,
                "servers.html",
                Some(&session),
                "servers",
                json!({ "servers": server_views(&state), "message": format!("No OAuth server `{id}`."), "test": null }),
            );
            *response.status_mut() = StatusCode::NOT_FOUND;
            return response;
        }
        Err(err) => return ApiError::from(err).into_response(),
    };
    let error = out.error.as_ref().map(|e| match &out.error_description {
        Some(d) => format!("{e}: {d}"),
        None => e.clone(),
    });
    let test = json!({
        "server": id, "status_code": out.status_code, "meaning": out.meaning,
        "token": out.access_token, "expires_in": out.expires_in,
        "hint": error.as_deref().and_then(aadsts_hint), "error": error,
    });
    render(
        &state,
        "servers.html",
        Some(&session),
        "servers",
        json!({ "servers": server_views(&state), "message": null, "test": test }),
    )
}
