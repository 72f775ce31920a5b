//! The OpenAPI document of the API, generated from the handlers' annotations with `utoipa`
//! (served at `/api/openapi.json`, committed as `docs/openapi.json`, and checked equal by a test).
//! Every response schema is the type its handler returns, so the document cannot describe a body
//! the server does not send.

use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

/// The error body, for the browser routes' annotations outside `api/`.
pub use crate::error::ErrorBody;

#[derive(Debug)]
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

#[derive(Debug, OpenApi)]
#[openapi(
    info(
        title = "tokenflow",
        description = "Process flows with OAuth 2.0 connectors: the process-flow API, /oauth-callback and operations endpoints. `/api/*` needs `Authorization: Bearer <API key>`.",
        license(name = "Apache-2.0")
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "runs", description = "Start, inspect and cancel runs"),
        (name = "flows", description = "Process flows (versioned) and their schedules"),
        (name = "oauth-servers", description = "OAuth server configuration; the client secret is write-only"),
        (name = "vault", description = "Token vault entries (metadata only)"),
        (name = "browser", description = "Pages a person's browser visits"),
        (name = "operations", description = "Health, readiness, metrics")
    )
)]
pub struct ApiDoc;
