//! A Google-style service account key (the JSON file the Google Cloud console downloads): the
//! credential from which tokenflow builds and signs the assertion of the JWT bearer grant
//! (RFC 7523 §2.1; docs/connectors.md, "`oauth_token_exchange`").
//!
//! Parsed once, when the configuration is validated, like `private_key`: the JSON must be a
//! `service_account` key with `client_email` and an RSA `private_key` (PEM, signed RS256 as
//! Google documents). Its `Debug` shows the account and the key id only; no error text quotes the
//! file or the key.

use std::fmt;

use serde::Deserialize;
use url::Url;

use crate::client_key::{ClientKey, SigningAlg};
use crate::flow::excerpt;
use crate::secret::SecretString;

/// A validated service account key.
#[derive(Clone)]
pub struct ServiceAccountKey {
    client_email: String,
    private_key_id: Option<String>,
    token_uri: Option<Url>,
    key: ClientKey,
}

/// The members of the JSON key tokenflow reads; the others (`project_id`, `client_id`,
/// `auth_uri`, …) are ignored.
#[derive(Deserialize)]
struct KeyFile {
    #[serde(rename = "type")]
    kind: Option<String>,
    client_email: Option<String>,
    private_key: Option<SecretString>,
    private_key_id: Option<String>,
    token_uri: Option<String>,
}

impl ServiceAccountKey {
    /// Parses the JSON text of a key file. The error names the problem, never the content.
    pub fn from_json(json: &SecretString) -> Result<Self, String> {
        let file: KeyFile = serde_json::from_str(json.expose()).map_err(|_| {
            "is not a service account key (a JSON object with `type`, `client_email`, \
             `private_key`, `private_key_id` and `token_uri`)"
                .to_owned()
        })?;
        if file.kind.as_deref() != Some("service_account") {
            return Err("is not a service account key: `type` must be \"service_account\"".into());
        }
        let client_email = file
            .client_email
            .filter(|email| !email.trim().is_empty())
            .ok_or("has no `client_email`")?;
        let private_key = file
            .private_key
            .filter(|key| !key.is_empty())
            .ok_or("has no `private_key`")?;
        let token_uri = match file.token_uri {
            None => None,
            Some(uri) => match Url::parse(&uri) {
                Ok(url) if matches!(url.scheme(), "http" | "https") => Some(url),
                _ => {
                    return Err(format!(
                        "has a `token_uri` that is not an http(s) URL: `{}`",
                        excerpt(&uri)
                    ));
                }
            },
        };
        let private_key_id = file.private_key_id.filter(|id| !id.is_empty());
        let key = ClientKey::from_pem(&private_key, SigningAlg::RS256, None, false)
            .map_err(|_| {
                "has a `private_key` that is not a PEM RSA private key usable with RS256".to_owned()
            })?
            .with_kid(private_key_id.clone());
        Ok(Self {
            client_email,
            private_key_id,
            token_uri,
            key,
        })
    }

    /// The service account: the assertion's `iss` and `sub`.
    pub fn client_email(&self) -> &str {
        &self.client_email
    }

    /// The key's id, sent as the assertion's `kid`.
    pub fn private_key_id(&self) -> Option<&str> {
        self.private_key_id.as_deref()
    }

    /// The token endpoint the key names: the assertion's `aud`.
    pub fn token_uri(&self) -> Option<&Url> {
        self.token_uri.as_ref()
    }

    /// The signing key (RS256, `kid` = `private_key_id`).
    pub fn key(&self) -> &ClientKey {
        &self.key
    }
}

impl fmt::Debug for ServiceAccountKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceAccountKey")
            .field("client_email", &self.client_email)
            .field("private_key_id", &self.private_key_id)
            .field("token_uri", &self.token_uri)
            .field("private_key", &"[redacted]")
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = include_str!(
        "../../tokenflow-connectors/tests/fixtures/client-keys/test-only-rsa.pkcs8.pem"
    );

    fn json(value: serde_json::Value) -> SecretString {
        SecretString::new(value.to_string())
    }

    #[test]
    fn a_long_token_uri_is_quoted_cut_short() {
        // Found by the fuzz tests: a 64 KiB token_uri made a 64 KiB message.
        let err = ServiceAccountKey::from_json(&json(serde_json::json!({
            "type": "service_account", "client_email": "a@b.example", "private_key": KEY,
            "token_uri": "a".repeat(65_536),
        })))
        .unwrap_err();
        assert!(err.len() < 200, "{} bytes", err.len());
        assert!(err.contains("not an http(s) URL: `aaaa"), "{err}");
    }

    #[test]
    fn a_key_file_is_read_and_its_debug_hides_the_key() {
        let key = ServiceAccountKey::from_json(&json(serde_json::json!({
            "type": "service_account", "project_id": "p", "private_key_id": "abc123",
            "private_key": KEY, "client_email": "sa@p.iam.gserviceaccount.com",
            "client_id": "1", "token_uri": "https://oauth2.googleapis.com/token"
        })))
        .unwrap();
        assert_eq!(key.client_email(), "sa@p.iam.gserviceaccount.com");
        assert_eq!(key.key().header().kid.as_deref(), Some("abc123"));
        assert_eq!(
            key.token_uri().map(Url::as_str),
            Some("https://oauth2.googleapis.com/token")
        );
        let debug = format!("{key:?}");
        assert!(
            !debug.contains("PRIVATE KEY") && debug.contains("[redacted]"),
            "{debug}"
        );
    }

    #[test]
    fn wrong_files_are_refused_without_quoting_them() {
        let cases = [
            SecretString::new("not json: secret-material"),
            json(serde_json::json!({ "type": "authorized_user", "private_key": KEY })),
            json(serde_json::json!({ "type": "service_account", "private_key": KEY })),
            json(
                serde_json::json!({ "type": "service_account", "client_email": "a@b",
                "private_key": "-----BEGIN PRIVATE KEY-----\nsecret-material\n-----END PRIVATE KEY-----" }),
            ),
        ];
        for case in cases {
            let err = ServiceAccountKey::from_json(&case).unwrap_err();
            assert!(
                !err.contains("secret-material") && !err.contains("BEGIN"),
                "{err}"
            );
        }
    }
}
