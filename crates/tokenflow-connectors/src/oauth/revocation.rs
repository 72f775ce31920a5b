//! Token revocation (RFC 7009): `POST` of `token` and an optional `token_type_hint` to the
//! revocation endpoint, with the same client authentication as at the token endpoint.
//!
//! Failures use the token endpoint's classes ([`TokenError`]): transport, an RFC 6749 §5.2 error
//! body (RFC 7009 §2.2.1), or an answer without one. Any 2xx answer is a success whatever its
//! body: RFC 7009 §2.2 answers 200 also for a token the server does not know.

use time::OffsetDateTime;
use tokenflow_core::{OAuthServer, SecretString};
use url::{Url, form_urlencoded};

use super::token_endpoint::{
    TokenError, authenticate_client, post_form, transport_error, with_basic_encoding_hint,
};
use super::token_response::{ResponseProblem, parse_token_response};
use crate::http::{MAX_RESPONSE_BYTES, ReadBodyError, read_body_limited};

/// The `token_type_hint` values of RFC 7009 §2.1 that tokenflow sends.
pub const TOKEN_TYPE_HINTS: &[&str] = &["access_token", "refresh_token"];

/// Revokes `token` at `revocation_url`. A client assertion's `aud` is `audience` (the token
/// endpoint when known, as OpenID Connect Core §9 asks; else the revocation endpoint).
pub async fn revoke(
    http: &reqwest::Client,
    server: &OAuthServer,
    revocation_url: &Url,
    audience: &Url,
    token: &SecretString,
    token_type_hint: Option<&str>,
    now: OffsetDateTime,
) -> Result<(), TokenError> {
    let (body, authorization) = form_body(server, audience, token, token_type_hint, now)?;
    let response = post_form(http, server, revocation_url, &body, authorization.as_ref()).await?;
    let status = response.status().as_u16();
    if response.status().is_success() {
        return Ok(());
    }
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let bytes = match read_body_limited(response, MAX_RESPONSE_BYTES).await {
        Ok(bytes) => bytes,
        Err(ReadBodyError::TooLarge { limit }) => {
            return Err(TokenError::Unusable {
                status,
                reason: format!("the response body is larger than {limit} bytes"),
            });
        }
        Err(ReadBodyError::Transport(err)) => return Err(transport_error(err)),
    };
    // Not a 2xx: the body can only be an error (or nothing usable).
    let err = match parse_token_response(status, content_type.as_deref(), &bytes) {
        Err(ResponseProblem::Provider(error)) => TokenError::Provider { status, error },
        Err(ResponseProblem::Unusable(reason)) => TokenError::Unusable { status, reason },
        Ok(_) => TokenError::Unusable {
            status,
            reason: "an error status with a token response".to_owned(),
        },
    };
    Err(with_basic_encoding_hint(err, server))
}

/// The `error_description` output of a failed revocation, naming the revocation endpoint.
pub fn description(err: &TokenError) -> String {
    match err {
        TokenError::Provider { error, status } => error
            .error_description
            .clone()
            .unwrap_or_else(|| format!("HTTP {status} from the revocation endpoint")),
        TokenError::Transport { detail, .. } => {
            format!("could not reach the revocation endpoint: {detail}")
        }
        TokenError::Unusable { status, reason } => {
            format!("the revocation endpoint answered HTTP {status}: {reason}")
        }
        TokenError::ClientAssertion(_) => err.to_string(),
    }
}

/// The form body and, for `client_secret_basic`, the `Authorization` value. A plain function so
/// the (non-`Send`) form serializer never lives across an `.await`.
fn form_body(
    server: &OAuthServer,
    audience: &Url,
    token: &SecretString,
    token_type_hint: Option<&str>,
    now: OffsetDateTime,
) -> Result<(SecretString, Option<SecretString>), TokenError> {
    let mut form = form_urlencoded::Serializer::new(String::new());
    form.append_pair("token", token.expose());
    if let Some(hint) = token_type_hint {
        form.append_pair("token_type_hint", hint);
    }
    let authorization = authenticate_client(&mut form, server, audience, now)?;
    Ok((SecretString::new(form.finish()), authorization))
}
