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
    let (router, mut openapi) = router.split_for_parts();
    too_many_failed_attempts(&mut openapi);
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

/// Every API operation may answer `429` once its client's address has too many failed API keys
/// (docs/security.md, "Failed sign-ins"); the operations that say more keep their own text.
fn too_many_failed_attempts(openapi: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
    let answer = ResponseBuilder::new()
        .description(
            "`too_many_failed_attempts`: too many failed API keys from this address; `Retry-After` says when to try again",
        )
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ErrorBody")))
                .build(),
        )
        .build();
    for item in openapi.paths.paths.values_mut() {
        for operation in [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ]
        .into_iter()
        .flatten()
        {
            operation
                .responses
                .responses
                .entry("429".to_owned())
                .or_insert_with(|| answer.clone().into());
        }
    }
}
