//! `oauth_token_exchange`: a token for a token (docs/connectors.md, "`oauth_token_exchange`").
//!
//! Three modes, each one request to the token endpoint with the server's client authentication:
//!
//! - `token_exchange`: RFC 8693 §2.1 (`grant_type=urn:ietf:params:oauth:grant-type:token-exchange`,
//!   `subject_token`, `subject_token_type`, optional actor, `audience`, `resource`, `scope`,
//!   `requested_token_type`).
//! - `on_behalf_of`: Microsoft Entra's on-behalf-of flow, the JWT bearer grant with the token the
//!   calling API received as `assertion` and `requested_token_use=on_behalf_of`
//!   (<https://learn.microsoft.com/en-us/entra/identity-platform/v2-oauth2-on-behalf-of-flow>).
//! - `jwt_bearer`: RFC 7523 §2.1 with an `assertion` given as input, or one tokenflow builds and
//!   signs from the server's `service_account_key` the way Google documents for service accounts
//!   (<https://developers.google.com/identity/protocols/oauth2/service-account#httprest>):
//!   `iss` = `sub` = `client_email`, `aud` = the key's `token_uri`, `scope`, `iat`, `exp` one hour
//!   later, RS256 with `kid` = `private_key_id`.
//!
//! Checks run server, then mode, then inputs, then endpoints: a call that is wrong in several
//! ways gets the first code.

use serde::Serialize;
use tokenflow_core::{Input, OAuthServer, SecretString, ServiceAccountKey};
use url::Url;

use super::connectors::{OAuthConnectors, missing_field, unknown_server, unsupported_type};
use super::outputs::TokenOutputs;
use super::token_endpoint::Grant;
use crate::status::TokenExchangeStatus as S;

/// `grant_type` of RFC 8693 §2.1.
pub const TOKEN_EXCHANGE_GRANT: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
/// `grant_type` of RFC 7523 §2.1 (also Entra's on-behalf-of).
pub const JWT_BEARER_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// RFC 8693 §3: the token type of an OAuth access token, the default `subject_token_type`.
pub const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";
/// The longest lifetime of a signed service-account assertion (Google: at most one hour).
pub const SERVICE_ACCOUNT_ASSERTION_LIFETIME: time::Duration = time::Duration::hours(1);

/// The action's inputs as the flow assigned them.
#[derive(Debug, Clone, Default)]
pub struct TokenExchangeInput {
    pub mode: Input<String>,
    pub subject_token: Input<SecretString>,
    pub subject_token_type: Input<String>,
    pub actor_token: Input<SecretString>,
    pub actor_token_type: Input<String>,
    pub audience: Input<String>,
    pub resource: Input<String>,
    pub scope: Input<String>,
    pub requested_token_type: Input<String>,
    pub assertion: Input<SecretString>,
}

/// The `mode` input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    TokenExchange,
    OnBehalfOf,
    JwtBearer,
}

impl Mode {
    /// Unassigned or empty is `token_exchange`.
    pub fn parse(input: &Input<String>) -> Result<Mode, String> {
        match input.assigned().map(|mode| mode.trim()).unwrap_or("") {
            "" | "token_exchange" => Ok(Mode::TokenExchange),
            "on_behalf_of" => Ok(Mode::OnBehalfOf),
            "jwt_bearer" => Ok(Mode::JwtBearer),
            other => Err(format!(
                "`mode` must be `token_exchange`, `on_behalf_of` or `jwt_bearer`, not `{other}`"
            )),
        }
    }
}

/// The claims of a service-account assertion (RFC 7523 §3, Google's claim set).
#[derive(Debug, Serialize)]
struct ServiceAccountClaims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    scope: &'a str,
    iat: i64,
    exp: i64,
}

fn text(input: &Input<String>) -> Option<&str> {
    input
        .assigned()
        .map(|value| value.trim())
        .filter(|value| !value.is_empty())
}

fn secret(input: &Input<SecretString>) -> Option<&SecretString> {
    input.assigned().filter(|value| !value.is_empty())
}

fn missing(description: &str) -> TokenOutputs<S> {
    TokenOutputs::failure(S::InputMissing, "input_missing", description)
}

/// Appends `name=value` for every white-space separated value (RFC 8693 §2.1 and RFC 8707 §2
/// allow several `audience` and `resource` parameters).
fn push_each(params: &mut Vec<(&'static str, SecretString)>, name: &'static str, value: &str) {
    for item in value.split_whitespace() {
        params.push((name, SecretString::new(item)));
    }
}

impl OAuthConnectors {
    /// `oauth_token_exchange` (docs/connectors.md).
    pub async fn token_exchange(
        &self,
        server_id: &str,
        server: Option<&OAuthServer>,
        input: &TokenExchangeInput,
    ) -> TokenOutputs<S> {
        let Some(server) = server else {
            return unknown_server(S::NoServer, server_id);
        };
        let mode = match Mode::parse(&input.mode) {
            Ok(mode) => mode,
            Err(description) => {
                return TokenOutputs::failure(S::Unknown, "invalid_mode", description);
            }
        };
        let scope = tokenflow_core::oauth_server::normalize_scope(
            input.scope.or_fallback(server.scope.as_deref()),
        );
        let mut params: Vec<(&'static str, SecretString)> = Vec::new();
        let mut sa_key = None;
        match mode {
            Mode::TokenExchange => {
                let Some(subject_token) = secret(&input.subject_token) else {
                    return missing("`subject_token` is empty");
                };
                params.push(("subject_token", subject_token.clone()));
                let subject_type = text(&input.subject_token_type).unwrap_or(ACCESS_TOKEN_TYPE);
                params.push(("subject_token_type", SecretString::new(subject_type)));
                if let Some(actor_token) = secret(&input.actor_token) {
                    // RFC 8693 §2.1: actor_token_type is REQUIRED when actor_token is present.
                    let Some(actor_type) = text(&input.actor_token_type) else {
                        return missing("`actor_token` is given but `actor_token_type` is empty");
                    };
                    params.push(("actor_token", actor_token.clone()));
                    params.push(("actor_token_type", SecretString::new(actor_type)));
                }
                if let Some(audience) = text(&input.audience) {
                    push_each(&mut params, "audience", audience);
                }
                if let Some(requested) = text(&input.requested_token_type) {
                    params.push(("requested_token_type", SecretString::new(requested)));
                }
                if !scope.is_empty() {
                    params.push(("scope", SecretString::new(scope.clone())));
                }
            }
            Mode::OnBehalfOf => {
                let Some(assertion) = secret(&input.assertion).or(secret(&input.subject_token))
                else {
                    return missing("`subject_token` (or `assertion`) is empty");
                };
                if scope.is_empty() {
                    return missing(
                        "the scope is empty: on-behalf-of needs `scope` (or the OAuth server's `scope`)",
                    );
                }
                params.push(("assertion", assertion.clone()));
                params.push(("requested_token_use", SecretString::new("on_behalf_of")));
                params.push(("scope", SecretString::new(scope.clone())));
            }
            Mode::JwtBearer => match (secret(&input.assertion), &server.service_account_key) {
                (Some(assertion), _) => {
                    params.push(("assertion", assertion.clone()));
                    if !scope.is_empty() {
                        params.push(("scope", SecretString::new(scope.clone())));
                    }
                }
                (None, Some(key)) => sa_key = Some(key),
                (None, None) => {
                    return missing(
                        "`assertion` is empty and the OAuth server has no `service_account_key`",
                    );
                }
            },
        }
        if let Some(resource) = text(&input.resource) {
            push_each(&mut params, "resource", resource);
        }
        let resolved = match self.endpoints(server).await {
            Ok(server) => server,
            Err(err) => {
                return TokenOutputs::failure(S::Unknown, "discovery_failed", err.to_string());
            }
        };
        let token_url = resolved
            .token_url
            .clone()
            .or_else(|| sa_key.and_then(|key| key.token_uri().cloned()));
        let Some(token_url) = token_url else {
            return missing_field(S::NoServer, &resolved, "token_url");
        };
        let grant_type = match mode {
            Mode::TokenExchange => TOKEN_EXCHANGE_GRANT,
            Mode::OnBehalfOf | Mode::JwtBearer => JWT_BEARER_GRANT,
        };
        if let Some(key) = sa_key {
            let assertion = match self.service_account_assertion(key, &token_url, &scope) {
                Ok(assertion) => assertion,
                Err(description) => {
                    return TokenOutputs::failure(S::Unknown, "assertion_failed", description);
                }
            };
            // Google's request carries only grant_type and assertion: the scope is a claim.
            params.insert(0, ("assertion", assertion));
        }
        let grant = Grant::Extension {
            grant_type,
            params: &params,
        };
        match self.request(&resolved, &token_url, &grant).await {
            Ok(response) if !response.is_bearer() => {
                unsupported_type(S::UnsupportedTokenType, &response.token_type)
            }
            Ok(response) => TokenOutputs::success(S::Successful, response),
            Err(err) => TokenOutputs::from_token_error(S::Unknown, &err),
        }
    }

    /// The signed assertion of a service account for `token_url` (its `aud` is the key's own
    /// `token_uri` when it names one).
    fn service_account_assertion(
        &self,
        key: &ServiceAccountKey,
        token_url: &Url,
        scope: &str,
    ) -> Result<SecretString, String> {
        let iat = self.now().unix_timestamp();
        let aud = key.token_uri().unwrap_or(token_url);
        let claims = ServiceAccountClaims {
            iss: key.client_email(),
            sub: key.client_email(),
            aud: aud.as_str(),
            scope,
            iat,
            exp: iat + SERVICE_ACCOUNT_ASSERTION_LIFETIME.whole_seconds(),
        };
        key.key()
            .sign(&claims)
            .map_err(|err| format!("signing the service account assertion failed ({err})"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mode_defaults_to_token_exchange_and_refuses_others() {
        assert_eq!(Mode::parse(&Input::Unassigned), Ok(Mode::TokenExchange));
        assert_eq!(
            Mode::parse(&Input::Assigned(" on_behalf_of ".into())),
            Ok(Mode::OnBehalfOf)
        );
        assert!(Mode::parse(&Input::Assigned("saml".into())).is_err());
    }
}
