//! `http_connector` with its `auth`, `retry` and `paginate` inputs (docs/connectors.md,
//! "Authentication", "Retries", "Pagination").
//!
//! The connector applies credentials it is given; this module obtains the ones that are tokens —
//! `auth.oauth_server` from the shared client-credentials cache, exactly what
//! `oauth_server_login` gets, and `auth.vault` from the vault, exactly what `vault_get_token`
//! gets — and renews them once when the API answers a status of the OAuth server's
//! `reauth_on_status` (default 401):
//!
//! - the refused client-credentials token is dropped from the cache (only while the cache still
//!   holds it), or the vault entry is refreshed (only while it still holds the refused token,
//!   under the vault's single-flight lock, lease and compare-and-swap), so N runs refused at
//!   once cause one token request or one refresh;
//! - the request is sent once more with the new token, and every attempt's HTTP status code goes
//!   into the monitor record; a second refusal is handed to the flow as the response it is.
//!
//! One deadline, `timeout` from the action's start, bounds every request of the action: its
//! retries, the request after a renewal and every page ([`crate::http_pages`] reads them).
//!
//! The inputs are checked before any token is obtained: URL, method, headers, timeout,
//! `client_certificate`, `retry`, `paginate`, then `auth`.

use std::time::Duration;

use serde_json::{Map, Value, json};
use tokenflow_connectors::http_action::{
    Attempt, DEFAULT_TIMEOUT_MS, HttpAuth, HttpInput, HttpOutputs, MAX_TIMEOUT_MS,
};
use tokenflow_connectors::oauth::{ConnectorStatus, TokenOutputs};
use tokenflow_connectors::status::{HttpStatus, ServerLoginStatus, VaultGetStatus};
use tokenflow_core::flow::auth::{ApiKeyPlace, Auth};
use tokenflow_core::flow::http_options::{Paginate, Retry};
use tokenflow_core::oauth_server::DEFAULT_REAUTH_ON_STATUS;
use tokenflow_core::{Input, SecretString};
use tokio::time::Instant;
use url::Url;

use crate::context::ActionContext;
use crate::http_pages::{PageStep, Pager};
use crate::inputs::{InputError, Resolved};
use crate::outcome::Outcome;

/// The warning of a request sent again after the API refused the token, after
/// `"<status> from the API: "`.
pub const RETRIED: &str = "token refreshed, request sent again";

/// Most attempts listed in a monitor record's `attempt_log` (the `attempts` output counts all).
pub const MAX_ATTEMPT_LOG: usize = 100;

/// Runs `http_connector` with the resolved inputs.
pub(crate) async fn call(
    engine: &ActionContext,
    inputs: &Resolved<'_>,
) -> Result<Outcome, InputError> {
    let started = Instant::now();
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
        retry: None,
        deadline: None,
    };
    if let Err(out) = engine.http().check(&input) {
        return Ok(outcome(*out, Vec::new()));
    }
    let timeout_ms = input.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS);
    input.deadline = Some(started + Duration::from_millis(timeout_ms.min(MAX_TIMEOUT_MS)));
    // After the URL, method, headers and timeout, before `auth` (docs/connectors.md).
    if let Some(certificate) = option(inputs, "client_certificate") {
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
    if let Some(retry) = option(inputs, "retry") {
        match Retry::from_value(&retry) {
            Ok(retry) => input.retry = Some(retry),
            Err(description) => return Ok(invalid("invalid_retry", description)),
        }
    }
    let paginate = match option(inputs, "paginate").map(|p| Paginate::from_value(&p)) {
        None => None,
        Some(Ok(_))
            if input
                .method
                .as_deref()
                .is_some_and(|m| !m.eq_ignore_ascii_case("GET")) =>
        {
            return Ok(invalid(
                "invalid_paginate",
                "paginate needs the GET method: every page is fetched with GET".to_owned(),
            ));
        }
        Some(Ok(paginate)) => Some(paginate),
        Some(Err(description)) => return Ok(invalid("invalid_paginate", description)),
    };
    let mut session = Session::new(started);
    // An empty `auth` (a variable that holds nothing) counts as absent, like `bearer_token`.
    if let Some(auth) = option(inputs, "auth") {
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
                let token = match obtain(engine, &auth, None).await {
                    Ok(token) => token,
                    Err(failed) => return Ok(failed),
                };
                let reauth = reauth_statuses(engine, &auth).await;
                session.credentials = Some(Credentials {
                    auth: auth.clone(),
                    token: token.clone(),
                    reauth,
                });
                HttpAuth::Bearer(token)
            }
        });
    }
    if let Some(paginate) = paginate {
        // The connector checked the URL before anything was sent.
        let Some(first) = input.url.as_deref().and_then(|url| Url::parse(url).ok()) else {
            let out = HttpOutputs::failure(HttpStatus::InvalidUrl, "invalid_url", "no URL");
            return Ok(outcome(out, Vec::new()));
        };
        let mut pager = Pager::new(first, &paginate);
        loop {
            let out = session.send(engine, &mut input).await;
            if let PageStep::Done(out) = pager.page(out, &mut input) {
                session.warnings.append(&mut pager.warnings);
                return Ok(session.finish(out, Some(pager.pages)));
            }
        }
    }
    let out = session.send(engine, &mut input).await;
    Ok(session.finish(out, None))
}

/// An object input (`auth`, `retry`, `paginate`); empty (a variable that holds nothing) is absent.
fn option(inputs: &Resolved<'_>, name: &str) -> Option<Value> {
    inputs
        .json(name)
        .filter(|v| !v.is_null() && v.as_str() != Some(""))
}

/// The statuses after which the token of `auth` is renewed: its OAuth server's
/// `reauth_on_status` (for a vault entry, the entry's server's).
async fn reauth_statuses(engine: &ActionContext, auth: &Auth) -> Vec<u16> {
    let server = match auth {
        Auth::OauthServer { server, .. } => Some(server.clone()),
        Auth::Vault { name } => match engine.vault() {
            Some(vault) => vault.server_of(name).await,
            None => None,
        },
        _ => None,
    };
    server.and_then(|id| engine.servers().get(&id)).map_or_else(
        || DEFAULT_REAUTH_ON_STATUS.to_vec(),
        |s| s.reauth_on_status.clone(),
    )
}

/// A token that tokenflow obtained, and when to renew it.
struct Credentials {
    auth: Auth,
    token: SecretString,
    reauth: Vec<u16>,
}

/// One action's requests: their credentials, every attempt and the warnings so far.
pub(crate) struct Session {
    credentials: Option<Credentials>,
    attempts: Vec<Attempt>,
    pub(crate) warnings: Vec<String>,
    started: Instant,
}

impl Session {
    fn new(started: Instant) -> Self {
        Self {
            credentials: None,
            attempts: Vec::new(),
            warnings: Vec::new(),
            started,
        }
    }

    /// Sends `input` (with its retries); when the API refuses the obtained token with a status of
    /// `reauth_on_status`, renews it and sends once more.
    pub(crate) async fn send(
        &mut self,
        engine: &ActionContext,
        input: &mut HttpInput,
    ) -> HttpOutputs {
        let mut first = engine.http().call(input).await;
        self.attempts.append(&mut first.attempts);
        let Some(credentials) = self.credentials.as_mut() else {
            return first;
        };
        let Some(code) = first
            .http_status_code
            .filter(|code| credentials.reauth.contains(code))
        else {
            return first;
        };
        let renewed = match obtain(engine, &credentials.auth, Some(&credentials.token)).await {
            Ok(renewed) if renewed != credentials.token => renewed,
            Ok(_) => {
                first.warnings.push(format!(
                    "{code} from the API: no new token was available (the same token came back), so the request was not sent again"
                ));
                return first;
            }
            Err(failed) => {
                first.warnings.push(format!(
                    "{code} from the API: a new token could not be obtained ({}), so the request was not sent again",
                    failed.error.unwrap_or_default()
                ));
                return first;
            }
        };
        credentials.token = renewed.clone();
        input.auth = Some(HttpAuth::Bearer(renewed));
        let mut second = engine.http().call(input).await;
        self.attempts.append(&mut second.attempts);
        self.warnings.append(&mut first.warnings);
        self.warnings.push(format!(
            "{code} from the API: {RETRIED} (first attempt: HTTP {code}, second attempt: {})",
            second
                .http_status_code
                .map_or_else(|| "no response".to_owned(), |c| format!("HTTP {c}")),
        ));
        second
    }

    /// The action's outcome from the last outputs: `attempts` counts every request sent, and the
    /// monitor record lists them (`attempt_http_status_codes`, `attempt_log`) when there were
    /// several.
    pub(crate) fn finish(self, out: HttpOutputs, pages: Option<u32>) -> Outcome {
        let mut result = outcome(out, self.warnings);
        let count = u32::try_from(self.attempts.len()).unwrap_or(u32::MAX);
        set_output(&mut result, "attempts", Value::from(count));
        set_output(&mut result, "pages", pages.map_or(Value::Null, Value::from));
        if self.attempts.len() > 1 {
            let codes = self.attempts.iter().map(|a| opt(&a.http_status_code));
            result.response.insert(
                "attempt_http_status_codes".to_owned(),
                Value::Array(codes.collect()),
            );
            let log = self.attempts.iter().take(MAX_ATTEMPT_LOG).map(|a| {
                let after = a.at.saturating_duration_since(self.started);
                json!({
                    "after_ms": u64::try_from(after.as_millis()).unwrap_or(u64::MAX),
                    "http_status_code": opt(&a.http_status_code),
                    "error": opt(&a.error),
                })
            });
            result
                .response
                .insert("attempt_log".to_owned(), Value::Array(log.collect()));
        }
        result
    }
}

fn invalid(error: &str, description: String) -> Outcome {
    failed(HttpStatus::Unknown, error, description, Vec::new())
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

pub(crate) fn failed(
    status: HttpStatus,
    error: &str,
    description: String,
    warnings: Vec<String>,
) -> Outcome {
    outcome(HttpOutputs::failure(status, error, description), warnings)
}

fn opt<T: Into<Value> + Clone>(value: &Option<T>) -> Value {
    value.clone().map_or(Value::Null, Into::into)
}

fn set_output(out: &mut Outcome, name: &str, value: Value) {
    if let Some((_, slot)) = out.outputs.iter_mut().find(|(n, _)| *n == name) {
        *slot = value;
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
            ("pages", Value::Null),
            ("status_code", Value::from(out.status.code())),
            ("error", opt(&out.error)),
            ("error_description", opt(&out.error_description)),
        ],
        error,
        warnings,
        response: Map::new(),
    }
}
