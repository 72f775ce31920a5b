//! Client authentication at the token endpoint (RFC 6749 §2.3.1).
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
use tokenflow_core::{BasicAuthEncoding, SecretString};
use url::form_urlencoded;

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
