//! Client authentication at the token endpoint (RFC 6749 §2.3.1; docs/connectors.md, "Client
//! authentication").
//!
//! With `client_secret_jwt` and `private_key_jwt` (RFC 7523 §2.2, OpenID Connect Core §9) the
//! client sends `client_assertion_type` and a `client_assertion`: a JWT with `iss` = `sub` = the
//! client id, `aud` = the token endpoint URL, a random `jti`, `iat` and `exp` one minute later,
//! signed HS256 with the client secret or with the client's private key. Built by
//! [`client_assertion`] for every token request, never reused.
//!
//! With `basic_header`, the client id and secret are each encoded with the
//! `application/x-www-form-urlencoded` algorithm (RFC 6749 Appendix B: space becomes `+`, every
//! byte outside `A-Z a-z 0-9 * - . _` becomes `%XX` of its UTF-8) *before* `id:secret` is
//! Base64-encoded. Skipping that step is a classic interoperability bug: an id or secret with `:`
//! would split in the wrong place and one with `%` or `+` would decode to something else.
//!
//! Some providers do not decode them (they compare the Basic credentials as sent), so a secret
//! with `+`, `%`, a space or `:` fails there although tokenflow follows the RFC. For those,
//! `basic_auth_encoding = "raw"` sends `id:secret` as it is; when a Basic-authenticated request is
//! refused and the values would have been changed by the encoding, the error says so.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Serialize;
use time::OffsetDateTime;
use tokenflow_core::{BasicAuthEncoding, OAuthServer, SecretString, TokenEndpointAuthMethod};
use url::{Url, form_urlencoded};

use super::random::random_token;

/// The `client_assertion_type` of a JWT client assertion (RFC 7523 §2.2).
pub const JWT_BEARER_ASSERTION_TYPE: &str =
    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// How long a client assertion is valid (its `exp` after `iat`).
pub const ASSERTION_LIFETIME: time::Duration = time::Duration::seconds(60);

/// The claims of a client assertion (RFC 7523 §3, OpenID Connect Core §9).
#[derive(Debug, Serialize)]
struct AssertionClaims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    jti: &'a str,
    iat: i64,
    exp: i64,
}

/// Why no client assertion could be built. Names no key material.
#[derive(Debug, thiserror::Error)]
pub enum AssertionError {
    #[error("token_endpoint_auth_method `{0}` does not use a client assertion")]
    NotJwt(TokenEndpointAuthMethod),
    #[error("`{0}` needs {1}, which is not configured")]
    Missing(TokenEndpointAuthMethod, &'static str),
    #[error(transparent)]
    Random(#[from] super::random::RandomError),
    #[error("signing the client assertion failed ({0})")]
    Signing(String),
}

/// The `client_assertion` for one request of `server` to `token_url` at `now`: signed HS256 with
/// the client secret (`client_secret_jwt`) or with the private key (`private_key_jwt`, its header
/// with the certificate thumbprints).
pub fn client_assertion(
    server: &OAuthServer,
    token_url: &Url,
    now: OffsetDateTime,
) -> Result<SecretString, AssertionError> {
    let method = server.token_endpoint_auth_method;
    let jti = random_token(32)?;
    let iat = now.unix_timestamp();
    let claims = AssertionClaims {
        iss: &server.client_id,
        sub: &server.client_id,
        aud: token_url.as_str(),
        jti: jti.expose(),
        iat,
        exp: iat + ASSERTION_LIFETIME.whole_seconds(),
    };
    let signing = |err: jsonwebtoken::errors::Error| AssertionError::Signing(err.to_string());
    match method {
        TokenEndpointAuthMethod::ClientSecretJwt => {
            let secret = server
                .client_secret
                .as_ref()
                .ok_or(AssertionError::Missing(method, "client_secret"))?;
            let key = EncodingKey::from_secret(secret.expose().as_bytes()).map_err(signing)?;
            jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &key)
                .map(SecretString::new)
                .map_err(signing)
        }
        TokenEndpointAuthMethod::PrivateKeyJwt => server
            .client_key
            .as_ref()
            .ok_or(AssertionError::Missing(method, "private_key"))?
            .sign(&claims)
            .map_err(signing),
        other => Err(AssertionError::NotJwt(other)),
    }
}

/// The value of the `Authorization` header for HTTP Basic client authentication.
pub fn basic_authorization(
    client_id: &str,
    client_secret: &SecretString,
    encoding: BasicAuthEncoding,
) -> SecretString {
    let credentials = match encoding {
        BasicAuthEncoding::FormUrlencoded => {
            let id: String = form_urlencoded::byte_serialize(client_id.as_bytes()).collect();
            let secret: String =
                form_urlencoded::byte_serialize(client_secret.expose().as_bytes()).collect();
            format!("{id}:{secret}")
        }
        BasicAuthEncoding::Raw => format!("{client_id}:{}", client_secret.expose()),
    };
    SecretString::new(format!("Basic {}", STANDARD.encode(credentials)))
}

/// Whether the RFC 6749 §2.3.1 encoding changes the id or the secret, i.e. whether a provider
/// that does not decode Basic credentials would see something else than what it registered.
pub fn encoding_changes(client_id: &str, client_secret: &SecretString) -> bool {
    let changes = |text: &str| {
        form_urlencoded::byte_serialize(text.as_bytes())
            .collect::<String>()
            .ne(text)
    };
    changes(client_id) || changes(client_secret.expose())
}

/// Appended to the `error_description` of a refused Basic-authenticated request whose id or
/// secret [`encoding_changes`]. It names no character, so nothing of the secret is revealed.
pub const RAW_ENCODING_HINT: &str = "the client id or secret contains characters that are URL-encoded in HTTP Basic (RFC 6749 §2.3.1); if this provider does not decode them, set basic_auth_encoding = \"raw\"";

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(header: &SecretString) -> String {
        let b64 = header.expose().strip_prefix("Basic ").unwrap();
        String::from_utf8(STANDARD.decode(b64).unwrap()).unwrap()
    }

    #[test]
    fn rfc6749_appendix_b_example() {
        // RFC 6749 Appendix B: " %&+£€" encodes as "+%25%26%2B%C2%A3%E2%82%AC".
        let header = basic_authorization(
            "client",
            &SecretString::new(" %&+£€"),
            BasicAuthEncoding::FormUrlencoded,
        );
        assert_eq!(decode(&header), "client:+%25%26%2B%C2%A3%E2%82%AC");
    }

    #[test]
    fn colon_in_id_and_secret_is_encoded_so_the_split_is_unambiguous() {
        let header = basic_authorization(
            "cc:client+1% é",
            &SecretString::new("s3cr:t+%/ é"),
            BasicAuthEncoding::FormUrlencoded,
        );
        assert_eq!(
            decode(&header),
            "cc%3Aclient%2B1%25+%C3%A9:s3cr%3At%2B%25%2F+%C3%A9"
        );
        assert_eq!(decode(&header).matches(':').count(), 1);
    }

    #[test]
    fn plain_values_are_unchanged() {
        let header = basic_authorization(
            "my-app.1",
            &SecretString::new("abc_DEF"),
            BasicAuthEncoding::FormUrlencoded,
        );
        assert_eq!(
            header.expose(),
            format!("Basic {}", STANDARD.encode("my-app.1:abc_DEF"))
        );
        assert!(!encoding_changes("my-app.1", &SecretString::new("abc_DEF")));
    }

    #[test]
    fn raw_encoding_sends_the_values_as_they_are() {
        let secret = SecretString::new("s+3 %:x");
        let header = basic_authorization("app", &secret, BasicAuthEncoding::Raw);
        assert_eq!(decode(&header), "app:s+3 %:x");
        assert!(encoding_changes("app", &secret));
    }
}
