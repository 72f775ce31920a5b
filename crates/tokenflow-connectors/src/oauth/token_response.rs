//! Tolerant token-response parsing (docs/connectors.md).
//!
//! Providers break RFC 6749 §5.1 in known, harmless ways; tokenflow accepts those and records a
//! [`Warning`] so the monitor can show what was bent. What cannot be used (no `access_token`, an
//! unparseable body, an `error` member) is rejected as a [`ResponseProblem`]. Unknown members are
//! kept for the monitor, with values of secret-looking members replaced by fingerprints.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Map, Value};
use tokenflow_core::SecretString;
use tokenflow_core::flow::excerpt;
use tokenflow_core::providers::ProviderQuirks;
use tokenflow_core::secret::fingerprint;
use url::form_urlencoded;

/// A deviation from RFC 6749 that was tolerated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Warning {
    /// Stable machine-readable code, e.g. `expires_in_string`.
    pub code: &'static str,
    pub message: String,
}

impl Warning {
    fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

/// A successful token response, after tolerance.
#[derive(Debug, Clone)]
pub struct TokenResponse {
    pub http_status: u16,
    pub access_token: SecretString,
    /// As received; `None` when the provider omitted it (then treated as bearer, with a warning).
    pub token_type: Option<String>,
    pub expires_in: Option<u64>,
    pub refresh_token: Option<SecretString>,
    /// The `scope` member, normalized; `None` when absent.
    pub scope: Option<String>,
    pub id_token: Option<SecretString>,
    /// RFC 8693 §2.2.1: the type of the token a token exchange issued.
    pub issued_token_type: Option<String>,
    /// Unknown members, secret-looking values masked.
    pub extra: BTreeMap<String, Value>,
    /// The members the server's `response_fields` names (docs/connectors.md, "Provider
    /// catalogue"), masked like `extra`; members the response lacks are absent.
    pub fields: BTreeMap<String, Value>,
    pub warnings: Vec<Warning>,
}

impl TokenResponse {
    /// RFC 6750 bearer (compared case-insensitively, RFC 6749 §5.1), or absent.
    pub fn is_bearer(&self) -> bool {
        self.token_type
            .as_deref()
            .is_none_or(|t| t.eq_ignore_ascii_case("bearer"))
    }

    /// The token type to output: the provider's value, or `Bearer` when it omitted one.
    pub fn token_type_or_bearer(&self) -> String {
        self.token_type
            .clone()
            .unwrap_or_else(|| "Bearer".to_owned())
    }
}

/// An RFC 6749 §5.2 error response.
#[derive(Debug, Clone, PartialEq)]
pub struct ProviderError {
    pub error: String,
    pub error_description: Option<String>,
    pub error_uri: Option<String>,
    /// Other members (Entra's `error_codes`, `trace_id`, `correlation_id`, …), masked like `extra`.
    pub extra: BTreeMap<String, Value>,
}

/// Why a token response was not usable.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ResponseProblem {
    #[error("the provider returned error `{}`", .0.error)]
    Provider(ProviderError),
    #[error("{0}")]
    Unusable(String),
}

/// Parses a token endpoint answer. `content_type` is the raw header value.
pub fn parse_token_response(
    status: u16,
    content_type: Option<&str>,
    body: &[u8],
) -> Result<TokenResponse, ResponseProblem> {
    parse_token_response_with(status, content_type, body, &ProviderQuirks::default())
}

/// [`parse_token_response`] following a server's provider quirks: the token under `token_path`,
/// the provider's names for bearer tokens, its scope separator, and the `response_fields`.
pub fn parse_token_response_with(
    status: u16,
    content_type: Option<&str>,
    body: &[u8],
    quirks: &ProviderQuirks,
) -> Result<TokenResponse, ResponseProblem> {
    let mut warnings = Vec::new();
    let (members, form_encoded) = parse_members(content_type, body, &mut warnings)?;

    if let Some(error) = members.get("error") {
        return Err(ResponseProblem::Provider(provider_error(error, &members)));
    }
    if !(200..300).contains(&status) {
        return Err(ResponseProblem::Unusable(format!(
            "HTTP {status} with a body that has no `error` member"
        )));
    }
    if status != 200 {
        warnings.push(Warning::new(
            "unexpected_success_status",
            format!("the token endpoint answered HTTP {status} instead of 200 (RFC 6749 §5.1)"),
        ));
    }

    let mut members = match &quirks.token_path {
        Some(path) => hoist_token_object(members, path)?,
        None => members,
    };
    let access_token = match members.remove("access_token") {
        Some(Value::String(token)) if !token.is_empty() => SecretString::new(token),
        Some(_) => {
            return Err(ResponseProblem::Unusable(
                "the response's `access_token` is empty or not a string".to_owned(),
            ));
        }
        None => {
            return Err(ResponseProblem::Unusable(
                "the response has no `access_token`".to_owned(),
            ));
        }
    };
    let token_type = match members.remove("token_type") {
        Some(Value::String(kind)) if quirks.bearer_token_types.contains(&kind) => {
            warnings.push(Warning::new(
                "token_type_provider_name",
                format!("`token_type` is `{kind}`, the provider's name for a bearer token"),
            ));
            Some("Bearer".to_owned())
        }
        Some(Value::String(kind)) if !kind.is_empty() => Some(kind),
        _ => {
            warnings.push(Warning::new(
                "token_type_missing",
                "the response has no `token_type`; treated as bearer",
            ));
            None
        }
    };
    let expires_in = members
        .remove("expires_in")
        .and_then(|value| parse_expires_in(value, form_encoded, &mut warnings));
    let refresh_token = match members.remove("refresh_token") {
        Some(Value::String(token)) if !token.is_empty() => Some(SecretString::new(token)),
        _ => None,
    };
    let scope = match members.remove("scope") {
        None | Some(Value::Null) => None,
        Some(Value::String(scope)) => Some(quirks.scope_separator.normalize(&scope)),
        Some(Value::Array(items)) => {
            warnings.push(Warning::new(
                "scope_array",
                "`scope` is a JSON array instead of a space-delimited string; joined",
            ));
            let parts: Vec<String> = items
                .iter()
                .filter_map(|item| item.as_str().map(str::to_owned))
                .collect();
            Some(parts.join(" "))
        }
        Some(_) => {
            warnings.push(Warning::new(
                "scope_invalid",
                "`scope` is not a string; ignored",
            ));
            None
        }
    };
    let id_token = match members.remove("id_token") {
        Some(Value::String(token)) => {
            members.insert("id_token".to_owned(), Value::String(fingerprint(&token)));
            Some(SecretString::new(token))
        }
        _ => None,
    };

    let issued_token_type = match members.remove("issued_token_type") {
        Some(Value::String(kind)) if !kind.is_empty() => Some(kind),
        _ => None,
    };

    let extra = mask_members(members);
    let fields = quirks
        .response_fields
        .iter()
        .filter_map(|name| Some((name.clone(), extra.get(name)?.clone())))
        .collect();
    Ok(TokenResponse {
        http_status: status,
        issued_token_type,
        access_token,
        token_type,
        expires_in,
        refresh_token,
        scope,
        id_token,
        extra,
        fields,
        warnings,
    })
}

/// The token members of the object at `path` (e.g. Slack's `authed_user`) with the top level's
/// other members beside them. The top level's own token members (another token, e.g. Slack's bot
/// token) are dropped: the path says which token is wanted.
fn hoist_token_object(
    mut members: Map<String, Value>,
    path: &str,
) -> Result<Map<String, Value>, ResponseProblem> {
    let mut segments = path.split('.');
    let first = segments.next().unwrap_or(path);
    let mut found = members.remove(first);
    for segment in segments {
        found = match found {
            Some(Value::Object(mut object)) => object.remove(segment),
            _ => None,
        };
    }
    let Some(Value::Object(mut inner)) = found else {
        return Err(ResponseProblem::Unusable(format!(
            "the response has no `{path}` object holding the token (the server's token_path)"
        )));
    };
    for (key, value) in members {
        if !TOKEN_MEMBERS.contains(&key.as_str()) {
            inner.entry(key).or_insert(value);
        }
    }
    Ok(inner)
}

/// The members of RFC 6749 §5.1 (and OpenID Connect's `id_token`).
const TOKEN_MEMBERS: &[&str] = &[
    "access_token",
    "token_type",
    "expires_in",
    "refresh_token",
    "scope",
    "id_token",
];

fn parse_members(
    content_type: Option<&str>,
    body: &[u8],
    warnings: &mut Vec<Warning>,
) -> Result<(Map<String, Value>, bool), ResponseProblem> {
    let mime = content_type
        .map(|value| {
            value
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_default();
    // The header is the provider's text, of any length: messages quote the start of it.
    let shown_mime = excerpt(&mime);
    let text = std::str::from_utf8(body)
        .map_err(|_| ResponseProblem::Unusable("the response body is not UTF-8".to_owned()))?;
    let trimmed = text.trim_start();
    let is_json_type = mime == "application/json" || mime.ends_with("+json");

    if is_json_type || trimmed.starts_with('{') {
        return match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(members)) => {
                if !is_json_type {
                    let shown = if mime.is_empty() {
                        "none"
                    } else {
                        shown_mime.as_str()
                    };
                    warnings.push(Warning::new(
                        "json_with_wrong_content_type",
                        format!("the body is JSON but the content type is `{shown}`"),
                    ));
                }
                Ok((members, false))
            }
            Ok(_) => Err(ResponseProblem::Unusable(
                "the JSON body is not an object".to_owned(),
            )),
            Err(err) => Err(ResponseProblem::Unusable(format!(
                "the body is not valid JSON ({})",
                err.classify_text()
            ))),
        };
    }
    let looks_like_form = mime == "application/x-www-form-urlencoded"
        || (!trimmed.is_empty()
            && !trimmed.starts_with('<')
            && form_urlencoded::parse(text.trim().as_bytes())
                .any(|(key, _)| key == "access_token" || key == "error"));
    if looks_like_form {
        warnings.push(Warning::new(
            "form_encoded_body",
            "the body is application/x-www-form-urlencoded instead of JSON (RFC 6749 §5.1)",
        ));
        let members = form_urlencoded::parse(text.trim().as_bytes())
            .map(|(key, value)| (key.into_owned(), Value::String(value.into_owned())))
            .collect();
        return Ok((members, true));
    }
    let what = if trimmed.is_empty() {
        "an empty body".to_owned()
    } else if trimmed.starts_with('<') {
        "an HTML or XML page".to_owned()
    } else {
        format!(
            "a body of type `{}`",
            if mime.is_empty() {
                "unknown"
            } else {
                &shown_mime
            }
        )
    };
    Err(ResponseProblem::Unusable(format!(
        "the token endpoint returned {what}, not a token response"
    )))
}

trait ClassifyText {
    fn classify_text(&self) -> &'static str;
}

impl ClassifyText for serde_json::Error {
    fn classify_text(&self) -> &'static str {
        match self.classify() {
            serde_json::error::Category::Eof => "truncated",
            serde_json::error::Category::Syntax => "syntax error",
            serde_json::error::Category::Data => "unexpected data",
            serde_json::error::Category::Io => "read error",
        }
    }
}

fn parse_expires_in(value: Value, form_encoded: bool, warnings: &mut Vec<Warning>) -> Option<u64> {
    match value {
        Value::Null => None,
        Value::Number(number) => {
            if let Some(secs) = number.as_u64() {
                Some(secs)
            } else if let Some(float) = number.as_f64().filter(|f| *f >= 0.0 && f.is_finite()) {
                warnings.push(Warning::new(
                    "expires_in_fraction",
                    "`expires_in` is not a whole number; rounded down",
                ));
                #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                Some(float.floor() as u64)
            } else {
                warnings.push(Warning::new(
                    "expires_in_invalid",
                    "`expires_in` is negative; ignored",
                ));
                None
            }
        }
        Value::String(text) => match text.trim().parse::<u64>() {
            Ok(secs) => {
                if !form_encoded {
                    warnings.push(Warning::new(
                        "expires_in_string",
                        "`expires_in` is a string instead of a number (as Entra ID v1 sends it)",
                    ));
                }
                Some(secs)
            }
            Err(_) => {
                warnings.push(Warning::new(
                    "expires_in_invalid",
                    "`expires_in` is not a number of seconds; ignored",
                ));
                None
            }
        },
        _ => {
            warnings.push(Warning::new(
                "expires_in_invalid",
                "`expires_in` is not a number; ignored",
            ));
            None
        }
    }
}

fn provider_error(error: &Value, members: &Map<String, Value>) -> ProviderError {
    let text = |key: &str| members.get(key).and_then(Value::as_str).map(str::to_owned);
    let mut extra = members.clone();
    for key in ["error", "error_description", "error_uri"] {
        extra.remove(key);
    }
    ProviderError {
        error: match error {
            Value::String(code) => code.clone(),
            other => other.to_string(),
        },
        error_description: text("error_description"),
        error_uri: text("error_uri"),
        extra: mask_members(extra),
    }
}

/// Whether a member name suggests a credential, so its value is shown only as a fingerprint.
pub fn is_secret_member(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    [
        "token",
        "secret",
        "code",
        "password",
        "assertion",
        "key",
        "verifier",
    ]
    .iter()
    .any(|needle| name.contains(needle))
        && name != "error_codes"
}

fn mask_members(members: Map<String, Value>) -> BTreeMap<String, Value> {
    members
        .into_iter()
        .map(|(key, value)| {
            let value = if is_secret_member(&key) {
                match value {
                    Value::String(text) if text.starts_with("sha256:") => Value::String(text),
                    Value::String(text) => Value::String(fingerprint(&text)),
                    other => Value::String(fingerprint(&other.to_string())),
                }
            } else if let Value::Object(nested) = value {
                // A nested object (Slack's `authed_user`) may hold tokens too.
                Value::Object(mask_members(nested).into_iter().collect())
            } else {
                value
            };
            (key, value)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_content_type_is_quoted_cut_short() {
        // Found by the fuzz tests: the header was quoted whole in the message.
        let content_type = "a".repeat(10_000);
        let err = parse_token_response(200, Some(&content_type), b"x").unwrap_err();
        let text = err.to_string();
        assert!(text.len() < 200, "{} bytes", text.len());
        assert!(text.contains("a body of type `aaaa"), "{text}");
    }

    const JSON: Option<&str> = Some("application/json; charset=utf-8");

    fn ok(status: u16, content_type: Option<&str>, body: &str) -> TokenResponse {
        parse_token_response(status, content_type, body.as_bytes()).unwrap()
    }

    fn codes(response: &TokenResponse) -> Vec<&'static str> {
        response.warnings.iter().map(|w| w.code).collect()
    }

    #[test]
    fn a_conforming_response_has_no_warnings() {
        let r = ok(
            200,
            JSON,
            r#"{"access_token":"at","token_type":"Bearer","expires_in":3600,"refresh_token":"rt","scope":"a  b"}"#,
        );
        assert_eq!(r.access_token.expose(), "at");
        assert_eq!(r.token_type.as_deref(), Some("Bearer"));
        assert_eq!(r.expires_in, Some(3600));
        assert_eq!(
            r.refresh_token.as_ref().map(SecretString::expose),
            Some("rt")
        );
        assert_eq!(r.scope.as_deref(), Some("a b"));
        assert!(r.warnings.is_empty());
        assert!(r.is_bearer());
    }

    #[test]
    fn string_expires_in_is_accepted_with_a_warning() {
        let r = ok(
            200,
            JSON,
            r#"{"access_token":"at","token_type":"Bearer","expires_in":"3599","expires_on":"1700000000"}"#,
        );
        assert_eq!(r.expires_in, Some(3599));
        assert_eq!(codes(&r), ["expires_in_string"]);
        assert_eq!(
            r.extra.get("expires_on"),
            Some(&Value::String("1700000000".into()))
        );
    }

    #[test]
    fn missing_token_type_is_bearer_with_a_warning() {
        let r = ok(200, JSON, r#"{"access_token":"at"}"#);
        assert!(r.is_bearer());
        assert_eq!(r.token_type_or_bearer(), "Bearer");
        assert_eq!(codes(&r), ["token_type_missing"]);
    }

    #[test]
    fn non_bearer_token_type_is_reported_not_hidden() {
        let r = ok(200, JSON, r#"{"access_token":"at","token_type":"DPoP"}"#);
        assert!(!r.is_bearer());
        let r = ok(200, JSON, r#"{"access_token":"at","token_type":"bEaReR"}"#);
        assert!(r.is_bearer());
    }

    #[test]
    fn form_encoded_body_is_accepted_with_a_warning() {
        let r = ok(
            200,
            Some("application/x-www-form-urlencoded"),
            "access_token=a%2Bt&token_type=bearer&expires_in=60&scope=a+b",
        );
        assert_eq!(r.access_token.expose(), "a+t");
        assert_eq!(r.expires_in, Some(60));
        assert_eq!(r.scope.as_deref(), Some("a b"));
        assert_eq!(codes(&r), ["form_encoded_body"]);
    }

    #[test]
    fn json_with_a_wrong_content_type_is_accepted_with_a_warning() {
        let r = ok(
            200,
            Some("text/plain"),
            r#" {"access_token":"at","token_type":"bearer"}"#,
        );
        assert_eq!(codes(&r), ["json_with_wrong_content_type"]);
        let r = ok(200, None, r#"{"access_token":"at","token_type":"bearer"}"#);
        assert_eq!(codes(&r), ["json_with_wrong_content_type"]);
    }

    #[test]
    fn status_201_is_accepted_with_a_warning() {
        let r = ok(201, JSON, r#"{"access_token":"at","token_type":"bearer"}"#);
        assert_eq!(codes(&r), ["unexpected_success_status"]);
    }

    #[test]
    fn error_member_is_a_provider_error_even_with_200() {
        let err = parse_token_response(
            200,
            JSON,
            br#"{"error":"invalid_grant","error_description":"AADSTS70008: expired","error_codes":[70008],"trace_id":"t"}"#,
        )
        .unwrap_err();
        let ResponseProblem::Provider(provider) = err else {
            panic!("{err:?}")
        };
        assert_eq!(provider.error, "invalid_grant");
        assert_eq!(
            provider.error_description.as_deref(),
            Some("AADSTS70008: expired")
        );
        assert_eq!(
            provider.extra.get("error_codes"),
            Some(&serde_json::json!([70008]))
        );
    }

    #[test]
    fn unusable_bodies_are_rejected_with_a_reason() {
        let reason =
            |status, ct, body: &str| match parse_token_response(status, ct, body.as_bytes()) {
                Err(ResponseProblem::Unusable(reason)) => reason,
                other => panic!("expected unusable, got {other:?}"),
            };
        assert!(reason(200, JSON, r#"{"token_type":"bearer"}"#).contains("no `access_token`"));
        assert!(reason(200, JSON, r#"{"access_token":""}"#).contains("empty"));
        assert!(reason(200, JSON, "{\"access_token\":").contains("not valid JSON"));
        assert!(reason(200, JSON, "[1]").contains("not an object"));
        assert!(reason(502, Some("text/html"), "<html>Bad gateway</html>").contains("HTML"));
        assert!(reason(200, Some("text/plain"), "").contains("empty body"));
        assert!(reason(500, JSON, r#"{"message":"boom"}"#).contains("HTTP 500"));
    }

    #[test]
    fn unknown_members_are_kept_and_secret_ones_masked() {
        let r = ok(
            200,
            JSON,
            r#"{"access_token":"at","token_type":"bearer","id_token":"eyJ.x.y","ext_expires_in":3600,"session_key":"k"}"#,
        );
        assert_eq!(
            r.extra.get("ext_expires_in"),
            Some(&serde_json::json!(3600))
        );
        let id = r.extra.get("id_token").and_then(Value::as_str).unwrap();
        assert!(id.starts_with("sha256:") && !id.contains("eyJ"));
        let key = r.extra.get("session_key").and_then(Value::as_str).unwrap();
        assert!(key.starts_with("sha256:"));
        assert_eq!(
            r.id_token.as_ref().map(SecretString::expose),
            Some("eyJ.x.y")
        );
    }
}
