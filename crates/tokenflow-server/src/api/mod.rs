//! The process-flow API (SPEC §8.1), in the spirit of Thinkwise Indicium. Every route here needs
//! an API key; handlers are thin and sit beside their routes.

mod flows;
mod oauth_servers;
mod runs;

use axum::Router;
use axum::middleware;

use crate::state::AppState;

pub fn routes(state: AppState) -> Router<AppState> {
    Router::new()
        .merge(runs::routes())
        .merge(flows::routes())
        .merge(oauth_servers::routes())
        .route_layer(middleware::from_fn_with_state(
            state,
            crate::auth::require_api_key,
        ))
}
