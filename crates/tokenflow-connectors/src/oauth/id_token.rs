//! Checks of an ID token that came straight from the token endpoint.
//!
//! OIDC Core §3.1.3.7 lets a client that received the ID token by direct TLS communication with the
//! token endpoint rely on that channel instead of the signature; tokenflow does exactly that and
//! checks the claims that bind the token to *this* login: `nonce` (the replay defence of §3.1.2.1),
//! `aud`, `iss` and `exp`. It does not consume the claims otherwise.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use time::OffsetDateTime;
use tokenflow_core::SecretString;

use super::discovery::issuer_matches;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IdTokenError {
    #[error("the ID token is not a JWT")]
    Malformed,
    #[error("the ID token's nonce does not match the one sent")]
    NonceMismatch,
    #[error("the ID token is not issued to this client")]
    WrongAudience,
    #[error("the ID token's issuer does not match the OAuth server's issuer")]
    WrongIssuer,
    #[error("the ID token has expired")]
    Expired,
}

#[derive(Deserialize)]
struct Claims {
    iss: Option<String>,
    aud: Option<Audience>,
    exp: Option<i64>,
    nonce: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

/// What the ID token must match.
#[derive(Debug)]
pub struct Expected<'a> {
    pub nonce: Option<&'a SecretString>,
    pub client_id: &'a str,
    pub issuer: Option<&'a str>,
    pub now: OffsetDateTime,
}

pub fn check_id_token(token: &SecretString, expected: &Expected<'_>) -> Result<(), IdTokenError> {
    let mut parts = token.expose().split('.');
    let payload = match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(_), Some(payload), Some(_), None) => payload,
        _ => return Err(IdTokenError::Malformed),
    };
    let bytes = URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .map_err(|_| IdTokenError::Malformed)?;
    let claims: Claims = serde_json::from_slice(&bytes).map_err(|_| IdTokenError::Malformed)?;

    if let Some(nonce) = expected.nonce
        && !claims
            .nonce
            .as_deref()
            .is_some_and(|found| nonce.ct_eq(found))
    {
        return Err(IdTokenError::NonceMismatch);
    }
    let audience_ok = match &claims.aud {
        Some(Audience::One(aud)) => aud == expected.client_id,
        Some(Audience::Many(auds)) => auds.iter().any(|aud| aud == expected.client_id),
        None => false,
    };
    if !audience_ok {
        return Err(IdTokenError::WrongAudience);
    }
    if let (Some(configured), Some(found)) = (expected.issuer, claims.iss.as_deref())
        && !issuer_matches(configured, found)
    {
        return Err(IdTokenError::WrongIssuer);
    }
    if claims
        .exp
        .is_some_and(|exp| exp <= expected.now.unix_timestamp())
    {
        return Err(IdTokenError::Expired);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(claims: &str) -> SecretString {
        SecretString::new(format!(
            "eyJhbGciOiJSUzI1NiJ9.{}.sig",
            URL_SAFE_NO_PAD.encode(claims)
        ))
    }

    fn expected(nonce: &SecretString) -> Expected<'_> {
        Expected {
            nonce: Some(nonce),
            client_id: "app",
            issuer: Some("http://127.0.0.1:9"),
            now: time::macros::datetime!(2026-01-01 00:00 UTC),
        }
    }

    #[test]
    fn matching_claims_pass() {
        let nonce = SecretString::new("n-1");
        let token =
            jwt(r#"{"iss":"http://127.0.0.1:9","aud":"app","exp":4102444800,"nonce":"n-1"}"#);
        assert_eq!(check_id_token(&token, &expected(&nonce)), Ok(()));
    }

    #[test]
    fn each_mismatch_is_caught() {
        let nonce = SecretString::new("n-1");
        let check = |claims| check_id_token(&jwt(claims), &expected(&nonce));
        assert_eq!(
            check(r#"{"iss":"http://127.0.0.1:9","aud":"app","exp":4102444800,"nonce":"n-2"}"#),
            Err(IdTokenError::NonceMismatch)
        );
        assert_eq!(
            check(r#"{"iss":"http://127.0.0.1:9","aud":"app","exp":4102444800}"#),
            Err(IdTokenError::NonceMismatch)
        );
        assert_eq!(
            check(r#"{"iss":"http://127.0.0.1:9","aud":["x"],"exp":4102444800,"nonce":"n-1"}"#),
            Err(IdTokenError::WrongAudience)
        );
        assert_eq!(
            check(r#"{"iss":"http://evil","aud":"app","exp":4102444800,"nonce":"n-1"}"#),
            Err(IdTokenError::WrongIssuer)
        );
        assert_eq!(
            check(r#"{"iss":"http://127.0.0.1:9","aud":"app","exp":1,"nonce":"n-1"}"#),
            Err(IdTokenError::Expired)
        );
        assert_eq!(
            check_id_token(&SecretString::new("not-a-jwt"), &expected(&nonce)),
            Err(IdTokenError::Malformed)
        );
    }
}
