//! The process-flow API (docs/api.md), in the spirit of Thinkwise Indicium. Every route here needs
//! an API key; handlers are thin and sit beside their routes. The OpenAPI document is generated
//! from the same routes ([`doc`]), so a route cannot exist without being documented.

pub mod doc;
pub mod flow_versions;
mod flows;
mod oauth_servers;
mod runs;
pub mod vault;

use axum::Router;
use axum::middleware;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

use crate::state::AppState;

/// The API routes (behind the API-key middleware) and their OpenAPI paths.
pub fn routes(state: Option<AppState>) -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let router = OpenApiRouter::with_openapi(doc::ApiDoc::openapi())
        .merge(runs::routes())
        .merge(flows::routes())
        .merge(flow_versions::routes())
        .merge(oauth_servers::routes())
        .merge(vault::routes());
    let (router, openapi) = router.split_for_parts();
    let router = router.layer(middleware::map_response(crate::error::json_api_errors));
    let router = match state {
        Some(state) => router.route_layer(middleware::from_fn_with_state(
            state,
            crate::auth::api_keys::require_api_key,
        )),
        None => router,
    };
    (router, openapi)
}
