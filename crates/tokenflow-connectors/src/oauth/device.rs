//! `oauth_device_login`: the device authorization grant (RFC 8628).
//!
//! The first half posts to the device authorization endpoint (§3.1) with the server's client
//! authentication — the token endpoint's form POST, so every `token_endpoint_auth_method`
//! applies — and returns what the person needs (`user_code`, `verification_uri`) together with
//! the secret `device_code`. The second half is one poll of the token endpoint (§3.4); the caller
//! keeps the device code (encrypted) and decides when to poll again: `authorization_pending` waits
//! another `interval`, `slow_down` adds 5 s to it (§3.5), a connection problem doubles it (§3.5:
//! "SHOULD increase its polling interval using exponential backoff"), and the login ends on a
//! token, `access_denied` (-2) or `expired_token` (-4).

use std::time::Duration;

use serde_json::{Map, Value};
use time::OffsetDateTime;
use tokenflow_core::{Input, OAuthServer, SecretString};
use url::{Url, form_urlencoded};

use super::connectors::OAuthConnectors;
use super::discovery::resolve_device_endpoints;
use super::id_token::{Expected, check_id_token};
use super::outputs::TokenOutputs;
use super::token_endpoint::{
    Grant, TokenError, authenticate_client, post_form, read_answer, with_basic_encoding_hint,
};
use super::token_response::{ResponseProblem, parse_token_response};
use crate::http::json_problem;
use crate::status::DeviceLoginStatus;

/// The polling interval when the provider gives none (RFC 8628 §3.2).
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(5);
/// What `slow_down` adds to the interval (RFC 8628 §3.5).
pub const SLOW_DOWN_STEP: Duration = Duration::from_secs(5);
/// The longest interval tokenflow waits between two polls, whatever the provider asks for or
/// backing off after connection problems adds up to.
pub const MAX_INTERVAL: Duration = Duration::from_secs(300);
/// The longest a device code is waited for, whatever its `expires_in` says (docs/connectors.md).
pub const MAX_DEVICE_CODE_LIFETIME: Duration = Duration::from_secs(3600);
/// The longest one poll of the token endpoint may take (the server's `timeout`, at most this):
/// a poll holds a claim in the store (the runtime's device poller), which must outlive it.
pub const MAX_POLL_TIMEOUT: Duration = Duration::from_secs(30);
/// The longest `user_code` accepted: it is shown on pages and printed.
const MAX_USER_CODE_LEN: usize = 64;

/// What the device authorization endpoint answered (RFC 8628 §3.2).
#[derive(Debug, Clone)]
pub struct DeviceAuthorization {
    /// Secret: whoever holds it (and the client's credentials) gets the tokens.
    pub device_code: SecretString,
    pub user_code: String,
    pub verification_uri: String,
    pub verification_uri_complete: Option<String>,
    /// When the device code expires (its `expires_in`, at most [`MAX_DEVICE_CODE_LIFETIME`]).
    pub expires_at: OffsetDateTime,
    /// How long to wait between polls.
    pub interval: Duration,
    /// The scope sent, for `granted_scopes` when the token response has none (RFC 6749 §5.1).
    pub requested_scope: String,
}

/// The outcome of one poll of the token endpoint.
#[derive(Debug)]
pub enum DevicePoll {
    /// `authorization_pending`: poll again after the interval.
    Pending,
    /// `slow_down`: poll again after the interval increased by [`SLOW_DOWN_STEP`].
    SlowDown,
    /// The token endpoint could not be reached or answered 5xx: poll again after twice the
    /// interval; the device code's expiry still ends the login.
    Unreachable(String),
    /// The login ended, with these outputs.
    Done(Box<TokenOutputs<DeviceLoginStatus>>),
}

/// The interval after a poll's outcome, within [1 s, [`MAX_INTERVAL`]].
pub fn next_interval(current: Duration, poll: &DevicePoll) -> Duration {
    let next = match poll {
        DevicePoll::SlowDown => current + SLOW_DOWN_STEP,
        DevicePoll::Unreachable(_) => current * 2,
        DevicePoll::Pending | DevicePoll::Done(_) => current,
    };
    next.clamp(Duration::from_secs(1), MAX_INTERVAL)
}

impl OAuthConnectors {
    /// `oauth_device_login`, first half: the device authorization request (RFC 8628 §3.1).
    pub async fn start_device_login(
        &self,
        server_id: &str,
        server: Option<&OAuthServer>,
        scope: &Input<String>,
    ) -> Result<DeviceAuthorization, TokenOutputs<DeviceLoginStatus>> {
        use DeviceLoginStatus as S;
        let Some(server) = server else {
            return Err(TokenOutputs::failure(
                S::Unknown,
                "no_configuration",
                format!("OAuth server `{server_id}` is not configured"),
            ));
        };
        let server = resolve_device_endpoints(self.tls(), server)
            .await
            .map_err(|err| {
                let status = match &err {
                    super::discovery::DiscoveryError::Transport { .. } => S::ConnectionError,
                    super::discovery::DiscoveryError::Status { status, .. } if *status >= 500 => {
                        S::ConnectionError
                    }
                    _ => S::Unknown,
                };
                TokenOutputs::failure(status, "discovery_failed", err.to_string())
            })?;
        let missing = |field: &str| {
            TokenOutputs::failure(
                S::Unknown,
                "no_configuration",
                format!("OAuth server `{}` has no `{field}`", server.id),
            )
        };
        let Some(device_url) = server.device_authorization_url.as_ref() else {
            return Err(missing("device_authorization_url"));
        };
        if server.token_url.is_none() {
            return Err(missing("token_url"));
        }
        let requested_scope = tokenflow_core::oauth_server::normalize_scope(
            scope.or_fallback(server.scope.as_deref()),
        );
        // A client assertion's `aud` is the token endpoint, as at the revocation endpoint.
        let audience = server.token_url.as_ref().unwrap_or(device_url);
        let now = self.clock().now();
        // The token endpoint's client: its client certificate (`tls_client_auth`) and `tls_ca`.
        let http = self.http_for(&server).map_err(|err| {
            TokenOutputs::failure(S::Unknown, "invalid_client_certificate", err.to_string())
        })?;
        let answer = request_device_authorization(
            &http,
            &server,
            device_url,
            audience,
            &requested_scope,
            now,
        )
        .await;
        match answer {
            Ok(mut authorization) => {
                authorization.requested_scope = requested_scope;
                Ok(authorization)
            }
            Err(err) => {
                let status = if err.is_connection_problem() {
                    S::ConnectionError
                } else {
                    S::Unknown
                };
                Err(TokenOutputs::from_token_error(status, &err))
            }
        }
    }

    /// `oauth_device_login`, second half: one poll of the token endpoint (RFC 8628 §3.4).
    /// `server` is looked up again for every poll: its configuration may have changed.
    pub async fn poll_device_login(
        &self,
        server_id: &str,
        server: Option<&OAuthServer>,
        device_code: &SecretString,
        requested_scope: &str,
    ) -> DevicePoll {
        use DeviceLoginStatus as S;
        let Some(server) = server else {
            return DevicePoll::Done(Box::new(TokenOutputs::failure(
                S::Unknown,
                "no_configuration",
                format!("OAuth server `{server_id}` is not configured"),
            )));
        };
        let mut server = match self.endpoints(server).await {
            Ok(server) => server,
            Err(err) => return DevicePoll::Unreachable(err.to_string()),
        };
        server.timeout = server.timeout.min(MAX_POLL_TIMEOUT);
        let Some(token_url) = server.token_url.as_ref() else {
            return DevicePoll::Done(Box::new(TokenOutputs::failure(
                S::Unknown,
                "no_configuration",
                format!("OAuth server `{}` has no `token_url`", server.id),
            )));
        };
        let response = match self
            .request(&server, token_url, &Grant::DeviceCode { device_code })
            .await
        {
            Ok(response) => response,
            Err(TokenError::Provider { error, .. }) if error.error == "authorization_pending" => {
                return DevicePoll::Pending;
            }
            Err(TokenError::Provider { error, .. }) if error.error == "slow_down" => {
                return DevicePoll::SlowDown;
            }
            Err(err) if err.is_connection_problem() => {
                return DevicePoll::Unreachable(err.to_string());
            }
            Err(err) => {
                let status = match err.error_code().as_str() {
                    "access_denied" => S::Denied,
                    "expired_token" => S::Expired,
                    _ => S::Unknown,
                };
                return DevicePoll::Done(Box::new(TokenOutputs::from_token_error(status, &err)));
            }
        };
        if !response.is_bearer() {
            return DevicePoll::Done(Box::new(TokenOutputs::failure(
                S::UnsupportedTokenType,
                "unsupported_token_type",
                format!(
                    "the token type is `{}`; only bearer tokens are supported",
                    response.token_type.as_deref().unwrap_or("")
                ),
            )));
        }
        if let Some(id_token) = &response.id_token {
            let expected = Expected {
                nonce: None,
                client_id: &server.client_id,
                issuer: server.issuer.as_ref().map(Url::as_str),
                now: self.clock().now(),
            };
            if let Err(err) = check_id_token(id_token, &expected) {
                return DevicePoll::Done(Box::new(TokenOutputs::failure(
                    S::Unknown,
                    "invalid_id_token",
                    err.to_string(),
                )));
            }
        }
        let mut outputs = TokenOutputs::success(S::Successful, response);
        if outputs.granted_scopes.is_none() {
            outputs.granted_scopes = Some(requested_scope.to_owned());
        }
        DevicePoll::Done(Box::new(outputs))
    }

    /// `oauth_device_login` whose device code expired before the person answered.
    pub fn expire_device_login(&self) -> TokenOutputs<DeviceLoginStatus> {
        TokenOutputs::failure(
            DeviceLoginStatus::Expired,
            "expired_token",
            "the device code expired before the user completed the sign-in",
        )
    }
}

/// Posts the device authorization request (RFC 8628 §3.1) and reads its answer (§3.2).
pub async fn request_device_authorization(
    http: &reqwest::Client,
    server: &OAuthServer,
    device_url: &Url,
    audience: &Url,
    scope: &str,
    now: OffsetDateTime,
) -> Result<DeviceAuthorization, TokenError> {
    let (body, authorization) = form_body(server, audience, scope, now)?;
    let response = post_form(http, server, device_url, &body, authorization.as_ref()).await?;
    let (status, content_type, bytes) = read_answer(response).await?;
    if status != 200 {
        // RFC 8628 §3.2: errors are those of the token endpoint (RFC 6749 §5.2).
        let err = match parse_token_response(status, content_type.as_deref(), &bytes) {
            Err(ResponseProblem::Provider(error)) => TokenError::Provider { status, error },
            Err(ResponseProblem::Unusable(reason)) => TokenError::Unusable { status, reason },
            Ok(_) => TokenError::Unusable {
                status,
                reason: "an error status with a token response".to_owned(),
            },
        };
        return Err(with_basic_encoding_hint(err, server));
    }
    parse_device_authorization(&bytes, now)
        .map_err(|reason| TokenError::Unusable { status, reason })
}

/// The form body and, for `client_secret_basic`, the `Authorization` value. A plain function so
/// the (non-`Send`) form serializer never lives across an `.await`.
fn form_body(
    server: &OAuthServer,
    audience: &Url,
    scope: &str,
    now: OffsetDateTime,
) -> Result<(SecretString, Option<SecretString>), TokenError> {
    let mut form = form_urlencoded::Serializer::new(String::new());
    if !scope.is_empty() {
        form.append_pair("scope", scope);
    }
    let authorization = authenticate_client(&mut form, server, audience, now)?;
    Ok((SecretString::new(form.finish()), authorization))
}

/// Reads a device authorization response (RFC 8628 §3.2). `verification_url` (an older draft's
/// name, still used by some providers) is accepted for `verification_uri`; numbers written as
/// strings are accepted. The URIs must be `http(s)`: they become links on tokenflow's pages.
pub fn parse_device_authorization(
    body: &[u8],
    now: OffsetDateTime,
) -> Result<DeviceAuthorization, String> {
    let members: Map<String, Value> = serde_json::from_slice(body).map_err(|err| {
        format!(
            "the device authorization response is not a JSON object ({})",
            json_problem(&err)
        )
    })?;
    let text = |name: &str| match members.get(name) {
        Some(Value::String(text)) if !text.is_empty() => Some(text.clone()),
        _ => None,
    };
    let number = |name: &str| match members.get(name) {
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::String(s)) => s.trim().parse().ok(),
        _ => None,
    };
    let device_code = text("device_code").ok_or("the response has no `device_code`")?;
    let user_code = text("user_code").ok_or("the response has no `user_code`")?;
    if user_code.len() > MAX_USER_CODE_LEN || user_code.chars().any(char::is_control) {
        return Err(format!(
            "the response's `user_code` is longer than {MAX_USER_CODE_LEN} characters or holds control characters"
        ));
    }
    let verification_uri = text("verification_uri")
        .or_else(|| text("verification_url"))
        .ok_or("the response has no `verification_uri`")?;
    let web_uri = |uri: &str, name: &str| match Url::parse(uri) {
        Ok(url) if matches!(url.scheme(), "http" | "https") => Ok(()),
        _ => Err(format!("the response's `{name}` is not an http(s) URL")),
    };
    web_uri(&verification_uri, "verification_uri")?;
    let verification_uri_complete = text("verification_uri_complete");
    if let Some(uri) = &verification_uri_complete {
        web_uri(uri, "verification_uri_complete")?;
    }
    let expires_in = number("expires_in").ok_or("the response has no `expires_in`")?;
    let lifetime = Duration::from_secs(expires_in).min(MAX_DEVICE_CODE_LIFETIME);
    let interval = number("interval")
        .map_or(DEFAULT_INTERVAL, Duration::from_secs)
        .clamp(Duration::from_secs(1), MAX_INTERVAL);
    Ok(DeviceAuthorization {
        device_code: SecretString::new(device_code),
        user_code,
        verification_uri,
        verification_uri_complete,
        expires_at: now + time::Duration::try_from(lifetime).unwrap_or(time::Duration::ZERO),
        interval,
        requested_scope: String::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: OffsetDateTime = time::macros::datetime!(2026-01-01 00:00 UTC);

    #[test]
    fn the_interval_defaults_to_five_seconds_and_expiry_is_capped() {
        let parsed = parse_device_authorization(
            br#"{"device_code":"d","user_code":"ABCD-EFGH","verification_uri":"https://idp.example/device","expires_in":"86400"}"#,
            NOW,
        )
        .unwrap();
        assert_eq!(parsed.interval, DEFAULT_INTERVAL);
        assert_eq!(parsed.expires_at, NOW + time::Duration::hours(1));
        assert_eq!(parsed.verification_uri_complete, None);
        assert_eq!(format!("{:?}", parsed.device_code), "[redacted]");
    }

    #[test]
    fn a_body_that_is_not_an_object_is_refused_without_repeating_it() {
        // Found by the fuzz tests: serde's message quoted the whole string.
        let err = parse_device_authorization(br#""dc-0123456789abcdef""#, NOW).unwrap_err();
        assert!(!err.contains("dc-0123456789abcdef"), "{err}");
        assert!(err.contains("expected a map"), "{err}");
    }

    #[test]
    fn a_verification_uri_that_is_not_a_web_address_is_refused() {
        let err = parse_device_authorization(
            br#"{"device_code":"d","user_code":"A","verification_uri":"javascript:alert(1)","expires_in":600}"#,
            NOW,
        )
        .unwrap_err();
        assert!(err.contains("verification_uri"), "{err}");
        assert!(
            parse_device_authorization(
                br#"{"device_code":"d","user_code":"A","verification_url":"https://microsoft.com/devicelogin","expires_in":600,"interval":1}"#,
                NOW,
            )
            .is_ok()
        );
    }

    #[test]
    fn slow_down_adds_five_seconds_and_connection_problems_double_the_interval() {
        let five = Duration::from_secs(5);
        assert_eq!(
            next_interval(five, &DevicePoll::SlowDown),
            Duration::from_secs(10)
        );
        assert_eq!(next_interval(five, &DevicePoll::Pending), five);
        assert_eq!(
            next_interval(five, &DevicePoll::Unreachable(String::new())),
            Duration::from_secs(10)
        );
        assert_eq!(
            next_interval(MAX_INTERVAL, &DevicePoll::SlowDown),
            MAX_INTERVAL
        );
    }
}
