//! The UI's stylesheets and scripts, compiled into the binary and served from `/static/` (so no
//! page loads anything from elsewhere): the common ones, and the flow editor's (docs/flows.md),
//! which only its page loads.

use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use utoipa_axum::router::OpenApiRouter;

use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .route("/static/style.css", get(style))
        .route("/static/app.js", get(script))
        .route(
            "/static/flow-editor.js",
            get(|| async { asset(JS, include_str!("flow_editor.js")) }),
        )
        .route(
            "/static/flow-editor.css",
            get(|| async { asset(CSS, include_str!("flow_editor.css")) }),
        )
}

const CSS: &str = "text/css; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";

/// A stylesheet or script with its type, cached for five minutes.
fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "max-age=300"),
        ],
        body,
    )
}

async fn style() -> impl IntoResponse {
    asset(CSS, include_str!("style.css"))
}

async fn script() -> impl IntoResponse {
    asset(JS, include_str!("app.js"))
}
