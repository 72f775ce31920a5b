//! The web UI, the process flow monitor (docs/api.md): server-rendered HTML that works without any
//! external CDN. Each area owns its routes, beside its handlers:
//!
//! - [`sign_in`]: `/login`, `/logout`.
//! - [`dashboard`]: `/dashboard`, the landing page: figures of the last hour, day or week as
//!   [`charts`] with tables.
//! - [`runs`]: `/runs`, one run's path on the [`diagram`] ([`run_path`]) and its timeline with
//!   live updates, cancelling a run.
//! - [`flows`]: `/flows`, one flow with its [`diagram`], starting a run (`/flows/{id}/run`, and the
//!   browser start of a user flow, `/flows/{id}/start`).
//! - [`flow_edit`]: creating and editing flows in the browser, their versions and diffs.
//! - [`servers`]: `/servers`, creating, editing, deleting and testing OAuth servers.
//! - [`vault`]: `/vault`, the token vault's metadata.
//! - [`diagram`]: a flow as one self-contained SVG.
//! - [`device_qr`]: a device login's sign-in link as a QR code (SVG).
//! - [`hints`]: what to check for an identity provider's error code.
//! - [`templates`]: the page templates and rendering; [`assets`]: the stylesheet and script.
//!
//! Who is signed in, and the CSRF token every state-changing form carries, are
//! [`crate::auth`]'s.

pub mod assets;
pub mod charts;
pub mod dashboard;
pub mod device_qr;
pub mod diagram;
pub mod flow_edit;
pub mod flows;
pub mod hints;
pub mod run_path;
pub mod runs;
pub mod servers;
pub mod sign_in;
pub mod templates;
pub mod vault;

use axum::response::Redirect;
use axum::routing::get;
use utoipa_axum::router::OpenApiRouter;

use crate::state::AppState;

/// Every route of the UI (only the browser start is in the OpenAPI document).
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .route("/", get(|| async { Redirect::to("/dashboard") }))
        .merge(assets::routes())
        .merge(sign_in::routes())
        .merge(dashboard::routes())
        .merge(runs::routes())
        .merge(flows::routes())
        .merge(flow_edit::routes())
        .merge(servers::routes())
        .merge(vault::routes())
}
