//! `http_connector` with its `auth` input (docs/connectors.md, "Authentication").
//!
//! The connector applies credentials it is given; this module obtains the ones that are tokens —
//! `auth.oauth_server` from the shared client-credentials cache, exactly what
//! `oauth_server_login` gets, and `auth.vault` from the vault, exactly what `vault_get_token`
//! gets — and renews them once when the API answers 401:
//!
//! - the refused client-credentials token is dropped from the cache (only while the cache still
//!   holds it), or the vault entry is refreshed (only while it still holds the refused token,
//!   under the vault's single-flight lock, lease and compare-and-swap), so N runs refused at
//!   once cause one token request or one refresh;
//! - the request is sent once more with the new token, and both attempts' HTTP status codes go
//!   into the monitor record; a second 401 is handed to the flow as the response it is.
//!
//! The inputs are checked before any token is obtained: URL, method, headers, timeout,
//! `client_certificate`, then `auth`.

use serde_json::{Map, Value};
use tokenflow_connectors::http_action::{HttpAuth, HttpInput, HttpOutputs};
use tokenflow_connectors::oauth::{ConnectorStatus, TokenOutputs};
use tokenflow_connectors::status::{HttpStatus, ServerLoginStatus, VaultGetStatus};
use tokenflow_core::flow::auth::{ApiKeyPlace, Auth};
use tokenflow_core::{Input, SecretString};

use crate::context::ActionContext;
use crate::inputs::{InputError, Resolved};
use crate::outcome::Outcome;

/// The warning of a request sent again after a 401.
pub const RETRIED: &str = "401 from the API: token refreshed, request sent again";

/// Runs `http_connector` with the resolved inputs.
pub(crate) async fn call(
    engine: &ActionContext,
    inputs: &Resolved<'_>,
) -> Result<Outcome, InputError> {
    let mut input = HttpInput {
        url: inputs.text("url").assigned().cloned(),
        method: inputs
            .text("method")
            .assigned()
            .cloned()
            .filter(|m| !m.is_empty()),
        headers: inputs.json("headers").filter(|h| !h.is_null()),
        content: inputs.text("content").assigned().cloned(),
        content_type: inputs
            .text("content_type")
            .assigned()
            .cloned()
            .filter(|c| !c.is_empty()),
        bearer_token: match inputs.secret("bearer_token") {
            Input::Assigned(token) if !token.is_empty() => Some(token),
            _ => None,
        },
        auth: None,
        timeout_ms: inputs.integer("timeout")?,
        follow_redirects: inputs
            .boolean("follow_redirects")?
            .assigned()
            .copied()
            .unwrap_or(false),
        client_certificate: None,
    };
    // After the URL, method, headers and timeout, before `auth` (docs/connectors.md).
    if let Some(certificate) = inputs
        .json("client_certificate")
        .filter(|c| !c.is_null() && c.as_str() != Some(""))
    {
        if let Err(out) = engine.http().check(&input) {
            return Ok(outcome(*out, Vec::new()));
        }
        match tokenflow_core::flow::client_certificate::from_value(&certificate) {
            Ok(certificate) => input.client_certificate = Some(certificate),
            Err(description) => {
                return Ok(failed(
                    HttpStatus::InvalidHeaders,
                    "invalid_client_certificate",
                    description,
                    Vec::new(),
                ));
            }
        }
    }
    // An empty `auth` (a variable that holds nothing) counts as absent, like `bearer_token`.
    let Some(auth) = inputs
        .json("auth")
        .filter(|a| !a.is_null() && a.as_str() != Some(""))
    else {
        return Ok(outcome(engine.http().call(&input).await, Vec::new()));
    };
    if let Err(out) = engine.http().check(&input) {
        return Ok(outcome(*out, Vec::new()));
    }
    let auth = match Auth::from_value(&auth) {
        Ok(auth) => auth,
        Err(description) => return Ok(invalid_auth(description)),
    };
    if input.bearer_token.is_some() {
        return Ok(invalid_auth(
            "give either `bearer_token` or `auth`, not both".to_owned(),
        ));
    }
    input.auth = Some(match &auth {
        Auth::Basic { username, password } => HttpAuth::Basic {
            username: username.clone(),
            password: password.clone(),
        },
        Auth::ApiKey {
            place: ApiKeyPlace::Header,
            name,
            value,
        } => HttpAuth::Header {
            name: name.clone(),
            value: value.clone(),
        },
        Auth::ApiKey {
            place: ApiKeyPlace::Query,
            name,
            value,
        } => HttpAuth::Query {
            name: name.clone(),
            value: value.clone(),
        },
        Auth::Bearer(token) => HttpAuth::Bearer(token.clone()),
        Auth::OauthServer { .. } | Auth::Vault { .. } => {
            return Ok(with_token(engine, &auth, input).await);
        }
    });
    Ok(outcome(engine.http().call(&input).await, Vec::new()))
}

/// `auth.oauth_server` and `auth.vault`: obtain the token, call, and on a 401 renew it and call
/// once more.
async fn with_token(engine: &ActionContext, auth: &Auth, mut input: HttpInput) -> Outcome {
    let token = match obtain(engine, auth, None).await {
        Ok(token) => token,
        Err(failed) => return failed,
    };
    input.auth = Some(HttpAuth::Bearer(token.clone()));
    let first = engine.http().call(&input).await;
    if first.http_status_code != Some(401) {
        return outcome(first, Vec::new());
    }
    let renewed = match obtain(engine, auth, Some(&token)).await {
        Ok(renewed) if renewed != token => renewed,
        Ok(_) => {
            let mut out = outcome(first, Vec::new());
            out.warnings.push(
                "401 from the API: no new token was available (the same token came back), so the request was not sent again"
                    .to_owned(),
            );
            return out;
        }
        Err(failed) => {
            let mut out = outcome(first, Vec::new());
            out.warnings.push(format!(
                "401 from the API: a new token could not be obtained ({}), so the request was not sent again",
                failed.error.unwrap_or_default()
            ));
            return out;
        }
    };
    input.auth = Some(HttpAuth::Bearer(renewed));
    let second = engine.http().call(&input).await;
    let codes = vec![Value::from(401), opt(&second.http_status_code)];
    let mut warnings = first.warnings;
    warnings.push(format!(
        "{RETRIED} (first attempt: HTTP 401, second attempt: {})",
        second
            .http_status_code
            .map_or_else(|| "no response".to_owned(), |code| format!("HTTP {code}")),
    ));
    let mut out = outcome(second, warnings);
    set_attempts(&mut out, 2);
    out.response
        .insert("attempt_http_status_codes".to_owned(), Value::Array(codes));
    out
}

/// The token for `auth`; with `rejected`, a new one in its place (the cache entry dropped, or
/// the vault entry refreshed, only while they still hold `rejected`). A failure is the
/// action's outcome.
async fn obtain(
    engine: &ActionContext,
    auth: &Auth,
    rejected: Option<&SecretString>,
) -> Result<SecretString, Outcome> {
    match auth {
        Auth::OauthServer { server, scope } => {
            let Some(config) = engine.servers().get(server) else {
                return Err(failed(
                    HttpStatus::InvalidHeaders,
                    "no_configuration",
                    format!("auth.oauth_server: OAuth server `{server}` is not configured"),
                    Vec::new(),
                ));
            };
            if let Some(rejected) = rejected {
                engine.oauth().forget_token(rejected).await;
            }
            let out = engine
                .oauth()
                .server_login(server, Some(&config), scope)
                .await;
            let status = match out.status {
                ServerLoginStatus::NoConfiguration | ServerLoginStatus::NoScope => {
                    HttpStatus::InvalidHeaders
                }
                _ => HttpStatus::Unknown,
            };
            token_of(out, status, &format!("auth.oauth_server `{server}`"))
        }
        Auth::Vault { name } => {
            let Some(vault) = engine.vault() else {
                return Err(failed(
                    HttpStatus::Unknown,
                    "no_vault",
                    "auth.vault: the token vault needs the store (tokenflow serve)".to_owned(),
                    Vec::new(),
                ));
            };
            let out = match rejected {
                None => vault.get_token(name).await,
                Some(rejected) => vault.refresh_rejected(name, rejected).await,
            };
            let status = match out.status {
                VaultGetStatus::NoServer => HttpStatus::InvalidHeaders,
                _ => HttpStatus::Unknown,
            };
            token_of(out, status, &format!("auth.vault `{name}`"))
        }
        // The connector applies these itself.
        Auth::Basic { .. } | Auth::ApiKey { .. } | Auth::Bearer(_) => Err(failed(
            HttpStatus::Unknown,
            "internal_error",
            format!("auth.{} carries no token to obtain", auth.kind()),
            Vec::new(),
        )),
    }
}

/// The access token of a successful token outcome; otherwise the action's failure, with the
/// token connector's `error` code kept (`needs_login`, `invalid_client`, …) so flows can route
/// on it.
fn token_of<S: ConnectorStatus>(
    out: TokenOutputs<S>,
    status: HttpStatus,
    what: &str,
) -> Result<SecretString, Outcome> {
    let warnings: Vec<String> = out
        .warnings
        .iter()
        .map(|w| format!("{}: {}", w.code, w.message))
        .collect();
    match out.access_token {
        Some(token) if out.status.is_success() && !token.is_empty() => Ok(token),
        _ => Err(failed(
            status,
            out.error.as_deref().unwrap_or("no_token"),
            format!(
                "{what}: no token ({})",
                out.error_description
                    .as_deref()
                    .unwrap_or("the token source returned none")
            ),
            warnings,
        )),
    }
}

fn invalid_auth(description: String) -> Outcome {
    failed(
        HttpStatus::InvalidHeaders,
        "invalid_auth",
        description,
        Vec::new(),
    )
}

fn failed(status: HttpStatus, error: &str, description: String, warnings: Vec<String>) -> Outcome {
    outcome(HttpOutputs::failure(status, error, description), warnings)
}

fn opt<T: Into<Value> + Clone>(value: &Option<T>) -> Value {
    value.clone().map_or(Value::Null, Into::into)
}

fn set_attempts(out: &mut Outcome, attempts: u32) {
    if let Some((_, value)) = out.outputs.iter_mut().find(|(n, _)| *n == "attempts") {
        *value = Value::from(attempts);
    }
}

/// The action's outputs from one connector call; `warnings` come first.
fn outcome(mut out: HttpOutputs, mut warnings: Vec<String>) -> Outcome {
    // Moved, not copied: the body may be up to 16 MiB.
    let content = out.content.take().map_or(Value::Null, Value::String);
    let error = out
        .error
        .as_ref()
        .map(|error| match &out.error_description {
            Some(description) => format!("{error}: {description}"),
            None => error.clone(),
        });
    warnings.append(&mut out.warnings);
    Outcome {
        status_code: out.status.code(),
        outputs: vec![
            ("http_status_code", opt(&out.http_status_code)),
            ("headers", opt(&out.headers)),
            ("content", content),
            ("attempts", Value::from(u32::from(out.sent))),
            ("status_code", Value::from(out.status.code())),
            ("error", opt(&out.error)),
            ("error_description", opt(&out.error_description)),
        ],
        error,
        warnings,
        response: Map::new(),
    }
}
