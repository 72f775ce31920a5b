//! The OpenAPI document of the API, generated from the handlers' annotations with `utoipa`
//! (served at `/api/openapi.json`, committed as `docs/openapi.json`, and checked equal by a test).
//! The schema types below describe the JSON the handlers build; they are documentation only.

use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

/// Every error: a stable code and a message.
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct ErrorBody {
    /// `unauthorized`, `not_found`, `invalid_json`, `payload_too_large`, `unsupported_media_type`,
    /// `invalid_flow`, `invalid_input`, `secret_required`, `conflict`, `defined_in_configuration`,
    /// `internal`.
    pub error: String,
    pub message: String,
    /// For `invalid_flow`: every problem as `file:line:column: message`.
    pub problems: Option<Vec<String>>,
}

/// One executed action (the process flow monitor's record). Secrets are fingerprints. An input or
/// output value larger than `monitor_value_limit` (default 8 KiB) is kept as
/// `{ "truncated": true, "bytes": <size>, "sha256": "<hex of its text>", "preview": "<first 512 bytes>" }`
/// (a string's text is itself, any other value's is its compact JSON).
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct ActionRecordDoc {
    pub action: String,
    #[schema(rename = "type")]
    pub kind: String,
    pub status_code: Option<i32>,
    /// RFC 3339.
    pub started_at: String,
    pub duration_ms: u64,
    #[schema(value_type = Object)]
    pub inputs: serde_json::Value,
    #[schema(value_type = Object)]
    pub outputs: serde_json::Value,
    pub error: Option<String>,
    pub warnings: Vec<String>,
}

/// A run (docs/flows.md). Secret variables are fingerprints like `sha256:1a2b3c4d… (43 chars)`.
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct RunDoc {
    pub id: String,
    pub flow: String,
    pub flow_version: i64,
    /// `running`, `waiting`, `completed`, `failed`, `cancelled`.
    pub status: String,
    pub started_at: String,
    pub ended_at: Option<String>,
    /// The last (at most 100) executed actions.
    pub actions: Vec<ActionRecordDoc>,
    /// How many actions the run has executed and recorded.
    pub actions_total: u64,
    /// The sequence number of `actions[0]` (0 is the run's first action).
    pub actions_offset: u64,
    /// When `actions` does not start at the first action: the page before it,
    /// `/api/runs/{id}/actions?offset=…&limit=…`.
    pub earlier_actions: Option<String>,
    /// Values larger than `monitor_value_limit` are summarized as in the records.
    #[schema(value_type = Object)]
    pub variables: serde_json::Value,
    /// Only while waiting: where the person signs in.
    pub authorization_url: Option<String>,
    pub waiting_action: Option<String>,
    pub expires_at: Option<String>,
    /// Why the run failed or was cancelled.
    pub error: Option<String>,
}

/// A page of a run's monitor records, in execution order.
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct ActionPageDoc {
    pub run: String,
    /// How many records the run has.
    pub total: u64,
    /// The sequence number of `actions[0]`.
    pub offset: u64,
    pub limit: u32,
    pub actions: Vec<ActionRecordDoc>,
    /// The next page, while there is one.
    pub next: Option<String>,
}

/// A run in a list.
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct RunSummaryDoc {
    pub id: String,
    pub flow: String,
    pub flow_version: i64,
    pub status: String,
    pub started_at: String,
    pub ended_at: Option<String>,
}

#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct RunListDoc {
    pub runs: Vec<RunSummaryDoc>,
    pub limit: u32,
    pub offset: u32,
}

/// A flow (its newest version).
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct FlowDoc {
    pub id: String,
    pub version: i64,
    pub description: Option<String>,
    pub schedule: Option<String>,
    /// No action needs a person.
    pub system_flow: bool,
    pub required_inputs: Vec<String>,
    pub actions: Vec<String>,
    /// `GET /api/flows/{id}` only.
    pub yaml: Option<String>,
    /// `PUT` only: e.g. an OAuth server that is not configured.
    pub warnings: Option<Vec<String>>,
}

#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct FlowListDoc {
    pub flows: Vec<FlowDoc>,
}

/// A schedule of a system flow.
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct ScheduleDoc {
    pub flow: String,
    pub schedule: String,
    pub next_due: Option<String>,
    pub last_firing: Option<String>,
    pub last_run: Option<String>,
}

#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct ScheduleListDoc {
    pub schedules: Vec<ScheduleDoc>,
}

/// An OAuth server as written (docs/connectors.md), `client_secret` write-only: accepted, never returned.
/// Omitting it on update keeps the stored secret; an empty string removes it.
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct OAuthServerInput {
    pub client_id: String,
    /// Write-only. Omitted: the stored secret is kept, unless an endpoint, the issuer or the
    /// client authentication changes (then `secret_required`); `""` removes it.
    pub client_secret: Option<String>,
    /// `body` or `basic_header`.
    pub client_credentials_delivery: Option<String>,
    /// With `basic_header`: `form_urlencoded` (default, RFC 6749 §2.3.1) or `raw` (for providers
    /// that do not decode the credentials).
    pub basic_auth_encoding: Option<String>,
    pub authorization_url: Option<String>,
    pub token_url: Option<String>,
    pub issuer: Option<String>,
    pub scope: Option<String>,
    pub pkce: Option<bool>,
    pub request_refresh_token: Option<bool>,
    /// `consent`, `login`, `select_account`, `none`.
    pub prompt: Option<String>,
    pub redirect_uri: Option<String>,
    #[schema(value_type = Object)]
    pub extra_authorize_params: Option<serde_json::Value>,
    #[schema(value_type = Object)]
    pub extra_token_params: Option<serde_json::Value>,
    /// Seconds, or text such as `"30s"`, `"500ms"`.
    #[schema(value_type = String)]
    pub timeout: Option<serde_json::Value>,
    pub token_cache: Option<bool>,
    pub token_cache_skew: Option<u64>,
    /// Refresh idle vault entries of this server after this long, e.g. `"12h"`.
    pub vault_keep_alive: Option<String>,
}

/// An OAuth server as shown: its fields without the secret, plus these.
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct OAuthServerDoc {
    pub id: String,
    pub client_id: String,
    /// `config` or `store`.
    pub source: String,
    pub has_client_secret: bool,
    pub resolved_token_url: Option<String>,
    pub resolved_authorization_url: Option<String>,
}

#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct OAuthServerListDoc {
    pub oauth_servers: Vec<OAuthServerDoc>,
}

/// The result of `oauth_server_login` against a server.
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct ServerTestDoc {
    pub oauth_server: String,
    pub status_code: i32,
    pub meaning: String,
    pub token_type: Option<String>,
    pub expires_in: Option<u64>,
    /// A fingerprint, never the token.
    pub access_token: Option<String>,
    pub error: Option<String>,
    pub error_description: Option<String>,
}

#[derive(Debug)]
struct BearerAuth;

/// A vault entry's metadata; tokens are never returned.
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct VaultEntryDoc {
    pub name: String,
    pub oauth_server: String,
    /// `ok` or `needs_login`.
    pub state: String,
    pub expires_at: Option<String>,
    pub granted_scopes: Option<String>,
    pub has_access_token: bool,
    pub has_refresh_token: bool,
    pub last_refresh_at: Option<String>,
    /// `ok` or the last refresh's error.
    pub last_refresh_outcome: Option<String>,
    pub version: i64,
    pub updated_at: String,
}

#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct VaultListDoc {
    pub entries: Vec<VaultEntryDoc>,
}

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
