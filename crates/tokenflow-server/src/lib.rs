//! `tokenflow serve` (docs/api.md), the HTTP side: the process-flow API, `/oauth-callback`, the
//! web UI and operations endpoints. The durable run lifecycle (runs, schedules, flows, OAuth
//! servers, background tasks) is `tokenflow_runtime`'s; handlers extract, call it, and answer.
//! Each area owns its `routes()`, beside its handlers:
//!
//! - [`api`]: `/api/*`, JSON behind an API key; [`api::doc`] is the OpenAPI document.
//! - [`callback`]: `/oauth-callback`, where the identity provider sends the person back.
//! - [`ui`]: the web UI (the process flow monitor), server-rendered, one file per area.
//! - [`ops`]: `/healthz`, `/readyz`, `/metrics`.
//! - [`auth`]: who may do what: API keys, UI sessions, CSRF, the browser binding of a run.
//! - [`error`]: the one place errors become HTTP responses.
//! - [`html`]: message pages outside the UI's templates, and the security headers of every page.
//! - [`body`]: how long a client may take to send a request's body.
//! - [`state`]: `AppState`, data only; [`startup`] builds it from the configuration (used by the
//!   binary and the tests alike).
//! - this file: [`app`], the whole router, and [`serve`], the listener with its limits.
//!
//! Handlers never write SQL and never touch secrets beyond passing them through.

pub mod api;
pub mod auth;
pub mod body;
pub mod callback;
pub mod error;
pub mod html;
pub mod ops;
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
        .route(
            "/api/openapi.json",
            axum::routing::get(|| async { axum::Json(openapi()) }),
        )
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            body::read_deadline,
        ))
        .layer(axum::middleware::map_response(html::security_headers))
        .with_state(state)
}

fn public_routes() -> utoipa_axum::router::OpenApiRouter<AppState> {
    callback::routes().merge(ops::routes()).merge(ui::routes())
}

/// The OpenAPI document of every route (also served at `/api/openapi.json`, no key needed).
pub fn openapi() -> utoipa::openapi::OpenApi {
    let (_, mut document) = api::routes(None);
    let (_, public) = public_routes().split_for_parts();
    document.merge(public);
    document
}

/// Serves `app` on `listener`, with the run lifecycle's background tasks, until `shutdown`
/// resolves. Then no connection is accepted any more, requests in flight finish, and every
/// background task is stopped ([`tokenflow_runtime::RuntimeHandle::shutdown`], which says what
/// becomes of a run under way); this returns once all of them have ended.
///
/// Served with hyper's HTTP/1 connection rather than `axum::serve`, which offers neither of the
/// two limits a public listener needs (see docs/security.md, "Connections and requests"):
/// - `header_read_timeout`: a client that does not deliver a whole request head in time is
///   disconnected. hyper starts this timer whenever it waits for a head, so it also ends
///   keep-alive connections that stay idle for that long.
/// - `max_connections`: a permit is taken before each accept, so once that many connections are
///   open, further clients wait in the listen queue until one closes.
///
/// Each request carries its connection's peer address (`ConnectInfo`), by which failed sign-ins
/// are counted ([`auth::attempts`]).
///
/// The time to send a body after the head is bounded by `body_read_timeout` ([`body`]).
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioIo, TokioTimer};
    use hyper_util::server::graceful::GracefulShutdown;
    use hyper_util::service::TowerToHyperService;

    let background = state.runtime.spawn();
    let settings = state.settings.clone();
    let service = TowerToHyperService::new(app(state));
    let permits = std::sync::Arc::new(tokio::sync::Semaphore::new(settings.max_connections));
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(settings.header_read_timeout);
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    accept_failed(err).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // Each request carries its connection's peer address, which failed sign-ins are
        // counted by (`auth::attempts`).
        let app = service.clone();
        let with_peer = hyper::service::service_fn(
            move |mut request: hyper::Request<hyper::body::Incoming>| {
                request
                    .extensions_mut()
                    .insert(axum::extract::ConnectInfo(peer));
                hyper::service::Service::call(&app, request)
            },
        );
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), with_peer));
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                // Timeouts and clients that hang up are routine, not the server's failure.
                tracing::debug!(error = %err, "a connection ended with an error");
            }
            drop(permit);
        });
    }
    // No new connections; open ones finish their request in flight and close, while the
    // background tasks stop.
    drop(listener);
    tokio::join!(graceful.shutdown(), background.shutdown());
    Ok(())
}

/// An accept error: a client that gave up before it was accepted is routine; anything else (out
/// of file descriptors) is logged, and accepting pauses for a moment instead of spinning.
async fn accept_failed(err: std::io::Error) {
    use std::io::ErrorKind;
    if matches!(
        err.kind(),
        ErrorKind::ConnectionRefused | ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset
    ) {
        return;
    }
    tracing::error!(error = %err, "cannot accept a connection");
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
}
