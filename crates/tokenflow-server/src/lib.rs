//! `tokenflow serve` (SPEC §8): the process-flow API, `/oauth-callback`, browser-started runs,
//! durable execution on the store, schedules and operations endpoints.
//!
//! - [`state`]: `AppState`; [`startup`] builds it from the configuration (used by the binary and
//!   the tests alike).
//! - [`runner`]: drives runs and persists every transition (one store write per action).
//! - [`catalog`]: flows (versioned in the store, parsed once per version).
//! - [`registry`]: OAuth servers from the configuration and the store.
//! - [`api`]: `/api/*` handlers, thin: extract, call the runner/catalog/registry, map to JSON.
//! - [`callback`]: `/oauth-callback` and `/flows/{id}/start`.
//! - [`error`]: the one place errors become HTTP responses.
//! - [`ui`]: the web UI (the process flow monitor), server-rendered.
//! - [`auth`], [`metrics`], [`scheduler`], [`ops`], [`pages`].
//!
//! Handlers never write SQL and never touch secrets beyond passing them through.

pub mod api;
pub mod auth;
pub mod callback;
pub mod catalog;
pub mod error;
pub mod metrics;
pub mod ops;
pub mod pages;
pub mod registry;
pub mod runner;
pub mod scheduler;
pub mod startup;
pub mod state;
pub mod ui;

use axum::Router;
use axum::extract::DefaultBodyLimit;

pub use state::{AppState, Settings};

/// Largest accepted request body.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// The whole HTTP application, callable without a socket in tests.
pub fn app(state: AppState) -> Router {
    let (api, _) = api::routes(Some(state.clone()));
    let (public, _) = public_routes().split_for_parts();
    Router::new()
        .merge(api)
        .merge(public)
        .merge(ui::routes())
        .route(
            "/api/openapi.json",
            axum::routing::get(|| async { axum::Json(openapi()) }),
        )
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

fn public_routes() -> utoipa_axum::router::OpenApiRouter<AppState> {
    callback::routes().merge(ops::routes())
}

/// The OpenAPI document of every route (also served at `/api/openapi.json`, no key needed).
pub fn openapi() -> utoipa::openapi::OpenApi {
    let (_, mut document) = api::routes(None);
    let (_, public) = public_routes().split_for_parts();
    document.merge(public);
    document
}

/// Serves `app` on `listener` until `shutdown` resolves (graceful: in-flight requests finish).
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let background = state.start_background_tasks();
    let result = axum::serve(listener, app(state))
        .with_graceful_shutdown(shutdown)
        .await;
    background.abort();
    result
}
