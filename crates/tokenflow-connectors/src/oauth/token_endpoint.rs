//! Requests to the token endpoint: the three grants tokenflow uses, and the classes of failure
//! that the connectors map to their own status codes.
//!
//! Failures are classified once, here, so that "transport failed", "provider said no" and "the
//! answer was unusable" never blur (oauth2-rs draws the same lines). 5xx answers count as
//! connection problems with the OAuth server, whatever their body says.

use time::OffsetDateTime;
use tokenflow_core::{BasicAuthEncoding, OAuthServer, SecretString, TokenEndpointAuthMethod};
use url::{Url, form_urlencoded};

use super::client_auth::{
    JWT_BEARER_ASSERTION_TYPE, RAW_ENCODING_HINT, basic_authorization, client_assertion,
    encoding_changes,
};
use super::token_response::{
    ProviderError, ResponseProblem, TokenResponse, parse_token_response_with,
};
use crate::http::{MAX_RESPONSE_BYTES, ReadBodyError, error_chain, read_body_limited};

/// The `grant_type` of the device authorization grant (RFC 8628 §3.4).
pub const DEVICE_CODE_GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// The grant being requested (RFC 6749 §4.1.3, §4.4.2, §6).
#[derive(Debug)]
pub enum Grant<'a> {
    ClientCredentials {
        scope: &'a str,
        /// RFC 8707 resource indicators, separated by white space (empty: none).
        resource: &'a str,
    },
    AuthorizationCode {
        code: &'a SecretString,
        redirect_uri: &'a str,
        code_verifier: Option<&'a SecretString>,
        /// RFC 8707 resource indicators, separated by white space (empty: none).
        resource: &'a str,
    },
    RefreshToken {
        refresh_token: &'a SecretString,
        /// RFC 8707 resource indicators, separated by white space (empty: none).
        resource: &'a str,
    },
    /// A grant of another type with its own parameters, in order (token exchange, RFC 8693 §2.1;
    /// the JWT bearer grant, RFC 7523 §2.1, and Entra's on-behalf-of). Every value is treated as
    /// a secret: the body is never logged.
    Extension {
        grant_type: &'static str,
        params: &'a [(&'static str, SecretString)],
    },
    /// RFC 8628 §3.4.
    DeviceCode { device_code: &'a SecretString },
}

impl Grant<'_> {
    /// The `grant_type` parameter.
    pub fn grant_type(&self) -> &'static str {
        match self {
            Grant::ClientCredentials { .. } => "client_credentials",
            Grant::AuthorizationCode { .. } => "authorization_code",
            Grant::RefreshToken { .. } => "refresh_token",
            Grant::Extension { grant_type, .. } => grant_type,
            Grant::DeviceCode { .. } => DEVICE_CODE_GRANT_TYPE,
        }
    }
}

/// Why no token came back.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The request did not complete: connection refused, DNS, TLS, timeout, reset.
    #[error("could not reach the token endpoint: {detail}")]
    Transport { timed_out: bool, detail: String },
    /// The provider answered with an RFC 6749 §5.2 error.
    #[error("the token endpoint answered HTTP {status} with error `{}`", .error.error)]
    Provider { status: u16, error: ProviderError },
    /// The provider answered, but with nothing usable.
    #[error("the token endpoint answered HTTP {status}: {reason}")]
    Unusable { status: u16, reason: String },
    /// The client assertion could not be built; nothing was sent.
    #[error("could not build the client assertion: {0}")]
    ClientAssertion(#[from] super::client_auth::AssertionError),
}

impl TokenError {
    /// Transport failures and 5xx answers: the OAuth server itself is not working.
    pub fn is_connection_problem(&self) -> bool {
        match self {
            TokenError::Transport { .. } => true,
            TokenError::Provider { status, .. } | TokenError::Unusable { status, .. } => {
                *status >= 500
            }
            TokenError::ClientAssertion(_) => false,
        }
    }

    /// The `error` output: the provider's code, or tokenflow's own.
    pub fn error_code(&self) -> String {
        match self {
            TokenError::Transport {
                timed_out: true, ..
            } => "timeout".to_owned(),
            TokenError::Transport { .. } => "connection_error".to_owned(),
            TokenError::Provider { error, .. } => error.error.clone(),
            TokenError::Unusable { status, .. } if *status >= 500 => "server_error".to_owned(),
            TokenError::Unusable { .. } => "invalid_response".to_owned(),
            TokenError::ClientAssertion(_) => "client_assertion_failed".to_owned(),
        }
    }

    /// The `error_description` output.
    pub fn description(&self) -> String {
        match self {
            TokenError::Provider { error, status } => error
                .error_description
                .clone()
                .unwrap_or_else(|| format!("HTTP {status} from the token endpoint")),
            other => other.to_string(),
        }
    }
}

/// Posts one grant to `token_url` with the server's client authentication and extra parameters;
/// `now` dates a client assertion.
pub async fn request_token(
    http: &reqwest::Client,
    server: &OAuthServer,
    token_url: &Url,
    grant: &Grant<'_>,
    now: OffsetDateTime,
) -> Result<TokenResponse, TokenError> {
    let (body, authorization) = form_body(server, token_url, grant, now)?;
    let response = post_form(http, server, token_url, &body, authorization.as_ref()).await?;
    let (status, content_type, bytes) = read_answer(response).await?;
    parse_token_response_with(status, content_type.as_deref(), &bytes, &server.quirks)
        .map_err(|problem| match problem {
            ResponseProblem::Provider(error) => TokenError::Provider { status, error },
            ResponseProblem::Unusable(reason) => TokenError::Unusable { status, reason },
        })
        .map_err(|err| with_basic_encoding_hint(err, server))
}

/// A refused Basic authentication (401, or `invalid_client`) of a server whose id or secret the
/// RFC 6749 §2.3.1 encoding changes: say that the provider may not decode them. Providers that
/// compare the credentials as sent (some do) fail exactly this way.
pub(super) fn with_basic_encoding_hint(err: TokenError, server: &OAuthServer) -> TokenError {
    let basic_form_encoded = server.token_endpoint_auth_method
        == TokenEndpointAuthMethod::ClientSecretBasic
        && server.basic_auth_encoding == BasicAuthEncoding::FormUrlencoded;
    let applies = |status: u16, code: Option<&str>| {
        basic_form_encoded
            && (status == 401 || code == Some("invalid_client"))
            && server
                .client_secret
                .as_ref()
                .is_some_and(|secret| encoding_changes(&server.client_id, secret))
    };
    match err {
        TokenError::Provider { status, mut error } if applies(status, Some(&error.error)) => {
            let said = error
                .error_description
                .take()
                .unwrap_or_else(|| format!("HTTP {status} from the token endpoint"));
            error.error_description = Some(format!("{said}; {RAW_ENCODING_HINT}"));
            TokenError::Provider { status, error }
        }
        TokenError::Unusable { status, reason } if applies(status, None) => TokenError::Unusable {
            status,
            reason: format!("{reason}; {RAW_ENCODING_HINT}"),
        },
        other => other,
    }
}

/// The form body of a token request and, for `client_secret_basic`, the `Authorization` value.
/// Built in a plain function so the (non-`Send`) form serializer never lives across an `.await`.
fn form_body(
    server: &OAuthServer,
    token_url: &Url,
    grant: &Grant<'_>,
    now: OffsetDateTime,
) -> Result<(SecretString, Option<SecretString>), TokenError> {
    let mut form = form_urlencoded::Serializer::new(String::new());
    form.append_pair("grant_type", grant.grant_type());
    match grant {
        Grant::ClientCredentials { scope, resource } => {
            if !scope.is_empty() {
                form.append_pair("scope", &server.quirks.scope_separator.join(scope));
            }
            append_resources(&mut form, resource);
        }
        Grant::AuthorizationCode {
            code,
            redirect_uri,
            code_verifier,
            resource,
        } => {
            form.append_pair("code", code.expose());
            form.append_pair("redirect_uri", redirect_uri);
            if let Some(verifier) = code_verifier {
                form.append_pair("code_verifier", verifier.expose());
            }
            append_resources(&mut form, resource);
        }
        Grant::RefreshToken {
            refresh_token,
            resource,
        } => {
            form.append_pair("refresh_token", refresh_token.expose());
            append_resources(&mut form, resource);
        }
        Grant::Extension { params, .. } => {
            for (name, value) in *params {
                form.append_pair(name, value.expose());
            }
        }
        Grant::DeviceCode { device_code } => {
            form.append_pair("device_code", device_code.expose());
        }
    }
    for (key, value) in &server.extra_token_params {
        form.append_pair(key, value);
    }
    let authorization = authenticate_client(&mut form, server, token_url, now)?;
    Ok((SecretString::new(form.finish()), authorization))
}

/// One `resource` parameter per white-space separated value (RFC 8707 §2: the parameter may be
/// repeated for several resources).
fn append_resources(form: &mut form_urlencoded::Serializer<'_, String>, resource: &str) {
    for value in resource.split_whitespace() {
        form.append_pair("resource", value);
    }
}

/// Adds the server's client authentication (docs/connectors.md, "Client authentication") to
/// `form` and returns the `Authorization` value for `client_secret_basic`. A client assertion's
/// `aud` is `audience`. Used for the token endpoint and the revocation endpoint alike.
pub(super) fn authenticate_client(
    form: &mut form_urlencoded::Serializer<'_, String>,
    server: &OAuthServer,
    audience: &Url,
    now: OffsetDateTime,
) -> Result<Option<SecretString>, super::client_auth::AssertionError> {
    let mut authorization = None;
    match (&server.client_secret, server.token_endpoint_auth_method) {
        (_, TokenEndpointAuthMethod::ClientSecretJwt | TokenEndpointAuthMethod::PrivateKeyJwt) => {
            // RFC 7523 §3.2 makes `client_id` optional; Entra ID requires it.
            let assertion = client_assertion(server, audience, now)?;
            form.append_pair("client_id", &server.client_id);
            form.append_pair("client_assertion_type", JWT_BEARER_ASSERTION_TYPE);
            form.append_pair("client_assertion", assertion.expose());
        }
        (Some(secret), TokenEndpointAuthMethod::ClientSecretBasic) => {
            authorization = Some(basic_authorization(
                &server.client_id,
                secret,
                server.basic_auth_encoding,
            ));
        }
        (Some(secret), TokenEndpointAuthMethod::ClientSecretPost) => {
            form.append_pair("client_id", &server.client_id);
            form.append_pair("client_secret", secret.expose());
        }
        // A public client identifies itself in the body (RFC 6749 §3.2.1).
        _ => {
            form.append_pair("client_id", &server.client_id);
        }
    }
    Ok(authorization)
}

/// POSTs a form body (it may hold secrets) to one of the server's endpoints with its timeout,
/// asking for JSON, with the client's `Authorization` header when its authentication uses one:
/// the one request shape of the token and revocation endpoints.
pub(super) async fn post_form(
    http: &reqwest::Client,
    server: &OAuthServer,
    url: &Url,
    body: &SecretString,
    authorization: Option<&SecretString>,
) -> Result<reqwest::Response, TokenError> {
    let mut request = http
        .post(url.clone())
        .timeout(server.timeout)
        .header(reqwest::header::ACCEPT, "application/json");
    if let Some(header) = authorization {
        request = request.header(reqwest::header::AUTHORIZATION, header.expose());
    }
    request
        .header(
            reqwest::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .body(body.expose().to_owned())
        .send()
        .await
        .map_err(transport_error)
}

/// The status, `Content-Type` and body (at most [`MAX_RESPONSE_BYTES`]) of an answer.
pub(super) async fn read_answer(
    response: reqwest::Response,
) -> Result<(u16, Option<String>, Vec<u8>), TokenError> {
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    match read_body_limited(response, MAX_RESPONSE_BYTES).await {
        Ok(bytes) => Ok((status, content_type, bytes)),
        Err(ReadBodyError::TooLarge { limit }) => Err(TokenError::Unusable {
            status,
            reason: format!("the response body is larger than {limit} bytes"),
        }),
        Err(ReadBodyError::Transport(err)) => Err(transport_error(err)),
    }
}

pub(super) fn transport_error(err: reqwest::Error) -> TokenError {
    TokenError::Transport {
        timed_out: err.is_timeout(),
        // reqwest's messages name the URL (never secret) and the cause; never the body.
        detail: error_chain(&err),
    }
}
